r"""Dataset discrepancies against transferability: Section 2.1, Theorem 2.2 and Fig. 5 of the paper.

The paper's claim: distances between the source and target data distributions do not predict
transfer. For the linear model both joints :math:`p(x, y)` are Gaussian, so this experiment
puts, per cell ``(alpha, theta, target_norm, sigma)``,

- the closed-form distances of :mod:`featurefate.theory.discrepancy` (KL, W2);
- sample-based distances of :mod:`featurefate.distances` between ``n_samples`` draws of each
  joint, per instance: W1, the Dudley metric in both conventions (``sample_dudley``: the
  paper's :math:`\|h\|_\infty + \mathrm{Lip}(h) \le 1`; ``sample_dudley_max``: both bounds at
  1) and the Gaussian-fit KL, both on the raw points in
  :math:`\mathbb R^{D+1}` (what a user with data would compute) and on the points projected on
  the 3 coordinates :math:`(\hat\beta_s \cdot x, \nu \cdot x, y)` where the joints differ
  (``*_subspace``; the joints are identical and independent on the other D - 2 directions, so the
  population distances are the same, and the small-sample bias, which grows with the dimension,
  is far smaller);
- the transferabilities of linear transfer and fine-tuning, from the closed forms at the finite
  D (:func:`featurefate.theory.linear.transferability`) and simulated per instance from the exact
  gradient-flow endpoints (:mod:`featurefate.estimators`) on a drawn target training set: no
  network is trained, which makes a cell cheap.

The distances do not depend on alpha (the joints do not), the transferabilities do. At fixed
alpha, on the paper's own grid (unit norms, one sigma, :math:`\theta \in [0, \pi/2]`), eq. (13)
:math:`T_{\rm lt} = R_{\rm sc}(\alpha, \sigma) - \sin^2\theta` decreases strictly in theta while
:math:`KL = (1 - \cos\theta)/\sigma^2` increases strictly: their rank correlation is exactly -1
at every alpha. :func:`correlations` gives, over a whole sweep or at each fixed alpha, the Pearson
and Spearman correlation of every distance with every transferability with seeded bootstrap
intervals; :func:`grid_name` tells the paper's grid from an extended one. The Theorem 2.2
family's Dudley distances come from :func:`theorem22_dudley`, on the two coordinates where its
laws differ.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass

import numpy as np
import xarray as xr
from scipy.stats import rankdata

import featurefate
from featurefate import _validation as v
from featurefate import distances, schema
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
    "grid_name",
    "run_cell",
    "theorem22_dudley",
]

CELL_AXES = ("alpha", "theta", "target_norm", "sigma")
"""Coordinates of one cell: the target samples per dimension, the angle between the teachers
(radians), the target teacher's norm and the label noise of both tasks."""

DISTANCES = (
    "theory_kl",
    "theory_w2",
    *(
        schema.sample_distance_name(d, subspace=subspace)
        for subspace in (False, True)
        for d in schema.SAMPLE_DISTANCES
    ),
)
"""Distance variables of a cell, in the order :func:`correlations` reports them."""

TRANSFERABILITIES = tuple(
    schema.transferability_name(method, theory=theory)
    for method in ("linear", "finetune_paper", "finetune_exact")
    for theory in (True, False)
)
"""Transferability variables of a cell (theory at the finite D, and simulated)."""

_METHODS = ("scratch", "linear", "finetune_paper", "finetune_exact")


@dataclass(frozen=True)
class DiscrepancyConfig:
    """Fixed parameters of the discrepancy experiment (alpha is a cell axis).

    Attributes
    ----------
    dim : int
        Input dimension D, >= 3. Each cell's ``alpha`` gives ``n = round(alpha * dim)`` target
        samples, at least 3 and away from ``[dim - 1, dim + 1]`` (where the expected scratch
        error is infinite for sigma > 0).
    n_instances : int
        Independent teacher pairs per cell, >= 2; also the replicates of the Theorem 2.2 family.
    n_samples : int
        Points drawn from each joint for the sample distances, >= 2 (and ``2 * n_samples <=
        max_points`` for the Dudley linear program). ``sample_kl`` fits a covariance in D + 1
        dimensions and is meaningful only for ``n_samples > dim + 1`` (below, the ridge of
        :func:`featurefate.distances.gaussian_kl` dominates it).
    depth : int
        Network depth L, >= 2 (enters the fine-tuning endpoint of the exact variant).
    source_norm : float
        :math:`|\\beta_s|`, > 0.
    dudley_method : {"lp", "transport"}
        How :func:`featurefate.distances.dudley` is solved, in both conventions (the same value
        either way; ``transport`` is far faster).
    max_points : int
        Size limit of the Dudley linear program (pooled points).
    family_k : tuple of float
        Scales k of the Theorem 2.2 targets :math:`\\beta_t = -k\\beta_s` whose Dudley distances
        (both conventions) each cell reports at its sigma (:func:`theorem22_dudley`); empty for
        none. Each > 0.
    family_seed : int
        Seed of the family's samples (the same in every cell: the family depends on sigma only).
    """

    dim: int = 20
    n_instances: int = 4
    n_samples: int = 50
    depth: int = 2
    source_norm: float = 1.0
    dudley_method: str = "transport"
    max_points: int = 600
    family_k: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 100.0)
    family_seed: int = 0

    def __post_init__(self):
        v.integer("dim", self.dim, low=3)
        v.integer("n_instances", self.n_instances, low=2)
        v.integer("n_samples", self.n_samples, low=2)
        v.integer("depth", self.depth, low=2)
        v.real_array("source_norm", self.source_norm, low=0.0, low_open=True)
        v.choice("dudley_method", self.dudley_method, distances.DUDLEY_METHODS)
        v.integer("max_points", self.max_points, low=4)
        if not isinstance(self.family_k, tuple):
            raise ValueError(f"family_k must be a tuple of numbers > 0; got {self.family_k!r}")
        v.real_array("family_k", self.family_k, low=0.0, low_open=True)
        if len(set(self.family_k)) != len(self.family_k):
            raise ValueError(f"family_k must not repeat a value; got {self.family_k!r}")
        v.integer("family_seed", self.family_seed, low=0)
        if self.dudley_method == "lp" and 2 * self.n_samples > self.max_points:
            raise ValueError(
                f"2 * n_samples must be at most max_points = {self.max_points} for the Dudley "
                f"linear program; got n_samples = {self.n_samples}"
            )

    def n_target(self, alpha: float) -> int:
        """Target training-set size ``round(alpha * dim)``."""
        return round(alpha * self.dim)


def check_cell(config: DiscrepancyConfig, cell: dict) -> tuple[float, float, float, float]:
    """Validate one cell; return ``(alpha, theta, target_norm, sigma)`` as floats.

    ``alpha`` > 0 with ``round(alpha * dim)`` at least 3 and outside ``[dim - 1, dim + 1]``,
    ``theta`` in [0, pi], ``target_norm`` > 0, ``sigma`` > 0 (the KL divergence between the
    joints is infinite without label noise).
    """
    missing = [axis for axis in CELL_AXES if axis not in cell]
    if missing:
        raise ValueError(f"cell must give {', '.join(CELL_AXES)}; missing {missing[0]!r}")
    alpha = float(v.real_array("alpha", cell["alpha"], low=0.0, low_open=True))
    n, dim = config.n_target(alpha), config.dim
    if n < 3:
        raise ValueError(
            f"alpha * dim must round to at least 3 target samples; got alpha = {alpha:g}, "
            f"dim = {dim} (n = {n})"
        )
    if dim - 1 <= n <= dim + 1:
        raise ValueError(
            f"alpha * dim must stay out of [dim - 1, dim + 1] = [{dim - 1}, {dim + 1}], where "
            f"the expected scratch error is infinite; got alpha = {alpha:g}, n = {n}"
        )
    theta = float(v.real_array("theta", cell["theta"], low=0.0, high=np.pi))
    target_norm = float(v.real_array("target_norm", cell["target_norm"], low=0.0, low_open=True))
    sigma = float(v.real_array("sigma", cell["sigma"], low=0.0, low_open=True))
    return alpha, theta, target_norm, sigma


def _dudley_pair(config, a, b):
    """Both Dudley conventions between two samples: ``(sum, max)``."""
    kw = {"method": config.dudley_method, "max_points": config.max_points}
    return distances.dudley(a, b, norm="sum", **kw), distances.dudley(a, b, norm="max", **kw)


@functools.lru_cache(maxsize=32)
def _theorem22_dudley_cached(k, *, sigma, source_norm, n_samples, n_replicates, seed, method):
    bits = [int(np.float64(x).view(np.uint64)) for x in (sigma, source_norm)]
    rng = np.random.default_rng(np.random.SeedSequence([seed, *bits]))
    shape = (len(k), n_replicates)
    values = {"sum": np.empty(shape), "max": np.empty(shape)}
    floor = {"sum": np.empty(n_replicates), "max": np.empty(n_replicates)}

    def joint(slope, size):
        u = rng.standard_normal(size)
        return np.stack([u, slope * u + sigma * rng.standard_normal(size)], axis=1)

    max_points = max(4, 2 * n_samples)
    for r in range(n_replicates):
        source = joint(source_norm, n_samples)
        for norm in ("sum", "max"):
            floor[norm][r] = distances.dudley(
                source, joint(source_norm, n_samples), norm=norm, method=method,
                max_points=max_points,
            )  # fmt: skip
        for i, scale in enumerate(k):
            target = joint(-scale * source_norm, n_samples)
            for norm in ("sum", "max"):
                values[norm][i, r] = distances.dudley(
                    source, target, norm=norm, method=method, max_points=max_points
                )
    return values, floor


def theorem22_dudley(
    k,
    sigma: float,
    *,
    source_norm: float = 1.0,
    n_samples: int = 200,
    n_replicates: int = 4,
    seed: int = 0,
    method: str = "transport",
) -> xr.Dataset:
    r"""Dudley distances along the Theorem 2.2 family :math:`\beta_t = -k\beta_s`, both conventions.

    The two joints differ only in the coordinates :math:`(u, y)`, :math:`u = \hat\beta_s\cdot x`:
    source :math:`y = |\beta_s| u + \sigma\epsilon`, target :math:`y = -k|\beta_s| u +
    \sigma\epsilon`; every other direction of x is the same standard Gaussian in both, and an
    integral probability metric over 1-Lipschitz test functions is unchanged by dropping it
    (projecting is 1-Lipschitz, and the shared factor couples to itself). So the distance is
    estimated between ``n_samples`` draws of each 2-D law, where the plug-in is usable (in all
    D + 1 coordinates it saturates, :func:`featurefate.distances.dudley`).

    What the paper's Theorem 2.2 can and cannot say here: the Dudley metric is bounded (both
    conventions have supremum 2; the paper's, :math:`\|h\|_\infty + \mathrm{Lip}(h) \le 1`,
    never reaches it), so the family cannot be "arbitrarily far" in it. As k grows the target's
    mass leaves every bounded set, and both conventions increase towards 2: any distance below 2
    is exceeded for k large enough, while linear transfer stays positive
    (:func:`featurefate.theory.discrepancy.theorem22_family`).

    The plug-in is biased upwards; ``*_floor`` is the same estimate between two independent
    samples of the source law (population value 0), the size of that bias.

    Parameters
    ----------
    k : sequence of float
        Target scales, > 0.
    sigma : float
        Label noise of both tasks, > 0.
    source_norm : float, default 1.0
    n_samples : int, default 200
        Draws of each law per replicate, >= 2.
    n_replicates : int, default 4
        Independent replicates, >= 2.
    seed : int, default 0
        With ``sigma``, fixes every draw (results are memoised per process).
    method : {"transport", "lp"}
        As :func:`featurefate.distances.dudley`.

    Returns
    -------
    xarray.Dataset
        Dim ``k``: ``family_dudley`` (the paper's convention) and ``family_dudley_max``, the
        replicate means, with ``..._stderr``; scalars ``family_dudley_floor`` and
        ``family_dudley_max_floor``.
    """
    k = tuple(float(x) for x in np.atleast_1d(v.real_array("k", k, low=0.0, low_open=True)))
    sigma = float(v.real_array("sigma", sigma, low=0.0, low_open=True))
    source_norm = float(v.real_array("source_norm", source_norm, low=0.0, low_open=True))
    n_samples = v.integer("n_samples", n_samples, low=2)
    n_replicates = v.integer("n_replicates", n_replicates, low=2)
    seed = v.integer("seed", seed, low=0)
    method = v.choice("method", method, distances.DUDLEY_METHODS)
    values, floor = _theorem22_dudley_cached(
        k,
        sigma=sigma,
        source_norm=source_norm,
        n_samples=n_samples,
        n_replicates=n_replicates,
        seed=seed,
        method=method,
    )
    data = {}
    for norm in ("sum", "max"):
        mean, se = mean_and_stderr(values[norm])
        data[schema.family_dudley_name(norm)] = (("k",), mean)
        data[schema.family_dudley_name(norm, "stderr")] = (("k",), se)
        data[schema.family_dudley_name(norm, "floor")] = ((), float(floor[norm].mean()))
    ds = xr.Dataset(data, coords={"k": np.asarray(k)})
    return schema.annotate("discrepancy", ds)


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
        ``alpha`` (> 0, see :func:`check_cell`), ``theta`` (radians in [0, pi]), ``target_norm``
        (> 0), ``sigma`` (> 0).
    seed : int or numpy.random.SeedSequence
        All randomness of the cell (teachers, target training sets, distance samples) derives
        from it; the Theorem 2.2 family's from ``config.family_seed`` and sigma.

    Returns
    -------
    xarray.Dataset
        Dim ``instance`` (and ``k`` for the family); scalar coords ``alpha``, ``theta``,
        ``target_norm``, ``sigma`` and ``n`` (target samples). Variables: ``theory_kl``,
        ``theory_w2`` (closed forms); ``sample_w1``, ``sample_dudley`` (the paper's convention),
        ``sample_dudley_max``, ``sample_kl`` and their ``*_subspace`` versions (per instance);
        ``error_<method>`` per instance for ``scratch``, ``linear``, ``finetune_paper``,
        ``finetune_exact``; ``transferability_<method>`` (instance mean of the paired
        differences) with ``..._stderr``; ``theory_transferability_<method>`` (exact finite-size
        forms at ``dim`` and ``n / dim``; the exact fine-tuning variant at its typical c); the
        family's ``family_dudley*`` (:func:`theorem22_dudley`) when ``config.family_k`` is set.
    """
    alpha_cell, theta, target_norm, sigma = check_cell(config, cell)
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    task_seed, sample_seed = seq.spawn(2)
    n, dim, k = config.n_target(alpha_cell), config.dim, config.n_instances
    norms = {"source_norm": config.source_norm, "target_norm": target_norm}

    inst = draw_instances(dim, n, theta, sigma, k, **norms, seed=np.random.default_rng(task_seed))
    rng = np.random.default_rng(sample_seed)
    X_s, y_s = sample_data(inst.beta_s, config.n_samples, sigma, seed=rng)
    X_t, y_t = sample_data(inst.beta_t, config.n_samples, sigma, seed=rng)
    # An orthonormal basis of span(beta_s, beta_t), completed arbitrarily when they are parallel
    # (the Householder QR keeps Q orthonormal): the coordinates where the joints differ.
    basis = np.linalg.qr(np.stack([inst.beta_s, inst.beta_t], axis=-1))[0]
    points = {
        False: (_joint(X_s, y_s), _joint(X_t, y_t)),
        True: (_subspace_joint(X_s, y_s, basis), _subspace_joint(X_t, y_t, basis)),
    }
    sample = {}
    for subspace, (source, target) in points.items():
        pairs = list(zip(source, target, strict=True))
        name = functools.partial(schema.sample_distance_name, subspace=subspace)
        sample[name("w1")] = [distances.wasserstein1(a, b) for a, b in pairs]
        dudley = np.array([_dudley_pair(config, a, b) for a, b in pairs])
        sample[name("dudley")] = dudley[:, 0]
        sample[name("dudley_max")] = dudley[:, 1]
        sample[name("kl")] = [distances.gaussian_kl(a, b) for a, b in pairs]

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
        data[schema.error_name(method)] = (inst_dim, errors[method])
    for method in _METHODS[1:]:
        mean, se = mean_and_stderr(errors["scratch"] - errors[method])
        data[schema.transferability_name(method)] = ((), mean)
        data[schema.stderr_name(schema.transferability_name(method))] = ((), se)
        data[schema.transferability_name(method, theory=True)] = ((), theory_t[method])

    ds = xr.Dataset(
        data,
        coords={
            "instance": np.arange(k),
            "alpha": alpha_cell,
            "theta": theta,
            "target_norm": target_norm,
            "sigma": sigma,
            "n": n,
        },
    )
    if config.family_k:
        family = theorem22_dudley(
            config.family_k,
            sigma,
            source_norm=config.source_norm,
            n_samples=config.n_samples,
            n_replicates=config.n_instances,
            seed=config.family_seed,
            method=config.dudley_method,
        )
        ds = ds.merge(family)
    schema.annotate("discrepancy", ds)
    ds.attrs.update(
        {
            "featurefate_version": featurefate.__version__,
            "experiment": "discrepancy",
            "config": json.dumps(asdict(config)),
            "seed": str(seq.entropy),
            "dim": dim,
            "depth": config.depth,
            "n_samples": config.n_samples,
            "source_norm": config.source_norm,
            "simulation": "transferabilities from the exact gradient-flow endpoints "
            "(featurefate.estimators: minimum-norm interpolator for scratch, rank-one refit "
            "for linear transfer, X^+y + c(I-P)beta_s for fine-tuning) on drawn target data; "
            "no network is trained",
            "theory": "exact finite-size forms at dim and alpha = n / dim; fine-tuning as the "
            "paper's endpoint (finetune_paper) and the corrected one (finetune_exact)",
            "dudley": "sample_dudley: sup of mean h(source) - mean h(target) over "
            "||h||_inf + Lip(h) <= 1 (the paper's convention, Sriperumbudur et al. 2009); "
            "sample_dudley_max: over |h| <= 1, Lip(h) <= 1; method "
            f"{config.dudley_method!r}",
        }
    )
    return ds


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


_CONSTANT = 1e-12
"""Values whose range is below this (absolute, or relative to their size when larger) are
constant: rounding noise, such as fine-tuning's T = 0 above alpha = 1 computed as a difference
of equal errors, must not produce a correlation."""


def _varies(x: np.ndarray, axis=None) -> np.ndarray:
    scale = np.maximum(1.0, np.max(np.abs(x), axis=axis))
    return np.ptp(x, axis=axis) > _CONSTANT * scale


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r; NaN, without a warning, for fewer than 3 points or a constant side."""
    if len(a) < 3 or not _varies(a) or not _varies(b):
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    return float(np.clip(np.sum(a * b) / np.sqrt(np.sum(a**2) * np.sum(b**2)), -1.0, 1.0))


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair of two (B, n) arrays; NaN where a row is constant."""
    ok = _varies(a, axis=1) & _varies(b, axis=1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt(np.sum(a**2, axis=1) * np.sum(b**2, axis=1))
    out = np.full(len(a), np.nan)
    out[ok] = np.clip(np.sum(a[ok] * b[ok], axis=1) / denominator[ok], -1.0, 1.0)
    return out


def _bootstrap(a, b, draws, level):
    """Percentile intervals of Pearson and Spearman over resampled cells (rows of ``draws``)."""
    if len(a) < 3:
        return (np.nan, np.nan), (np.nan, np.nan)
    idx = draws[:, : len(a)] % len(a)
    ra, rb = a[idx], b[idx]
    pearson = _pearson_rows(ra, rb)
    spearman = _pearson_rows(rankdata(ra, axis=1), rankdata(rb, axis=1))
    spearman[~np.isfinite(pearson)] = np.nan  # ranks of rounding noise are not a correlation
    tail = 100.0 * (1.0 - level) / 2.0
    out = []
    for values in (pearson, spearman):
        values = values[np.isfinite(values)]
        if values.size < 0.5 * len(draws):  # mostly constant resamples: no interval
            out.append((np.nan, np.nan))
        else:
            low, high = np.percentile(values, [tail, 100.0 - tail])
            out.append((float(low), float(high)))
    return out[0], out[1]


def _cells(ds, name):
    da = ds[name]
    return da.mean("instance") if "instance" in da.dims else da


def correlations(
    ds: xr.Dataset,
    *,
    distances=DISTANCES,
    transferabilities=TRANSFERABILITIES,
    by: str | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    r"""Pearson and Spearman correlation of each distance with each transferability, with intervals.

    Per-instance variables are first averaged over ``instance``; every remaining point (one per
    cell of the sweep) is a sample. Pairs with a non-finite value are left out. Pearson's
    :math:`r = \sum (a_i - \bar a)(b_i - \bar b) / \sqrt{\sum (a_i - \bar a)^2 \sum (b_i -
    \bar b)^2}`; Spearman's :math:`\rho` is r of the ranks (ties averaged). The intervals are
    percentile bootstrap intervals over cells resampled with replacement (``n_boot`` resamples,
    the same resampled cells for every pair, drawn from ``seed``).

    The paper's claim (Section 3, Appendix E, Fig. 5) is that no distance is negatively
    correlated with transferability; it fails for a pair where the interval lies below 0.

    Parameters
    ----------
    ds : xarray.Dataset
        Cells of :func:`run_cell` combined along the cell axes (dims ``alpha``, ``theta``,
        ``target_norm``, ``sigma``, ``instance``); a single cell gives NaN.
    distances, transferabilities : sequence of str
        Variable names; default every one the experiment writes that ``ds`` holds.
    by : str, optional
        A dimension of ``ds`` (``"alpha"``): correlations at each of its values separately,
        as an extra dimension of the result.
    n_boot : int, default 1000
        Bootstrap resamples, >= 2.
    level : float, default 0.95
        Coverage of the intervals, in (0, 1).
    seed : int, default 0

    Returns
    -------
    xarray.Dataset
        ``pearson``, ``spearman``, their ``*_low`` and ``*_high`` interval ends and ``n_cells``
        (finite pairs behind each coefficient), with dims ``(distance, transferability)`` (then
        ``by``). NaN where fewer than 3 points or one side is constant (no interval where most
        resamples are constant).
    """
    dist_names = [name for name in distances if name in ds]
    trans_names = [name for name in transferabilities if name in ds]
    if not dist_names or not trans_names:
        raise ValueError(
            "ds must hold at least one distance and one transferability variable of the "
            f"discrepancy experiment; got variables {sorted(ds.data_vars)}"
        )
    n_boot = v.integer("n_boot", n_boot, low=2)
    level = float(v.real_array("level", level, low=0.0, high=1.0, low_open=True, high_open=True))
    seed = v.integer("seed", seed, low=0)
    if by is not None and by not in ds.dims:
        raise ValueError(f"by must name a dimension of ds; got {by!r} (dims: {list(ds.dims)})")
    groups = [None] if by is None else list(ds[by].values)
    size = max(1, int(np.prod([n for d, n in ds.sizes.items() if d != "instance"])))
    # uniform integers far above any cell count; reduced modulo the pair's count of cells
    draws = np.random.default_rng(seed).integers(0, 2**62, size=(n_boot, size))

    names = ("pearson", "spearman", "pearson_low", "pearson_high", "spearman_low", "spearman_high")
    shape = (len(dist_names), len(trans_names), len(groups))
    out = {name: np.full(shape, np.nan) for name in names}
    count = np.zeros(shape, dtype=np.int64)
    for g, group in enumerate(groups):
        part = ds if group is None else ds.sel({by: group})
        for i, d_name in enumerate(dist_names):
            for j, t_name in enumerate(trans_names):
                a_da, b_da = xr.broadcast(_cells(part, d_name), _cells(part, t_name))
                a = np.asarray(a_da, dtype=np.float64).ravel()
                b = np.asarray(b_da.transpose(*a_da.dims), dtype=np.float64).ravel()
                keep = np.isfinite(a) & np.isfinite(b)
                a, b = a[keep], b[keep]
                count[i, j, g] = len(a)
                out["pearson"][i, j, g] = _pearson(a, b)
                if np.isfinite(out["pearson"][i, j, g]):
                    out["spearman"][i, j, g] = _pearson(_ranks(a), _ranks(b))
                    (pl, ph), (sl, sh) = _bootstrap(a, b, draws, level)
                    out["pearson_low"][i, j, g], out["pearson_high"][i, j, g] = pl, ph
                    out["spearman_low"][i, j, g], out["spearman_high"][i, j, g] = sl, sh
    dims = ("distance", "transferability", by or "_group")
    result = xr.Dataset(
        {name: (dims, values) for name, values in out.items()} | {"n_cells": (dims, count)},
        coords={"distance": dist_names, "transferability": trans_names},
    )
    if by is None:
        result = result.squeeze("_group", drop=True)
    else:
        result = result.assign_coords({by: ds[by].values})
    result.attrs.update(
        {
            "description": "correlation across the grid cells of each distance (instance mean) "
            "with each transferability; the paper claims none is negative",
            "bootstrap": f"{n_boot} resamples of the cells, percentile intervals at level "
            f"{level:g}, seed {seed}",
        }
    )
    return result


def grid_name(ds: xr.Dataset) -> str:
    """``"paper's grid"`` or ``"extended grid"``: which kind of grid a discrepancy sweep covers.

    The paper's grid is that of its own linear experiments (Section 3): unit teacher norms, one
    label noise sigma = 0.2, theta in [0, pi/2] and alpha in [0.1, 2]. Any other grid (larger
    angles, other norms or noise levels) is an extended grid.
    """
    source_norm = float(ds.attrs.get("source_norm", 1.0))
    theta = np.asarray(ds["theta"], dtype=float)
    alpha = np.asarray(ds["alpha"], dtype=float) if "alpha" in ds.coords else np.array([0.5])
    paper = (
        source_norm == 1.0
        and np.all(np.asarray(ds["target_norm"]) == 1.0)
        and np.allclose(np.asarray(ds["sigma"], dtype=float), 0.2)
        and theta.max() <= np.pi / 2 + 1e-12
        and alpha.min() >= 0.1 - 1e-12
        and alpha.max() <= 2.0 + 1e-12
    )
    return "paper's grid" if paper else "extended grid"
