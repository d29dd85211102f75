"""Speed of population pretraining of the mean-field ReLU network at paper scale (Section 4).

Prints, in one run, for d = 100, m = 1000, k = 100 (the paper's scale) by default:

(a) the time of one gradient step on the exact population loss (two (m, m, d) matrix products
    and one arccos per Gram entry), against the same step with ``jnp.arccos``;
(b) pretraining until the loss is ``--tol`` times the zero network's loss or ``--max-steps``:
    wall time, steps, final relative loss, the source's residual |P_perp f_s|^2 / |f_s|^2 and the
    exact alignment of the model's kernel with the source's (plain and centred);
(c) the relative loss along the way (every ``--check-every`` steps).

Usage: python benchmarks/relu_bench.py [--d 100] [--m 1000] [--k 100] [--rho 0.3] [--lr 2]
       [--tol 1e-4] [--max-steps 3000] [--instances 1]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from _timing import best_of
from featurefate._jax import jax, jnp
from featurefate.nets import relu as nets
from featurefate.relu_training import ReluTrainOptions, population_task, train
from featurefate.tasks import relu_teachers
from featurefate.theory import relu as theory


def _sci(values):
    return "[" + ", ".join(f"{x:.2e}" for x in np.atleast_1d(np.asarray(values))) + "]"


def step_times(params, task):
    """Seconds per population gradient evaluation: this module's arccos and jnp.arccos."""
    one = jax.tree_util.tree_map(lambda x: x[0], params)
    U, a, scale = task.U[0], task.a[0], task.scale[0]
    fast = jax.jit(nets.population_value_and_grad)
    fast_time = best_of(lambda: fast(one, U, a, scale), repeats=5)
    # the same step with XLA's arccos; caches cleared so that the jitted kernel is retraced
    original = nets.arccos
    nets.arccos = jnp.arccos
    jax.clear_caches()
    try:
        slow = jax.jit(nets.population_value_and_grad)
        slow_time = best_of(lambda: slow(one, U, a, scale), repeats=5)
    finally:
        nets.arccos = original
        jax.clear_caches()
    return fast_time, slow_time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--rho", type=float, default=0.3)
    parser.add_argument("--lr", type=float, default=2.0)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--check-every", type=int, default=250)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    print(f"devices: {jax.devices()}, CPUs visible: {os.cpu_count()}")
    print(f"d = {args.d}, m = {args.m}, k = {args.k}, rho = {args.rho}, lr = {args.lr}, "
          f"instances = {args.instances}")  # fmt: skip
    teachers = relu_teachers(args.d, args.k, args.rho, n_instances=args.instances, seed=args.seed)
    task = population_task(teachers.W, teachers.c_source)
    params = nets.init_params(
        jax.random.PRNGKey(args.seed), args.d, args.m, n_instances=args.instances
    )

    fast, slow = step_times(params, task)
    print(f"(a) one gradient step, one instance: {1e3 * fast:.1f} ms "
          f"(with jnp.arccos: {1e3 * slow:.1f} ms)")  # fmt: skip

    print("(b, c) pretraining on the exact population loss")
    # trained in segments of --check-every steps (plain gradient descent has no state besides
    # the parameters, so this is the same run) to record the loss along the way
    options = ReluTrainOptions(lr=args.lr, tol=args.tol, max_steps=args.check_every)
    start = time.perf_counter()
    history, total = [], np.zeros(args.instances, dtype=int)
    while True:
        result = train(params, task, options)
        params, total = result.params, total + result.steps
        history.append((int(total.max()), time.perf_counter() - start, result.relative_loss))
        if result.converged.all() or total.max() >= args.max_steps:
            break
    elapsed = time.perf_counter() - start
    W = result.W
    source = theory.rkhs_projection(W, teachers.W, teachers.c_source)
    norm = source.in_span + source.orthogonal
    target = theory.rkhs_projection(W, teachers.W, teachers.c_target).orthogonal
    kept = ~teachers.removed
    align = theory.kernel_alignment(W, teachers.W, weights_b=kept)
    align_c = theory.kernel_alignment(W, teachers.W, weights_b=kept, centered=True)
    print(f"    wall time {elapsed:.1f} s (compilation included), steps {total.tolist()}, "
          f"converged {result.converged.tolist()}")  # fmt: skip
    print(f"    final relative loss {_sci(result.relative_loss)}")
    print(f"    |P_perp f_s|^2 / |f_s|^2 = {_sci(source.orthogonal / norm)}")
    print(f"    |P_perp f_t|^2 = {_sci(target)}")
    print(f"    kernel alignment {np.array2string(np.asarray(align), precision=4)}, "
          f"centred {np.array2string(np.asarray(align_c), precision=4)}")  # fmt: skip
    print(f"    sphere error {result.sphere_error.max():.1e}")
    print("    steps  seconds  relative loss")
    for steps, seconds, relative in history:
        print(f"    {steps:5d}  {seconds:7.1f}  {_sci(relative)}")


if __name__ == "__main__":
    main()
