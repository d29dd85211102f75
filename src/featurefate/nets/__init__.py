"""Networks of the paper: deep linear (Section 3)."""
