"""Brute-force Monte Carlo of the corrected fine-tuning endpoint against the finite-D closed form.

For each cell, ``--draws`` instances of Gaussian data X (n x D) and labels y are drawn, the
endpoint w = X^+ y + c (I - P) beta_s is computed from a Cholesky factor of X X^T (checked
against estimators.finetune_components), c solving |beta_s|^2 c^(2L/(L-1)) = a c^2 + b, and its
error |w - beta_t|^2 is averaged.
The table compares the mean with finetune_error(variant="exact", dim=D) (the expectation over
the law of c) and with the old typical-c plug-in, in standard errors (z). The coupled term
c^2 a - 2 c beta_s^T (I - P) beta_t, which carries all of the difference and less noise, is
compared the same way.

Run: PYTHONPATH=src python benchmarks/finetune_exact_mc.py [--draws 100000]
"""

from __future__ import annotations

import argparse
import os
import time

# one BLAS thread: batched small factorisations oversubscribe the cores otherwise (10x slower)
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

from featurefate import estimators as est  # noqa: E402
from featurefate.tasks import draw_instances  # noqa: E402
from featurefate.theory import linear as th  # noqa: E402

CELLS = [
    # dim, n, theta, sigma, source_norm, target_norm, depth
    (20, 8, 0.9, 1.5, 1.0, 1.0, 2),
    (20, 10, 0.7, 1.0, 1.5, 0.8, 2),
    (20, 8, 0.6, 1.0, 1.0, 1.0, 3),
    (50, 20, 1.0, 1.5, 1.0, 1.0, 2),
    (50, 30, 0.5, 1.0, 0.7, 1.3, 2),
    (150, 60, 1.0, 1.5, 1.0, 1.0, 2),
    (150, 90, 0.6, 1.2, 1.2, 1.0, 2),
]
CHUNK = 2000


def components(X, y, beta_s, depth):
    """X^+ y, (I - P) beta_s and c for wide X (n < D), from a Cholesky factor of X X^T.

    X^+ = X^T (X X^T)^{-1} for full row rank; ten times cheaper than the SVD at D = 150, and
    checked against estimators.finetune_components on the first chunk.
    """
    factor = np.linalg.cholesky(X @ np.swapaxes(X, 1, 2))
    rhs = np.stack([y, np.einsum("knd,kd->kn", X, beta_s)], axis=-1)
    half = np.linalg.solve(factor, rhs)
    coef = np.linalg.solve(np.swapaxes(factor, 1, 2), half)
    interpolant, projected = np.moveaxis(np.swapaxes(X, 1, 2) @ coef, -1, 0)
    residual = beta_s - projected
    c = th.solve_finetune_scale(
        np.sum(residual**2, axis=1),
        np.sum(interpolant**2, axis=1),
        source_norm=np.linalg.norm(beta_s, axis=1),
        depth=depth,
    )
    return interpolant, residual, np.asarray(c)


def check_components():
    inst = draw_instances(30, 12, 0.7, 1.0, 50, source_norm=1.3, seed=99)
    for depth in (2, 3):
        ours = components(inst.X, inst.y, inst.beta_s, depth)
        reference = est.finetune_components(inst.X, inst.y, inst.beta_s, depth=depth)
        for x, y in zip(ours, reference, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-11)


def brute_force(dim, n, theta, sigma, source_norm, target_norm, depth, draws, seed):
    rng = np.random.default_rng(seed)
    errors, coupled = [], []
    for _ in range(draws // CHUNK):
        inst = draw_instances(
            dim,
            n,
            theta,
            sigma,
            CHUNK,
            source_norm=source_norm,
            target_norm=target_norm,
            seed=rng,
        )
        interpolant, residual, c = components(inst.X, inst.y, inst.beta_s, depth)
        w = interpolant + c[:, None] * residual
        errors.append(est.generalization_error(w, inst.beta_t))
        a = np.sum(residual**2, axis=1)
        g = np.sum(residual * inst.beta_t, axis=1)
        coupled.append(c**2 * a - 2.0 * c * g)
    return np.concatenate(errors), np.concatenate(coupled)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    check_components()

    print(f"draws per cell: {args.draws}; z = (theory - MC mean) / standard error")
    header = (
        f"{'D':>4} {'n':>4} {'L':>2} {'theta':>6} {'sigma':>5} {'|bs|':>5} {'|bt|':>5} | "
        f"{'MC error':>18} {'exact':>8} {'z':>6} {'plug-in':>8} {'z':>6} | "
        f"{'MC coupled':>18} {'exact':>8} {'z':>6} {'z plug':>7} | {'s':>5}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for index, (dim, n, theta, sigma, ns, nt, depth) in enumerate(CELLS):
        start = time.perf_counter()
        error, coupled = brute_force(
            dim, n, theta, sigma, ns, nt, depth, args.draws, seed=args.seed + index
        )
        norms = {"source_norm": ns, "target_norm": nt, "depth": depth}
        exact = th.finetune_error(n / dim, theta, sigma, variant="exact", dim=dim, **norms)
        known = sigma**2 * n / (dim - n - 1) + nt**2 * (1 - n / dim)
        c_typ = th.finetune_scale(n / dim, sigma, dim=dim, **norms)
        plug_coupled = (1 - n / dim) * ((c_typ * ns) ** 2 - 2 * c_typ * ns * nt * np.cos(theta))
        plug = known + plug_coupled
        m, se = error.mean(), error.std(ddof=1) / np.sqrt(error.size)
        mc, sec = coupled.mean(), coupled.std(ddof=1) / np.sqrt(coupled.size)
        z, zp = (exact - m) / se, (plug - m) / se
        zc, zcp = (exact - known - mc) / sec, (plug_coupled - mc) / sec
        worst = max(worst, abs(z), abs(zc))
        print(
            f"{dim:>4} {n:>4} {depth:>2} {theta:>6.3f} {sigma:>5.2f} {ns:>5.2f} {nt:>5.2f} | "
            f"{m:>9.5f} ± {se:.5f} {exact:>8.5f} {z:>6.2f} {plug:>8.5f} {zp:>6.2f} | "
            f"{mc:>9.5f} ± {sec:.5f} {exact - known:>8.5f} {zc:>6.2f} {zcp:>7.2f} | "
            f"{time.perf_counter() - start:>5.0f}",
            flush=True,
        )
    print(f"largest |z| of the exact closed form: {worst:.2f} (tolerance 3.5)")


if __name__ == "__main__":
    main()
