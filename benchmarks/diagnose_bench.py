"""Time ``featurefate.diagnose`` at the issue's size: n = 10000, D = 1000, k = 512 (target < 30 s).

Synthetic deep-linear data (a teacher pair at 60 degrees, sigma = 0.5) with 512 features: the
source teacher's direction and 511 random ones. Prints the wall time of one diagnosis with the
default settings (8 sizes x 8 splits, 400 bootstrap replicates, minimum-norm scratch), the time
of its parts, the prediction against the theory (eqs. 10 and 12 with k regressors), and the
machine's load average beside them, since the machine may be shared.

    PYTHONPATH=src python benchmarks/diagnose_bench.py
"""

from __future__ import annotations

import os
import time

import numpy as np

from featurefate.diagnosis import diagnose
from featurefate.theory import scratch_error

N, DIM, K, THETA, SIGMA = 10_000, 1000, 512, np.pi / 3, 0.5


def main():
    rng = np.random.default_rng(0)
    beta_t = np.zeros(DIM)
    beta_t[0], beta_t[1] = np.cos(THETA), np.sin(THETA)
    X = rng.standard_normal((N, DIM))
    y = X @ beta_t + SIGMA * rng.standard_normal(N)
    directions = rng.standard_normal((DIM, K)) / np.sqrt(DIM)
    directions[:, 0] = 0.0
    directions[0, 0] = 1.0
    F = X @ directions
    # the target's part outside the features' span, and eq. (12) with K regressors at n
    q, _ = np.linalg.qr(directions)
    outside = float(beta_t @ beta_t - np.sum((q.T @ beta_t) ** 2))
    truth = scratch_error(N / DIM, SIGMA, dim=DIM) - (
        outside + (outside + SIGMA**2) * K / (N - K - 1)
    )
    load = os.getloadavg()
    start = time.perf_counter()
    result = diagnose(X, y, F)
    wall = time.perf_counter() - start
    t = result.transferability
    print(f"diagnose n={N} D={DIM} k={K}: {wall:.1f} s wall (target < 30 s)")
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; after: "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))  # fmt: skip
    print(f"T(n) = {t.estimate:.4f} [{t.low:.4f}, {t.high:.4f}], verdict {result.verdict}; "
          f"theory {truth:.4f}")  # fmt: skip
    r = result.irreducible_error
    print(f"irreducible error {r.estimate:.4f} [{r.low:.4f}, {r.high:.4f}]; truth {outside:.4f}")
    print(f"crossover_n {result.crossover_n}, LogME {result.logme:.4f}")


if __name__ == "__main__":
    main()
