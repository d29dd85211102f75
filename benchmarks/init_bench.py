"""The rank-one init against the authors' random init, at paper scale, on the same instances.

For each alpha (D = 500, L = 2, 20 instances, theta = pi/4, sigma = 0.2, init scale 1e-5, the
training settings of ``configs/paper-linear.toml``) runs the same cell (same seed: same teachers
and data) with ``init = "random"`` (dense layers, O(L D^2) per step) and ``init = "rank_one"``
(a balanced rank-one chain, O(D) per step), and prints the time of each, the largest per-instance
difference of every method's generalization error, the transferabilities with their standard
errors, and each run's largest distance from the exact gradient-flow endpoints.

Usage: python benchmarks/init_bench.py [--dim 500] [--instances 20] [--alphas 0.5 1.5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from featurefate.experiments.linear_phase import LinearPhaseConfig, run_cell
from featurefate.transfer import TrainingOptions

THETA, SIGMA = np.pi / 4, 0.2
METHODS = ("scratch", "linear", "finetune")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=500)
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 1.5])
    args = parser.parse_args()
    print(
        f"random vs rank-one init: D = {args.dim}, L = 2, {args.instances} instances, "
        f"theta = pi/4, sigma = {SIGMA}, init scale 1e-5, tol 1e-10, max 50000 steps\n"
    )
    print(
        f"{'alpha':>5} {'init':>8} {'s/cell':>7} "
        + " ".join(f"{'T_' + m:>17}" for m in ("linear", "finetune"))
        + f" {'gap scratch':>11} {'gap finetune':>12}"
    )
    for alpha in args.alphas:
        runs = {}
        for init in ("random", "rank_one"):
            config = LinearPhaseConfig(
                dim=args.dim,
                n_instances=args.instances,
                init=init,
                lam=(0.1,),
                training=TrainingOptions(tol=1e-10, max_steps=50_000),
            )
            start = time.perf_counter()
            ds = run_cell(config, {"alpha": alpha, "theta": THETA, "sigma": SIGMA}, seed=7)
            elapsed = time.perf_counter() - start
            runs[init] = ds
            t = " ".join(
                f"{float(ds[f'transferability_{m}']):+8.4f}±{float(ds[f'transferability_{m}_stderr']):.4f}"
                for m in ("linear", "finetune")
            )
            print(
                f"{alpha:5.2f} {init:>8} {elapsed:7.1f} {t} "
                f"{float(ds.endpoint_gap_scratch.max()):11.1e} "
                f"{float(ds.endpoint_gap_finetune_exact.max()):12.1e}"
            )
        diffs = ", ".join(
            f"{m} {np.max(np.abs(runs['random'][f'error_{m}'] - runs['rank_one'][f'error_{m}'])):.1e}"
            for m in METHODS
        )
        print(f"{'':5} largest per-instance error difference: {diffs}")


if __name__ == "__main__":
    main()
