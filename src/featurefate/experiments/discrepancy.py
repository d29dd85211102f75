r"""Dataset discrepancies against transferability: Section 2.1, Theorem 2.2 and Fig. 5 of the paper.

The paper's claim: distances between the source and target data distributions do not predict
transfer. For the linear model both joints :math:`p(x, y)` are Gaussian (docs/theory.md, Dataset discrepancies), so this
experiment puts, per cell ``(theta, target_norm, sigma)``,

- the closed-form distances of :mod:`featurefate.theory.discrepancy` (KL, W2);
- sample-based distances of :mod:`featurefate.distances` between ``n_samples`` draws of each
  joint, per instance: W1, Dudley and the Gaussian-fit KL, both on the raw points in
  :math:`\mathbb R^{D+1}` (what a user with data would compute) and on the points projected on
  the 3 coordinates :math:`(\hat\beta_s \cdot x, \nu \cdot x, y)` where the joints differ
  (``*_subspace``; the joints are identical and independent on the other D - 2 directions, so the
  population distances are the same, and the small-sample bias, which grows with the dimension,
  is far smaller);
- the transferabilities of linear transfer and fine-tuning, from the closed forms at the finite
  D (:func:`featurefate.theory.linear.transferability`) and simulated per instance from the exact
  gradient-flow endpoints (:mod:`featurefate.estimators`) on a drawn target training set: no
  network is trained, which makes a cell cheap.

:func:`correlations` then gives, over a whole sweep, the Pearson and Spearman correlation of
every distance with every transferability (the paper's Fig. 5 reports that none is negative,
i.e. a larger distance does not mean less transfer).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import xarray as xr

import featurefate
from featurefate import _validation as v
from featurefate import distances
from featurefate import estimators as est
from featurefate.experiments._stats import mean_and_stderr
from featurefate.tasks import draw_instances, sample_data
from featurefate.theory import discrepancy as theory_distance
from featurefate.theory import linear as theory

__all__ = [
    "CELL_AXES",
    "DISTANCES",
    "TRANSFERABILITIES",
    "DiscrepancyConfig",
    "check_cell",
    "correlations",
    "run_cell",
]

CELL_AXES = ("theta", "target_norm", "sigma")
"""Coordinates of one cell: the angle between the teachers (radians), the target teacher's norm
and the label noise of both tasks."""

DISTANCES = (
    "theory_kl",
    "theory_w2",
    "sample_w1",
    "sample_dudley",
    "sample_kl",
    "sample_w1_subspace",
    "sample_dudley_subspace",
    "sample_kl_subspace",
)
"""Distance variables of a cell, in the order :func:`correlations` reports them."""

TRANSFERABILITIES = (
    "theory_transferability_linear",
    "transferability_linear",
    "theory_transferability_finetune_paper",
    "transferability_finetune_paper",
    "theory_transferability_finetune_exact",
    "transferability_finetune_exact",
)
"""Transferability variables of a cell (theory at the finite D, and simulated)."""

_METHODS = ("scratch", "linear", "finetune_paper", "finetune_exact")


@dataclass(frozen=True)
class DiscrepancyConfig:
    """Fixed parameters of the discrepancy experiment.

    Attributes
    ----------
    dim : int
        Input dimension D, >= 3.
    n_instances : int
        Independent teacher pairs per cell, >= 2.
    n_samples : int
        Points drawn from each joint for the sample distances, >= 2 (and ``2 * n_samples <=
        max_points`` for the Dudley linear program). ``sample_kl`` fits a covariance in D + 1
        dimensions and is meaningful only for ``n_samples > dim + 1`` (below, the ridge of
        :func:`featurefate.distances.gaussian_kl` dominates it).
    alpha : float
        Target samples per dimension where transfer is evaluated; ``n = round(alpha * dim)``
        target samples, at least 3 and away from ``[dim - 1, dim + 1]`` (where the expected
        scratch error is infinite for sigma > 0).
    depth : int
        Network depth L, >= 2 (enters the fine-tuning endpoint of the exact variant).
    source_norm : float
        :math:`|\\beta_s|`, > 0.
    dudley_method : {"lp", "transport"}
        How :func:`featurefate.distances.dudley` is solved (the same value either way).
    max_points : int
        Size limit of the Dudley linear program (pooled points).
    """

    dim: int = 20
    n_instances: int = 4
    n_samples: int = 50
    alpha: float = 0.5
    depth: int = 2
    source_norm: float = 1.0
    dudley_method: str = "lp"
    max_points: int = 600

    def __post_init__(self):
        v.integer("dim", self.dim, low=3)
        v.integer("n_instances", self.n_instances, low=2)
        v.integer("n_samples", self.n_samples, low=2)
        v.real_array("alpha", self.alpha, low=0.0, low_open=True)
        v.integer("depth", self.depth, low=2)
        v.real_array("source_norm", self.source_norm, low=0.0, low_open=True)
        v.choice("dudley_method", self.dudley_method, distances.DUDLEY_METHODS)
        v.integer("max_points", self.max_points, low=4)
        n = self.n_target
        if n < 3:
            raise ValueError(
                f"alpha * dim must round to at least 3 target samples; got alpha = "
                f"{self.alpha:g}, dim = {self.dim} (n = {n})"
            )
        if self.dim - 1 <= n <= self.dim + 1:
            raise ValueError(
                f"alpha * dim must stay out of [dim - 1, dim + 1] = [{self.dim - 1}, "
                f"{self.dim + 1}], where the expected scratch error is infinite; got n = {n}"
            )
        if self.dudley_method == "lp" and 2 * self.n_samples > self.max_points:
            raise ValueError(
                f"2 * n_samples must be at most max_points = {self.max_points} for the Dudley "
                f"linear program; got n_samples = {self.n_samples}"
            )

    @property
    def n_target(self) -> int:
        """Target training-set size ``round(alpha * dim)``."""
        return round(self.alpha * self.dim)


def check_cell(config: DiscrepancyConfig, cell: dict) -> tuple[float, float, float]:
    """Validate one cell; return ``(theta, target_norm, sigma)`` as floats.

    ``theta`` in [0, pi], ``target_norm`` > 0, ``sigma`` > 0 (the KL divergence between the
    joints is infinite without label noise).
    """
    missing = [axis for axis in CELL_AXES if axis not in cell]
    if missing:
        raise ValueError(f"cell must give {', '.join(CELL_AXES)}; missing {missing[0]!r}")
    theta = float(v.real_array("theta", cell["theta"], low=0.0, high=np.pi))
    target_norm = float(v.real_array("target_norm", cell["target_norm"], low=0.0, low_open=True))
    sigma = float(v.real_array("sigma", cell["sigma"], low=0.0, low_open=True))
    return theta, target_norm, sigma


def _joint(X, y):
    return np.concatenate([X, y[..., None]], axis=-1)


def _subspace_joint(X, y, basis):
    """Coordinates ``(X @ basis, y)``: the joint restricted to span(beta_s, beta_t) and y."""
    return np.concatenate([np.einsum("knd,kdj->knj", X, basis), y[..., None]], axis=-1)


def run_cell(config: DiscrepancyConfig, cell: dict, seed) -> xr.Dataset:
    r"""Distances between the source and target joints, and transferability, for one cell.

    Parameters
    ----------
    config : DiscrepancyConfig
    cell : dict
        ``theta`` (radians in [0, pi]), ``target_norm`` (> 0), ``sigma`` (> 0).
    seed : int or numpy.random.SeedSequence
        All randomness (teachers, target training sets, distance samples) derives from it.

    Returns
    -------
    xarray.Dataset
        Dim ``instance``; scalar coords ``theta``, ``target_norm``, ``sigma``. Variables:
        ``theory_kl``, ``theory_w2`` (closed forms); ``sample_w1``, ``sample_dudley``,
        ``sample_kl`` and their ``*_subspace`` versions (per instance);
        ``error_<method>`` per instance for ``scratch``, ``linear``, ``finetune_paper``,
        ``finetune_exact``; ``transferability_<method>`` (instance mean of the paired
        differences) with ``..._stderr``; ``theory_transferability_<method>`` (exact finite-size
        forms at ``dim`` and ``n / dim``; the exact fine-tuning variant at its typical c).
    """
    theta, target_norm, sigma = check_cell(config, cell)
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    task_seed, sample_seed = seq.spawn(2)
    n, dim, k = config.n_target, config.dim, config.n_instances
    norms = {"source_norm": config.source_norm, "target_norm": target_norm}

    inst = draw_instances(dim, n, theta, sigma, k, **norms, seed=np.random.default_rng(task_seed))
    rng = np.random.default_rng(sample_seed)
    X_s, y_s = sample_data(inst.beta_s, config.n_samples, sigma, seed=rng)
    X_t, y_t = sample_data(inst.beta_t, config.n_samples, sigma, seed=rng)
    # An orthonormal basis of span(beta_s, beta_t), completed arbitrarily when they are parallel
    # (the Householder QR keeps Q orthonormal): the coordinates where the joints differ.
    basis = np.linalg.qr(np.stack([inst.beta_s, inst.beta_t], axis=-1))[0]
    points = {
        "": (_joint(X_s, y_s), _joint(X_t, y_t)),
        "_subspace": (_subspace_joint(X_s, y_s, basis), _subspace_joint(X_t, y_t, basis)),
    }
    sample = {}
    for suffix, (source, target) in points.items():
        sample[f"sample_w1{suffix}"] = [
            distances.wasserstein1(a, b) for a, b in zip(source, target, strict=True)
        ]
        sample[f"sample_dudley{suffix}"] = [
            distances.dudley(a, b, method=config.dudley_method, max_points=config.max_points)
            for a, b in zip(source, target, strict=True)
        ]
        sample[f"sample_kl{suffix}"] = [
            distances.gaussian_kl(a, b) for a, b in zip(source, target, strict=True)
        ]

    endpoints = est.exact_endpoints(inst.X, inst.y, inst.beta_s, depth=config.depth)
    errors = {m: est.generalization_error(w, inst.beta_t) for m, w in endpoints.items()}

    alpha = n / dim
    common = {**norms, "dim": dim}
    theory_t = {
        "linear": theory.transferability("linear", alpha, theta, sigma, **common),
        "finetune_paper": theory.transferability(
            "finetune", alpha, theta, sigma, variant="paper", depth=config.depth, **common
        ),
        "finetune_exact": theory.transferability(
            "finetune", alpha, theta, sigma, variant="exact", depth=config.depth, **common
        ),
    }

    inst_dim = ("instance",)
    data = {
        "theory_kl": ((), theory_distance.kl_divergence(theta, sigma, **norms)),
        "theory_w2": ((), theory_distance.wasserstein2(theta, sigma, **norms)),
    }
    data.update({name: (inst_dim, np.asarray(values)) for name, values in sample.items()})
    for method in _METHODS:
        data[f"error_{method}"] = (inst_dim, errors[method])
    for method in _METHODS[1:]:
        mean, se = mean_and_stderr(errors["scratch"] - errors[method])
        data[f"transferability_{method}"] = ((), mean)
        data[f"transferability_{method}_stderr"] = ((), se)
        data[f"theory_transferability_{method}"] = ((), theory_t[method])

    ds = xr.Dataset(
        data,
        coords={
            "instance": np.arange(k),
            "theta": theta,
            "target_norm": target_norm,
            "sigma": sigma,
        },
    )
    _label(ds)
    ds.attrs.update(
        {
            "featurefate_version": featurefate.__version__,
            "experiment": "discrepancy",
            "config": json.dumps(asdict(config)),
            "seed": str(seq.entropy),
            "dim": dim,
            "depth": config.depth,
            "alpha": alpha,
            "n": n,
            "n_samples": config.n_samples,
            "source_norm": config.source_norm,
            "simulation": "transferabilities from the exact gradient-flow endpoints "
            "(featurefate.estimators: minimum-norm interpolator for scratch, rank-one refit "
            "for linear transfer, X^+y + c(I-P)beta_s for fine-tuning) on drawn target data; "
            "no network is trained",
            "theory": "exact finite-size forms at dim and alpha = n / dim; fine-tuning as the "
            "paper's endpoint (finetune_paper) and the corrected one (finetune_exact)",
            "dudley": "sup of mean h(source) - mean h(target) over |h| <= 1, Lip(h) <= 1 "
            f"(bounded by 2), method {config.dudley_method!r}",
        }
    )
    return ds


_LONG_NAMES = {
    "theory_kl": "KL(p_s || p_t) between the joints, closed form",
    "theory_w2": "W2(p_s, p_t) between the joints, Bures closed form",
    "sample_w1": "W1 between n_samples draws of each joint in D + 1 dimensions",
    "sample_dudley": "Dudley metric between n_samples draws of each joint in D + 1 dimensions",
    "sample_kl": "KL between Gaussians fitted to the draws in D + 1 dimensions",
    "sample_w1_subspace": "W1 between the draws projected on span(beta_s, beta_t) and y",
    "sample_dudley_subspace": "Dudley metric between the draws projected on span(beta_s, beta_t) and y",
    "sample_kl_subspace": "Gaussian-fit KL between the draws projected on span(beta_s, beta_t) and y",
}


def _label(ds: xr.Dataset) -> None:
    ds["theta"].attrs["units"] = "radians"
    ds["theta"].attrs["long_name"] = "angle between source and target teachers"
    ds["target_norm"].attrs["long_name"] = "|beta_t|"
    ds["sigma"].attrs["long_name"] = "label-noise standard deviation of both tasks"
    for name, text in _LONG_NAMES.items():
        ds[name].attrs["long_name"] = text
    for name in ("theory_kl", "sample_kl", "sample_kl_subspace"):
        ds[name].attrs["units"] = "nats"
    for method in _METHODS[1:]:
        ds[f"transferability_{method}"].attrs["long_name"] = (
            f"E[R_scratch] - E[R_{method}], mean over instances (simulated endpoints)"
        )


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties averaged (as Spearman's coefficient needs)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    unique, inverse = np.unique(values, return_inverse=True)
    if len(unique) < len(values):
        sums = np.bincount(inverse, weights=ranks)
        counts = np.bincount(inverse)
        ranks = (sums / counts)[inverse]
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r; NaN, without a warning, for fewer than 3 points or a constant side."""
    if len(a) < 3 or np.ptp(a) == 0.0 or np.ptp(b) == 0.0:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    return float(np.clip(np.sum(a * b) / np.sqrt(np.sum(a**2) * np.sum(b**2)), -1.0, 1.0))


def correlations(
    ds: xr.Dataset, *, distances=DISTANCES, transferabilities=TRANSFERABILITIES
) -> xr.Dataset:
    """Pearson and Spearman correlation of each distance with each transferability over a grid.

    Per-instance variables are first averaged over ``instance``; every remaining point (one per
    cell of the sweep) is a sample. Pairs with a non-finite value are left out.

    Parameters
    ----------
    ds : xarray.Dataset
        Cells of :func:`run_cell` combined along the cell axes (dims ``theta``, ``target_norm``,
        ``sigma``, ``instance``); a single cell gives NaN.
    distances, transferabilities : sequence of str
        Variable names; default every one the experiment writes that ``ds`` holds.

    Returns
    -------
    xarray.Dataset
        ``pearson`` and ``spearman`` with dims ``(distance, transferability)``, and ``n_cells``
        (the number of finite pairs behind each coefficient). NaN where fewer than 3 points or
        one side is constant.
    """
    dist_names = [name for name in distances if name in ds]
    trans_names = [name for name in transferabilities if name in ds]
    if not dist_names or not trans_names:
        raise ValueError(
            "ds must hold at least one distance and one transferability variable of the "
            f"discrepancy experiment; got variables {sorted(ds.data_vars)}"
        )

    def cells(name):
        da = ds[name]
        return da.mean("instance") if "instance" in da.dims else da

    shape = (len(dist_names), len(trans_names))
    pearson, spearman = np.full(shape, np.nan), np.full(shape, np.nan)
    count = np.zeros(shape, dtype=np.int64)
    for i, d_name in enumerate(dist_names):
        for j, t_name in enumerate(trans_names):
            a_da, b_da = xr.broadcast(cells(d_name), cells(t_name))
            a = np.asarray(a_da, dtype=np.float64).ravel()
            b = np.asarray(b_da.transpose(*a_da.dims), dtype=np.float64).ravel()
            keep = np.isfinite(a) & np.isfinite(b)
            count[i, j] = int(keep.sum())
            pearson[i, j] = _pearson(a[keep], b[keep])
            spearman[i, j] = _pearson(_ranks(a[keep]), _ranks(b[keep]))
    dims = ("distance", "transferability")
    out = xr.Dataset(
        {"pearson": (dims, pearson), "spearman": (dims, spearman), "n_cells": (dims, count)},
        coords={"distance": dist_names, "transferability": trans_names},
    )
    out.attrs["description"] = (
        "correlation across the grid cells of each distance (instance mean) with each "
        "transferability; positive or zero means a larger distance does not mean less transfer"
    )
    return out
