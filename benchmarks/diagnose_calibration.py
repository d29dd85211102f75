"""Calibration of ``featurefate.diagnose`` against known truth: deep-linear teacher pairs.

For each cell of a grid over theta, sigma, alpha = n / D and the features (the paper's
rank-one pretrained feature X beta_s, or it plus 4 junk directions), draws fresh target data
sets, diagnoses each (no intercept: the theory's setting) and compares with the truth at n,

    T = R_scratch(n) - R_transfer(n),   R_scratch from eq. (10) at finite D,
    R_transfer = r + (r + sigma^2) k / (n - k - 1)   (eq. 12 with k regressors; k = 1 is eq. 12),

r = |P_perp beta_t|^2 the target outside the features' span. Prints, per cell, how often the
interval covers T and the verdicts, then the totals as a Markdown table (docs/diagnose.md).

    PYTHONPATH=src python benchmarks/diagnose_calibration.py [PER_CELL [CONFIDENCE]]

(defaults 10 data sets per cell, confidence 0.9)
"""

from __future__ import annotations

import itertools
import os
import sys
import time

import numpy as np

from featurefate.diagnosis import diagnose
from featurefate.theory import scratch_error

DIM = 50
THETAS = (0.15, 0.6, 1.0, 1.4)
SIGMAS = (0.1, 0.5)
ALPHAS = (0.6, 2.0, 6.0)
JUNK = (0, 4)


def truth(n, theta, sigma, directions):
    beta_t = np.zeros(DIM)
    beta_t[0], beta_t[1] = np.cos(theta), np.sin(theta)
    q, _ = np.linalg.qr(directions)
    outside = float(beta_t @ beta_t - np.sum((q.T @ beta_t) ** 2))
    k = directions.shape[1]
    transfer = outside + (outside + sigma**2) * k / (n - k - 1)
    return float(scratch_error(n / DIM, sigma, dim=DIM)) - transfer, outside, beta_t


def main(per_cell=10, confidence=0.9):
    rng = np.random.default_rng(2021)
    rows = []
    start = time.perf_counter()
    print("theta sigma alpha junk | T_true | cover_T cover_r | pos neg unc | correct_sign")
    for theta, sigma, alpha, junk in itertools.product(THETAS, SIGMAS, ALPHAS, JUNK):
        n = round(alpha * DIM)
        directions = np.zeros((DIM, 1 + junk))
        directions[0, 0] = 1.0
        if junk:
            directions[:, 1:] = rng.standard_normal((DIM, junk)) / np.sqrt(DIM)
        t_true, outside, beta_t = truth(n, theta, sigma, directions)
        cover_t = cover_r = wrong = 0
        verdicts = {"positive": 0, "negative": 0, "uncertain": 0}
        widths = []
        for _ in range(per_cell):
            X = rng.standard_normal((n, DIM))
            y = X @ beta_t + sigma * rng.standard_normal(n)
            res = diagnose(X, y, X @ directions, fit_intercept=False, bootstrap=200, confidence=confidence,
                           seed=int(rng.integers(2**31)))  # fmt: skip
            t, r = res.transferability, res.irreducible_error
            cover_t += t.low <= t_true <= t.high
            cover_r += r.low <= outside <= r.high
            verdicts[res.verdict] += 1
            widths.append(t.high - t.low)
            if res.verdict != "uncertain":
                wrong += (res.verdict == "positive") != (t_true > 0)
        rows.append((theta, sigma, alpha, junk, t_true, cover_t, cover_r, verdicts, wrong,
                     np.median(widths)))  # fmt: skip
        v = verdicts
        print(f"{theta:4.2f} {sigma:4.2f} {alpha:4.1f} {junk} | {t_true:+.3f} | "
              f"{cover_t:2d}/{per_cell} {cover_r:2d}/{per_cell} | {v['positive']:2d} "
              f"{v['negative']:2d} {v['uncertain']:2d} | wrong {wrong}", flush=True)  # fmt: skip
    wall = time.perf_counter() - start
    print(f"\nconfidence {confidence}: {len(rows)} cells x {per_cell} data sets in {wall:.0f} s "
          f"(load average {os.getloadavg()[0]:.1f})\n")  # fmt: skip
    print(
        "| features | alpha = n/D | T covered | r covered | decided (not uncertain) | "
        "decided with the wrong sign | decided where the median interval excludes 0 at T |"
    )
    print("|---|---|---|---|---|---|---|")
    for junk, alpha in itertools.product(JUNK, ALPHAS):
        sel = [row for row in rows if row[3] == junk and row[2] == alpha]
        total = per_cell * len(sel)
        cover_t = sum(row[5] for row in sel)
        cover_r = sum(row[6] for row in sel)
        decided = sum(
            total_v for row in sel for key, total_v in row[7].items() if key != "uncertain"
        )
        wrong = sum(row[8] for row in sel)
        clear = [row for row in sel if abs(row[4]) > row[9] / 2]
        clear_decided = sum(row[7]["positive"] + row[7]["negative"] for row in clear)
        name = "rank one" if junk == 0 else f"1 + {junk} junk"
        print(f"| {name} | {alpha:g} | {cover_t / total:.0%} | {cover_r / total:.0%} | "
              f"{decided / total:.0%} | {wrong} of {decided} | "
              f"{clear_decided} of {per_cell * len(clear)} |")  # fmt: skip
    total = per_cell * len(rows)
    print(f"\nall: T covered {sum(r[5] for r in rows) / total:.1%}, r covered "
          f"{sum(r[6] for r in rows) / total:.1%}, wrong sign {sum(r[8] for r in rows)} of "
          f"{sum(r[7]['positive'] + r[7]['negative'] for r in rows)} decided")  # fmt: skip


if __name__ == "__main__":
    main(*(f(a) for f, a in zip((int, float), sys.argv[1:], strict=False)))
