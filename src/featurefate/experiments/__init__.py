"""Experiments: one module per family, each turning a configuration into a labelled dataset."""
