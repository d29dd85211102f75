r"""Sample-based distances between two data sets (Section 2.1 of the paper, docs/theory.md, Dataset discrepancies).

For users' own data: each function takes two samples ``X`` of shape (n, d) and ``Y`` of shape
(m, d), rows being points (a 1-D array is n one-dimensional points), and compares the empirical
measures :math:`\hat\mu = \frac1n\sum_i \delta_{x_i}` and :math:`\hat\nu = \frac1m\sum_j
\delta_{y_j}` with the Euclidean ground metric :math:`d(x, y) = |x - y|`.

- :func:`wasserstein1`: exact W1 by optimal transport (POT's network simplex);
- :func:`sliced_wasserstein`: the sliced Wasserstein distance, cheap in high dimension;
- :func:`dudley`: the Dudley (bounded-Lipschitz) metric, a linear program over the values of
  the test function at the pooled points, or the equivalent transport problem;
- :func:`gaussian_kl`: KL divergence between Gaussians fitted to the two samples.

All are plug-in estimates: the distance between the empirical measures, which converges to the
population distance as the samples grow but is biased upwards at small sizes, badly so in high
dimension (two samples of size n from the same law in d dimensions are at W1 distance of order
:math:`n^{-1/d}`). When the two laws differ only in a few directions, as the source and target
joints of the linear model do, projecting on those directions first gives far better estimates
(see :mod:`featurefate.experiments.discrepancy`).
"""

from __future__ import annotations

import numpy as np
import ot
import scipy.sparse
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import linprog
from scipy.spatial.distance import cdist

from featurefate import _validation as v
from featurefate.tasks import SeedLike

__all__ = [
    "DUDLEY_METHODS",
    "dudley",
    "gaussian_kl",
    "sliced_wasserstein",
    "wasserstein1",
]

DUDLEY_METHODS = ("lp", "transport")
"""``lp``: the linear program over the test function's values; ``transport``: the equivalent
W1 problem with the truncated ground metric ``min(d, 2)`` (see :func:`dudley`)."""

_DUDLEY_BOUND = 2.0


def _points(name: str, value: object, *, min_points: int = 1) -> np.ndarray:
    """Return a sample as a float64 array of shape (n, d); a 1-D array is n points in 1-D."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a real array of shape (n, d) (or (n,) for 1-D points); got {value!r}"
        ) from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must have shape (n, d) (or (n,) for 1-D points); got shape {arr.shape}"
        )
    if arr.shape[0] < min_points or arr.shape[1] < 1:
        raise ValueError(
            f"{name} must hold at least {min_points} point(s) of dimension >= 1; "
            f"got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got NaN or inf")
    return arr


def _samples(X, Y, *, min_points: int = 1) -> tuple[np.ndarray, np.ndarray]:
    X = _points("X", X, min_points=min_points)
    Y = _points("Y", Y, min_points=min_points)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X and Y must have the same dimension d; got X of shape {X.shape} and Y of "
            f"shape {Y.shape}"
        )
    return X, Y


def _rng(seed: SeedLike) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _uniform(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


def _emd(X, Y, cost):
    """Optimal transport cost between the uniform measures on the rows of X and Y."""
    n, m = len(X), len(Y)
    # The network simplex needs more pivots than POT's default limit for a few thousand points.
    value, log = ot.emd2(
        _uniform(n), _uniform(m), cost, numItermax=max(100_000, 50 * n * m), log=True
    )
    if log.get("warning"):
        raise RuntimeError(f"optimal transport did not converge: {log['warning']}")
    return max(float(value), 0.0)


def wasserstein1(X, Y) -> float:
    r"""Exact 1-Wasserstein distance between two empirical samples.

    .. math::

        W_1(\hat\mu, \hat\nu) = \min_{\pi \in \Pi(\frac1n\mathbf 1, \frac1m\mathbf 1)}
            \sum_{ij} \pi_{ij} |x_i - y_j|
        = \sup_{\mathrm{Lip}(h) \le 1} \frac1n\sum_i h(x_i) - \frac1m \sum_j h(y_j),

    solved by POT's network simplex (``ot.emd2``) on the Euclidean cost matrix (``ot.dist`` with
    ``metric='euclidean'``). Memory O(n m), time roughly cubic in n + m: a few thousand points
    per sample are practical; use :func:`sliced_wasserstein` beyond.

    Parameters
    ----------
    X : array-like, shape (n, d) or (n,)
    Y : array-like, shape (m, d) or (m,)

    Returns
    -------
    float
        In the units of the data.
    """
    X, Y = _samples(X, Y)
    return _emd(X, Y, ot.dist(X, Y, metric="euclidean"))


def sliced_wasserstein(X, Y, *, n_projections: int = 200, p: int = 1, seed: SeedLike = None):
    r"""Sliced p-Wasserstein distance between two empirical samples, by Monte Carlo.

    .. math::

        SW_p(\hat\mu, \hat\nu) = \Big(\int_{S^{d-1}} W_p^p(u_\#\hat\mu, u_\#\hat\nu)\,
            d\sigma(u)\Big)^{1/p}
        \approx \Big(\frac1K \sum_{k=1}^K W_p^p(u_{k\#}\hat\mu, u_{k\#}\hat\nu)\Big)^{1/p},

    with :math:`u_k` uniform on the unit sphere and each one-dimensional :math:`W_p` computed by
    sorting (POT's ``ot.sliced_wasserstein_distance``). Cost O(K (n + m) log(n + m)) whatever d
    is. :math:`SW_p \le W_p`; in one dimension every direction is :math:`\pm 1` and
    :math:`SW_p = W_p` exactly. The directions are drawn from ``seed`` by this function (POT's
    own ``seed`` argument would reseed NumPy's global generator), so a seed gives the same value
    on every machine.

    Parameters
    ----------
    X : array-like, shape (n, d) or (n,)
    Y : array-like, shape (m, d) or (m,)
    n_projections : int, default 200
        Number K of random directions, >= 1. The Monte-Carlo error falls like
        :math:`K^{-1/2}`.
    p : int, default 1
        Order, >= 1.
    seed : int, SeedSequence or Generator, optional
        Source of the directions; ``None`` draws fresh ones.

    Returns
    -------
    float
    """
    X, Y = _samples(X, Y)
    n_projections = v.integer("n_projections", n_projections, low=1)
    p = v.integer("p", p, low=1)
    directions = _rng(seed).standard_normal((X.shape[1], n_projections))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    value = ot.sliced_wasserstein_distance(X, Y, projections=directions, p=p)
    return max(float(value), 0.0)


def dudley(X, Y, *, method: str = "lp", max_points: int | None = 600) -> float:
    r"""Dudley (bounded-Lipschitz) metric between two empirical samples.

    .. math::

        \beta(\hat\mu, \hat\nu) = \sup_h \Big\{ \frac1n\sum_i h(x_i) - \frac1m\sum_j h(y_j)
            \;:\; \|h\|_\infty \le 1,\ \mathrm{Lip}(h) \le 1 \Big\}.

    Convention: both the sup norm and the Lipschitz constant are at most 1 (docs/theory.md, Dudley metric:
    :math:`|h| \le 1` plus Lipschitz constraints), which bounds the metric by 2. The other
    common convention, :math:`\|h\|_\infty + \mathrm{Lip}(h) \le 1` (Dudley; Sriperumbudur et al.,
    2009), gives a value between half of this one and this one, so the two are equivalent metrics.
    It is also at most :func:`wasserstein1`, whose test functions need only be 1-Lipschitz.

    ``method="lp"`` solves the defining linear program over the values :math:`h_k` of the test
    function at the N = n + m pooled points, with SciPy's HiGHS (``linprog(method='highs')``):

    .. math::

        \max_h\ c^\top h \quad\text{s.t.}\quad -1 \le h_k \le 1,\quad
        h_k - h_l \le |z_k - z_l| \ (k \ne l),

    :math:`c = (\frac1n \mathbf 1_n, -\frac1m \mathbf 1_m)`. It is exact: a function on finitely
    many points with these bounds extends to all of :math:`\mathbb R^d` with the same bounds
    (McShane's extension, clipped to [-1, 1]). A Lipschitz constraint with
    :math:`|z_k - z_l| \ge 2` is implied by the bounds and is dropped, but up to N(N - 1)
    constraints remain, so the cost grows like :math:`N^2` in memory and faster in time
    (measured, one core: N = 100 in 3 dimensions 0.03 s; N = 600 in 3 dimensions 2.5 s and in
    1 dimension 3.4 s, against 0.015 s for ``method="transport"``). Hence ``max_points``.

    ``method="transport"`` uses an exact equivalence: a function with :math:`|h| \le 1` and
    :math:`\mathrm{Lip}(h) \le 1` is 1-Lipschitz for the truncated metric
    :math:`d'(z, z') = \min(|z - z'|, 2)`, and conversely a :math:`d'`-1-Lipschitz function
    varies by at most 2, so a constant shift puts it in [-1, 1] without changing the objective.
    By Kantorovich-Rubinstein duality the metric is therefore the W1 distance for :math:`d'`,

    .. math::

        \beta(\hat\mu, \hat\nu) = \min_{\pi} \sum_{ij} \pi_{ij} \min(|x_i - y_j|, 2),

    an n x m optimal-transport problem (POT ``emd2``), as fast as :func:`wasserstein1` and not
    subject to ``max_points``. Both methods agree to solver precision (tested).

    In high dimension pairwise distances between samples exceed 2 (about :math:`\sqrt{2d}` for
    standardised data), every Lipschitz constraint drops out and the empirical metric is 2
    whatever the laws are: the plug-in estimate is useless there unless the points are first
    projected on the directions where the laws differ.

    Parameters
    ----------
    X : array-like, shape (n, d) or (n,)
    Y : array-like, shape (m, d) or (m,)
    method : {"lp", "transport"}, default "lp"
    max_points : int or None, default 600
        Largest pooled size n + m accepted by ``method="lp"``; ``None`` for no limit.

    Returns
    -------
    float
        In [0, 2].

    Raises
    ------
    ValueError
        For invalid samples, or ``n + m > max_points`` with ``method="lp"``.
    RuntimeError
        If the solver fails.
    """
    X, Y = _samples(X, Y)
    method = v.choice("method", method, DUDLEY_METHODS)
    max_points = v.integer("max_points", max_points, low=2, allow_none=True)
    if method == "transport":
        cost = np.minimum(ot.dist(X, Y, metric="euclidean"), _DUDLEY_BOUND)
        return min(_emd(X, Y, cost), _DUDLEY_BOUND)
    n, m = len(X), len(Y)
    total = n + m
    if max_points is not None and total > max_points:
        raise ValueError(
            f"dudley with method='lp' has n + m = {total} pooled points, more than max_points = "
            f"{max_points} (the linear program has up to N(N - 1) constraints); subsample, raise "
            "max_points, or use method='transport'"
        )
    Z = np.concatenate([X, Y])
    dist = cdist(Z, Z)
    # h_k - h_l <= d_kl for every ordered pair k != l closer than 2; the rest are implied.
    rows, cols = np.nonzero((dist < _DUDLEY_BOUND) & ~np.eye(total, dtype=bool))
    count = len(rows)
    constraints = scipy.sparse.csr_array(
        (
            np.tile([1.0, -1.0], count),
            (np.repeat(np.arange(count), 2), np.stack([rows, cols], axis=1).ravel()),
        ),
        shape=(count, total),
    )
    objective = np.concatenate([-_uniform(n), _uniform(m)])  # linprog minimises -c^T h
    result = linprog(
        objective,
        A_ub=constraints if count else None,
        b_ub=dist[rows, cols] if count else None,
        bounds=(-1.0, 1.0),
        method="highs",
    )
    if result.status != 0:
        raise RuntimeError(f"dudley: the linear program failed: {result.message}")
    return float(np.clip(-result.fun, 0.0, _DUDLEY_BOUND))


def gaussian_kl(X, Y, *, ridge: float = 1e-8) -> float:
    r"""KL divergence :math:`KL(N(m_X, S_X) \,\|\, N(m_Y, S_Y))` between Gaussians fitted to the samples.

    Means and covariances are the sample ones (covariances with ``ddof=1``), and

    .. math::

        KL = \frac12\Big[\operatorname{tr}(S_Y^{-1} S_X) + (m_Y - m_X)^\top S_Y^{-1}(m_Y - m_X)
             - d + \ln\frac{\det S_Y}{\det S_X}\Big].

    Exact in the limit of large samples when both laws are Gaussian (as the joints of the linear
    model are), an estimate of the Gaussian part of the discrepancy otherwise. The plug-in is
    biased upwards by roughly :math:`d^2/(2n)` at small samples.

    Regularisation: a fitted covariance is singular when a sample has at most d distinct points
    or lies in a subspace, and the KL of Gaussians is then infinite. Both covariances get a ridge
    :math:`\epsilon s I` with :math:`s` the mean variance of the two samples,
    :math:`s = (\operatorname{tr} S_X + \operatorname{tr} S_Y)/(2d)` (1 if both are 0), and
    :math:`\epsilon` = ``ridge``. The default 1e-8 changes a well-conditioned result by about
    1e-8 relative and makes a singular one finite but large (of order
    :math:`\ln(1/\epsilon)` per missing direction, or :math:`1/\epsilon` for a mismatch along it):
    read such a value as "the supports differ", not as a number.

    Parameters
    ----------
    X : array-like, shape (n, d) or (n,)
        At least 2 points.
    Y : array-like, shape (m, d) or (m,)
        At least 2 points.
    ridge : float, default 1e-8
        Relative ridge :math:`\epsilon`, >= 0 (0: no regularisation; a singular fit then raises).

    Returns
    -------
    float
        In nats, >= 0.
    """
    X, Y = _samples(X, Y, min_points=2)
    ridge = float(v.real_array("ridge", ridge, low=0.0))
    d = X.shape[1]
    mean_x, mean_y = X.mean(axis=0), Y.mean(axis=0)
    cov_x = np.atleast_2d(np.cov(X, rowvar=False))
    cov_y = np.atleast_2d(np.cov(Y, rowvar=False))
    scale = (np.trace(cov_x) + np.trace(cov_y)) / (2.0 * d)
    shift = ridge * (scale if scale > 0.0 else 1.0) * np.eye(d)
    cov_x, cov_y = cov_x + shift, cov_y + shift
    try:
        factor_y = cho_factor(cov_y, lower=True)
        factor_x = cho_factor(cov_x, lower=True)
    except np.linalg.LinAlgError:
        raise ValueError(
            "gaussian_kl: a fitted covariance is singular (too few or degenerate points); "
            "use ridge > 0"
        ) from None
    delta = mean_y - mean_x
    trace = np.trace(cho_solve(factor_y, cov_x))
    mahalanobis = delta @ cho_solve(factor_y, delta)
    logdet_y = 2.0 * np.sum(np.log(np.diag(factor_y[0])))
    logdet_x = 2.0 * np.sum(np.log(np.diag(factor_x[0])))
    return max(float(0.5 * (trace + mahalanobis - d + logdet_y - logdet_x)), 0.0)
