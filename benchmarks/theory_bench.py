"""Time a 1000 x 1000 (alpha, theta) theory phase diagram for each transfer method.

Calls :func:`featurefate.theory.transferability` on broadcast arrays (an alpha column and a theta
row), as :func:`featurefate.experiments.theory_phase.phase_diagram` does, and prints the best of
five runs after one warm-up run, next to the bare NumPy formula of the same transferability
(no validation, the grid's broadcasting only; column-only pieces such as the ridge moments are
computed on the column, as the library does) and their ratio. Run with ``make bench``.
"""

from __future__ import annotations

import time

import numpy as np

import featurefate
from featurefate.experiments.theory_phase import grid
from featurefate.theory import linear as th
from featurefate.theory import transferability

SIZE = 1000
REPEATS = 5
SIGMA = 0.2

CASES = (
    ("linear", {}),
    ("ridge", {"lam": 0.1}),
    ("finetune", {"variant": "paper"}),
    ("finetune", {"variant": "exact"}),
    ("linear", {"dim": 500}),
    ("ridge", {"lam": 0.1, "dim": 500}),
)


def _scratch(alpha, dim):
    s2 = SIGMA**2
    n, d = (alpha, 1.0) if dim is None else (alpha * dim, float(dim))
    below = (1.0 - alpha) + s2 * n / (d - n - (0.0 if dim is None else 1.0))
    above = s2 * d / (n - d - (0.0 if dim is None else 1.0))
    band = 0.0 if dim is None else 1.0  # infinite for |n - D| <= 1 (for alpha = 1 in the limit)
    return np.where(n < d - band, below, np.where(n > d + band, above, np.inf))


def bare(method: str, alpha, theta, options: dict):
    """The transferability by its formula in plain NumPy (unit norms, depth 2, sigma > 0)."""
    dim, lam = options.get("dim"), options.get("lam")
    with np.errstate(divide="ignore", invalid="ignore"):
        scratch = _scratch(alpha, dim)
        sin2 = np.sin(theta) ** 2
        if method == "linear":
            n = np.inf if dim is None else alpha * dim
            fluct = (sin2 + SIGMA**2) * np.where(n > 2.0, 1.0 / (n - 2.0), np.inf)
            return scratch - (sin2 + fluct)
        if method == "ridge":
            if dim is None:
                return scratch - (sin2 + (1.0 - sin2) * (lam / (1.0 + lam)) ** 2)
            n = alpha * dim
            shrink, spread = th._chi2_ridge_moments(n, n * lam)
            return scratch - (sin2 + (1.0 - sin2) * shrink + (sin2 + SIGMA**2) * spread)
        c = 1.0 if options["variant"] == "paper" else np.nan_to_num(th.finetune_scale(alpha, SIGMA))
        return np.maximum(1.0 - alpha, 0.0) * (2.0 * c * np.cos(theta) - c**2)


def best_time(fn, *args, **kwargs) -> float:
    """Best wall-clock seconds of ``REPEATS`` evaluations, after one warm-up."""
    fn(*args, **kwargs)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    alpha, theta = grid(2.0, SIZE, SIZE)
    alpha, theta = alpha[:, None], theta[None, :]
    print(f"featurefate {featurefate.__version__}: {SIZE} x {SIZE} grid, sigma = {SIGMA}")
    print(f"best of {REPEATS} after a warm-up\n")
    rows = []
    for method, options in CASES:
        form = f"finite D = {options['dim']}" if "dim" in options else "D -> infinity"
        extra = ", ".join(f"{k} = {v}" for k, v in options.items() if k != "dim") or "-"
        seconds = best_time(transferability, method, alpha, theta, SIGMA, **options)
        formula = bare(method, alpha, theta, options)
        got = transferability(method, alpha, theta, SIGMA, **options)
        np.testing.assert_allclose(got, formula, rtol=1e-12, atol=1e-12, equal_nan=True)
        numpy_seconds = best_time(bare, method, alpha, theta, options)
        rows.append(
            (
                method,
                extra,
                form,
                f"{seconds * 1e3:.1f}",
                f"{numpy_seconds * 1e3:.1f}",
                f"{seconds / numpy_seconds:.2f}",
            )
        )
    header = ("method", "options", "form", "ms", "bare ms", "ratio")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        cells = [cell.ljust(w) for cell, w in zip(row[:3], widths[:3], strict=True)]
        print("  ".join([*cells, *(c.rjust(w) for c, w in zip(row[3:], widths[3:], strict=True))]))


if __name__ == "__main__":
    main()
