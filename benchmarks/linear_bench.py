"""Speed of the deep linear simulation engine against the plain data-path implementation.

Prints, in one run:

(a) this engine: time per step, for rank-one chains (``init = "rank_one"``, O(D) per step in the
    data's eigenbasis) and for dense layers (O(L D^2) per step), and the time per cell (pretrain,
    scratch, linear + ridge transfer, fine-tune, exact endpoints and theory) at D = 500 with
    20 instances for alpha in {0.5, 0.9, 1.5};
(b) the same gradient descent written the plain way (autodiff through the n x D data every step,
    as the authors did), at the same step size and step count, and the per-step speed-up;
(c) the machine's roofline for the inner loop: measured memory bandwidth and matrix-product
    FLOP rate, and the fraction of it each implementation reaches;
(d) time to solution against the authors' settings (pretraining and fine-tuning at lr 0.01 for
    up to 5000 steps, scratch at lr 0.1 for up to 10000 steps, tol 1e-6), with the agreement of
    both with the exact gradient-flow endpoints. A whole cell is timed warm (as every cell of a
    sweep worker after its first) and cold (compilation included). The authors' iterates are computed with this
    engine at their fixed step sizes (the same iteration in exact arithmetic); their time is
    their step count times the measured per-step time of the plain implementation.

Usage: python benchmarks/linear_bench.py [--dim 500] [--instances 20] [--alphas 0.5 0.9 1.5]
       [--init rank_one|random]   (the init of part (d); random takes about 30 minutes)
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from _timing import best_of
from featurefate import estimators as est
from featurefate import training as tr
from featurefate import transfer
from featurefate._chunked import Limits, start
from featurefate._jax import jax, jnp
from featurefate.experiments.linear_phase import LinearPhaseConfig, run_cell
from featurefate.nets.linear import RankOneParams
from featurefate.tasks import draw_instances

THETA, SIGMA = np.pi / 4, 0.2


def memory_bandwidth(n_bytes=160e6, steps=50):
    """Bytes moved per second by a streaming read-modify-write (x <- a x) inside a loop."""
    x = jnp.ones(int(n_bytes // 8))
    run = jax.jit(lambda x: jax.lax.fori_loop(0, steps, lambda i, x: x * 0.999999, x))
    run(x).block_until_ready()
    return 2 * n_bytes * steps / best_of(lambda: run(x))


def matmul_rate(size=2000):
    """Float64 FLOP rate of a square matrix product."""
    a = jnp.ones((size, size))
    run = jax.jit(lambda a: a @ a)
    run(a).block_until_ready()
    return 2 * size**3 / best_of(lambda: run(a))


def plain_runner(lr, steps):
    """Plain gradient descent: autodiff of the mean squared error through the data, jitted."""

    def loss(p, X, y):
        hidden = X @ p[0].T
        return jnp.mean((hidden @ p[1][0] - y) ** 2)

    def one(p, X, y):
        def body(_, p):
            g = jax.grad(loss)(p, X, y)
            return tuple(a - lr * b for a, b in zip(p, g, strict=True))

        return jax.lax.fori_loop(0, steps, body, p)

    return jax.jit(jax.vmap(one))


def engine_runner(stats, lr, steps, params, *, semi_implicit=False):
    """This engine's compiled inner loop: ``steps`` fixed-size steps, no stopping.

    Dense layers run :func:`featurefate.training._dense_chunk`; rank-one chains run
    :func:`featurefate.training._rank_one_chunk` on their state in the data's eigenbasis.
    """
    k = stats.b.shape[0]
    counters = start(k)
    limits = Limits(max_steps=steps + 1, max_time=jnp.inf, length=steps)
    rule = tr.StepRule(eta=0.5, lr=lr, tol=-1.0, max_move=0.0)
    flags = {"rule": rule, "fixed": True, "capped": False, "semi_implicit": semi_implicit}
    if isinstance(params, RankOneParams):
        state, _, constants = tr._rotate_in(params, stats)
        return lambda: tr._rank_one_chunk(state, counters, limits, constants=constants, **flags)[0]
    params, stats, null_norm2 = tr._rotate_dense_in(params, stats)
    chunk = partial(tr._dense_chunk, stats=stats, null_norm2=null_norm2, **flags)
    return lambda: chunk(params, counters, limits)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=500)
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.9, 1.5])
    parser.add_argument("--per-step-steps", type=int, default=50)
    parser.add_argument(
        "--per-step-only", action="store_true", help="skip the time-to-solution part (d)"
    )
    parser.add_argument("--init", choices=["rank_one", "random"], default="rank_one")
    args = parser.parse_args()
    dim, k = args.dim, args.instances
    print(f"featurefate deep linear benchmark: D = {dim}, L = 2, {k} instances, float64")
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}; theta = pi/4, sigma = {SIGMA}\n")

    bandwidth, flops = memory_bandwidth(), matmul_rate()
    print(
        f"(c) roofline: memory bandwidth {bandwidth / 1e9:.1f} GB/s, matmul {flops / 1e9:.1f} GFLOP/s"
    )
    layer_bytes = k * dim * dim * 8
    print()

    header = (
        f"{'alpha':>5} {'rank-one ms':>11} {'dense ms':>8} {'dense-SI ms':>11} {'plain ms':>8} "
        f"{'plain/rank-one':>14} {'plain/dense':>11} "
        f"{'rank-one roof':>13} {'dense roof':>10} {'dense-SI roof':>13} {'plain roof':>10}"
    )
    print("(a, b) per step at equal step size and count (fine-tuning loss of the target sample)")
    print("      dense: explicit steps; dense-SI: semi-implicit (conjugate gradients added)")
    print(header)
    key = jax.random.PRNGKey(0)
    steps = args.per_step_steps
    plain_per_step = {}
    for alpha in args.alphas:
        n = round(alpha * dim)
        inst = draw_instances(dim, n, THETA, SIGMA, k, seed=1)
        stats = tr.empirical_statistics(inst.X, inst.y)
        dense_params = transfer._init_batch(
            key, n_instances=k, dim=dim, depth=2, init_scale=1e-2, init="random"
        )
        chain = transfer._init_batch(
            key, n_instances=k, dim=dim, depth=2, init_scale=1e-2, init="rank_one"
        )
        rank_one = engine_runner(stats, 1e-3, 100 * steps, chain)
        dense = engine_runner(stats, 1e-3, steps, dense_params)
        dense_si = engine_runner(stats, 1e-3, steps, dense_params, semi_implicit=True)
        plain = plain_runner(1e-3, steps)
        X, y = jnp.asarray(inst.X), jnp.asarray(inst.y)
        jax.block_until_ready((rank_one(), dense(), dense_si(), plain(dense_params, X, y)))
        t_rank_one = best_of(rank_one, repeats=10) / (100 * steps)  # 0.1 s each: noisy
        t_dense = best_of(dense) / steps
        t_dense_si = best_of(dense_si) / steps
        t_plain = best_of(lambda f=plain, p=dense_params, X=X, y=y: f(p, X, y)) / steps
        plain_per_step[alpha] = t_plain
        # rank-one: read z and the two constant vectors (eigenvalues, b), write z: 4 K D floats
        rank_one_floor = 4 * k * dim * 8 / bandwidth
        # dense: the moving part of the first layer, (D, min(n, D)) in S's eigenbasis, must at
        # least be read and written once per step (as every plain gradient step does)
        dense_floor = 2 * layer_bytes * min(n, dim) / dim / bandwidth
        # plain: forward X W^T and the weight gradient X^T (delta W_2), 2 n D^2 flops each
        plain_floor = 2 * 2 * n * dim * dim * k / flops
        print(
            f"{alpha:5.2f} {1e3 * t_rank_one:11.3f} {1e3 * t_dense:8.2f} {1e3 * t_dense_si:11.2f} "
            f"{1e3 * t_plain:8.2f} {t_plain / t_rank_one:13.0f}x {t_plain / t_dense:10.1f}x "
            f"{rank_one_floor / t_rank_one:13.0%} {dense_floor / t_dense:10.0%} "
            f"{dense_floor / t_dense_si:13.0%} {plain_floor / t_plain:10.0%}"
        )
    print()

    if args.per_step_only:
        return
    print(
        f"(a, d) time to solution per cell, against the exact gradient-flow endpoints "
        f"(init = {args.init}, scale 1e-5, for both)"
    )
    print(
        f"{'alpha':>5} {'stage':>9} {'engine steps':>12} {'engine s':>8} {'gap':>8} | "
        f"{'authors steps':>13} {'plain s (est.)':>14} {'gap':>8} {'speed-up':>8}"
    )
    authors = {"pretrain": (0.01, 5000), "scratch": (0.1, 10000), "finetune": (0.01, 5000)}
    for alpha in args.alphas:
        n = round(alpha * dim)
        inst = draw_instances(dim, n, THETA, SIGMA, k, seed=2)
        stats = tr.empirical_statistics(inst.X, inst.y)
        params = transfer._init_batch(
            key, n_instances=k, dim=dim, depth=2, init_scale=1e-5, init=args.init
        )
        t_plain = plain_per_step[alpha]
        exact = {
            "scratch": est.min_norm_fit(inst.X, inst.y),
            "finetune": est.finetune_fit(inst.X, inst.y, inst.beta_s, variant="exact"),
        }
        config = LinearPhaseConfig(
            dim=dim,
            n_instances=k,
            lam=(0.1,),
            init=args.init,
            training=transfer.TrainingOptions(max_steps=50_000),  # as configs/paper-linear.toml
        )
        cell = {"alpha": alpha, "theta": THETA, "sigma": SIGMA}
        start = time.perf_counter()
        run_cell(config, cell, seed=3)  # a sweep worker's first cell: compiles
        cold_time = time.perf_counter() - start
        start = time.perf_counter()
        run_cell(config, cell, seed=2)  # every later cell of the worker
        cell_time = time.perf_counter() - start
        total_authors = 0.0
        for stage in ("pretrain", "scratch", "finetune"):
            lr, max_steps = authors[stage]
            start = time.perf_counter()
            if stage == "pretrain":
                stage_stats, init, target = (
                    tr.population_statistics(inst.beta_s),
                    params,
                    inst.beta_s,
                )
                ours = tr.train(init, stage_stats, **config.stage_options(stage, n).as_kwargs())
                pre_params = ours.params
            elif stage == "scratch":
                stage_stats, init, target = stats, params, exact["scratch"]
                ours = tr.train(init, stage_stats, **config.stage_options(stage, n).as_kwargs())
            else:
                stage_stats, init, target = stats, pre_params, exact["finetune"]
                ours = tr.train(init, stage_stats, **config.stage_options(stage, n).as_kwargs())
            t_ours = time.perf_counter() - start
            theirs = tr.train(init, stage_stats, step_size=lr, tol=1e-6, max_steps=max_steps)
            gap_ours = np.max(np.linalg.norm(ours.w - target, axis=1))
            gap_theirs = np.max(np.linalg.norm(theirs.w - target, axis=1))
            t_theirs = int(theirs.steps.max()) * t_plain
            total_authors += t_theirs
            print(
                f"{alpha:5.2f} {stage:>9} {int(ours.steps.max()):12d} {t_ours:8.1f} {gap_ours:8.1e} | "
                f"{int(theirs.steps.max()):13d} {t_theirs:14.1f} {gap_theirs:8.1e} "
                f"{t_theirs / t_ours:7.0f}x"
            )
        print(
            f"{alpha:5.2f} {'cell':>9} {'':12} {cell_time:8.1f} {'':8} | {'':13} "
            f"{total_authors:14.1f} {'':8} {total_authors / cell_time:7.0f}x"
        )
        print(
            f"{alpha:5.2f} {'cold cell':>9} {'':12} {cold_time:8.1f} {'':8} | {'':13} "
            f"{total_authors:14.1f} {'':8} {total_authors / cold_time:7.0f}x  (compiles included)"
        )


if __name__ == "__main__":
    main()
