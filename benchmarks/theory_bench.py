"""Time a 1000 x 1000 (alpha, theta) theory phase diagram for each transfer method.

Calls :func:`featurefate.theory.transferability` on broadcast arrays (an alpha column and a theta
row), as :func:`featurefate.experiments.theory_phase.phase_diagram` does, and prints the best of
five runs after one warm-up run. Run with ``make bench``.
"""

from __future__ import annotations

import time

import featurefate
from featurefate.experiments.theory_phase import grid
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


def best_time(method: str, alpha, theta, options: dict) -> float:
    """Best wall-clock seconds of ``REPEATS`` evaluations, after one warm-up."""
    transferability(method, alpha, theta, SIGMA, **options)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        transferability(method, alpha, theta, SIGMA, **options)
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
        seconds = best_time(method, alpha, theta, options)
        rows.append((method, extra, form, f"{seconds * 1e3:.1f}"))
    header = ("method", "options", "form", "ms")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths[:-1], strict=True)]
        print("  ".join([*cells, row[-1].rjust(widths[-1])]))


if __name__ == "__main__":
    main()
