"""How large a step scratch training of the ReLU network can take and still follow gradient flow.

Scratch training (Fig. 4c) trains a fresh width-m network on n target samples until its training
loss is ``--tol`` times the zero network's, and the figure uses its exact generalization error.
That end point depends on the path, so it is only the gradient-flow end point when the step is
small enough. For each n this script trains one network from the same initialisation on the same
samples with each learning rate of ``--lrs`` (mean-field time per step) and prints the steps, the
mean-field time at the stop, the generalization error, its relative change from the next larger
step, and the wall time (compilation included). A first-order integrator's error halves with the
step, so the change between lr and lr/2 estimates the error left at lr/2.

Usage: python benchmarks/relu_scratch_lr.py [--d 100] [--m 1000] [--k 100] [--rho 0.3]
       [--n 100 400 1600 3200] [--lrs 2 1 0.5 0.25 0.125] [--tol 1e-5] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from featurefate._jax import jax
from featurefate.relu_training import ReluTrainOptions, errors, scratch
from featurefate.tasks import relu_teachers, sample_relu_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--rho", type=float, default=0.3)
    parser.add_argument("--n", type=int, nargs="+", default=[100, 400, 1600, 3200])
    parser.add_argument("--lrs", type=float, nargs="+", default=[2.0, 1.0, 0.5, 0.25, 0.125])
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--max-steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    teachers = relu_teachers(args.d, args.k, args.rho, n_instances=1, seed=rng)
    print(f"d = {args.d}, m = {args.m}, k = {args.k}, one instance, tol = {args.tol:g}")
    print(f"{'n':>5} {'lr':>6} {'steps':>6} {'time':>7} {'error':>10} {'change':>8} {'wall s':>7}")
    for n in args.n:
        X, y = sample_relu_data(teachers.W, teachers.c_target, n, seed=rng)
        previous = None
        for lr in sorted(args.lrs, reverse=True):
            options = ReluTrainOptions(lr=lr, tol=args.tol, max_steps=args.max_steps)
            start = time.perf_counter()
            result = scratch(X, y, key=jax.random.PRNGKey(args.seed), width=args.m, options=options)
            wall = time.perf_counter() - start
            error = float(errors(result.W, result.c, teachers.W, teachers.c_target)[0])
            steps = int(result.steps[0])
            change = "" if previous is None else f"{error / previous - 1:+.1%}"
            flag = "" if bool(result.converged[0]) else "  (step limit)"
            print(
                f"{n:>5} {lr:>6g} {steps:>6} {steps * lr:>7.1f} {error:>10.4e} {change:>8} "
                f"{wall:>7.1f}{flag}",
                flush=True,
            )
            previous = error


if __name__ == "__main__":
    main()
