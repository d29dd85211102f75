r"""Sample-based distances between two data sets (Section 2.1 of the paper).

For users' own data: each function takes two samples ``X`` of shape (n, d) and ``Y`` of shape
(m, d), rows being points (a 1-D array is n one-dimensional points), and compares the empirical
measures :math:`\hat\mu = \frac1n\sum_i \delta_{x_i}` and :math:`\hat\nu = \frac1m\sum_j
\delta_{y_j}` with the Euclidean ground metric :math:`d(x, y) = |x - y|`.

- :func:`wasserstein1`: exact W1 by optimal transport (POT's network simplex);
- :func:`sliced_wasserstein`: the sliced Wasserstein distance, cheap in high dimension;
- :func:`dudley`: the Dudley (bounded-Lipschitz) metric in the paper's convention
  (:math:`\|h\|_\infty + \mathrm{Lip}(h) \le 1`) or with both bounds at 1, by a linear program
  over the values of the test function at the pooled points or by exact transport forms;
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
    "DUDLEY_NORMS",
    "dudley",
    "gaussian_kl",
    "sliced_wasserstein",
    "wasserstein1",
]

DUDLEY_NORMS = ("sum", "max")
"""Conventions of the Dudley metric's test functions: ``sum``, :math:`\\|h\\|_\\infty +
\\mathrm{Lip}(h) \\le 1` (Dudley; Sriperumbudur et al., 2009, the paper's reference), and
``max``, :math:`\\|h\\|_\\infty \\le 1` and :math:`\\mathrm{Lip}(h) \\le 1`."""

DUDLEY_METHODS = ("lp", "transport")
"""``lp``: the linear program over the test function's values; ``transport``: optimal transport
with a truncated ground cost, one problem for ``norm="max"`` and a one-dimensional concave
maximisation over such problems for ``norm="sum"`` (see :func:`dudley`)."""

_DUDLEY_BOUND = 2.0
_DUDLEY_TOL = 1e-11
_DUDLEY_MAX_ITER = 200


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


def _coupling(cost: np.ndarray) -> tuple[float, np.ndarray]:
    """Optimal transport cost between uniform measures and an optimal plan, for a cost matrix."""
    n, m = cost.shape
    plan, log = ot.emd(
        _uniform(n), _uniform(m), cost, numItermax=max(100_000, 50 * n * m), log=True
    )
    if log.get("warning"):
        raise RuntimeError(f"optimal transport did not converge: {log['warning']}")
    return max(float(np.sum(plan * cost)), 0.0), plan


def _dudley_sum_transport(dist: np.ndarray) -> float:
    r"""The ``sum`` Dudley metric as :math:`\max_{t \in [0,1]} f(t)`, f the OT cost for ``min((1-t)d, 2t)``.

    f is concave and piecewise linear. Every optimal plan :math:`\pi` at t gives a concave
    majorant :math:`g_\pi(s) = \sum \pi_{ij}\min((1-s)d_{ij}, 2s) \ge f(s)`, equal to f at t,
    whose one-sided slopes at t bound f by a line on each side. The search keeps a left point
    (right slope > 0) and a right point (left slope < 0), evaluates f where their lines meet, and
    stops when f there reaches the lines' value (the maximum is certified to ``_DUDLEY_TOL``) or
    when t maximises its own majorant (then it maximises f). Start: :math:`f(s) \le 2s` and
    :math:`f(s) \le (1 - s) W_1`.
    """
    w1, _ = _coupling(dist)
    if w1 == 0.0:
        return 0.0
    left, right = (0.0, 0.0, 2.0), (1.0, 0.0, -w1)  # (t, f(t), slope of its bounding line)
    best = 0.0
    for _ in range(_DUDLEY_MAX_ITER):
        (t_l, f_l, s_l), (t_r, f_r, s_r) = left, right
        t = (f_r - f_l + s_l * t_l - s_r * t_r) / (s_l - s_r)
        t = min(max(t, t_l), t_r)
        upper = min(f_l + s_l * (t - t_l), f_r + s_r * (t - t_r))
        lipschitz = (1.0 - t) * dist
        value, plan = _coupling(np.minimum(lipschitz, 2.0 * t))
        best = max(best, value)
        if upper - best <= _DUDLEY_TOL:
            return best
        # one-sided slopes of g_plan at t: the branch (1 - s) d has slope -d, the branch 2s slope 2
        slope_right = float(np.sum(plan * np.where(lipschitz <= 2.0 * t, -dist, 2.0)))
        slope_left = float(np.sum(plan * np.where(lipschitz < 2.0 * t, -dist, 2.0)))
        if slope_right <= 0.0 <= slope_left:
            return best
        if slope_right > 0.0:
            left = (t, value, slope_right)
        else:
            right = (t, value, slope_left)
    raise RuntimeError(
        f"dudley: the search over t did not certify the maximum in {_DUDLEY_MAX_ITER} steps "
        f"(gap {upper - best:.3g}); use method='lp'"
    )


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


def dudley(X, Y, *, norm: str = "sum", method: str = "lp", max_points: int | None = 600) -> float:
    r"""Dudley (bounded-Lipschitz) metric between two empirical samples, in either convention.

    .. math::

        \beta(\hat\mu, \hat\nu) = \sup_{h \in \mathcal F} \Big\{\frac1n\sum_i h(x_i)
            - \frac1m\sum_j h(y_j)\Big\},
        \qquad
        \mathcal F_{\rm sum} = \{\|h\|_\infty + \mathrm{Lip}(h) \le 1\},\quad
        \mathcal F_{\rm max} = \{\|h\|_\infty \le 1,\ \mathrm{Lip}(h) \le 1\}.

    ``norm="sum"`` (the default) is the metric the paper takes from Sriperumbudur et al. (2009)
    for Theorem 2.2 (Section 2.1, Appendix B.1); ``norm="max"`` is the other common convention.

    **Relation between the conventions.** With :math:`\beta_c` the supremum over
    :math:`|g| \le c`, :math:`\mathrm{Lip}(g) \le 1` (so :math:`\beta_{\max} = \beta_1`), a
    function with :math:`\|h\|_\infty = t`, :math:`\mathrm{Lip}(h) \le 1 - t` is :math:`(1 - t)`
    times one of the class :math:`c = t/(1 - t)`, hence

    .. math::

        \beta_{\rm sum} = \max_{t\in[0,1]} (1 - t)\,\beta_{t/(1-t)},
        \qquad \tfrac12\beta_{\max} \le \beta_{\rm sum} \le \beta_{\max} \le \min(2, W_1),
        \qquad \beta_{\rm sum} \le \frac{2W_1}{2 + W_1} < 2,

    (:math:`h \in \mathcal F_{\rm sum} \Rightarrow h \in \mathcal F_{\max}`, and
    :math:`h \in \mathcal F_{\max} \Rightarrow h/2 \in \mathcal F_{\rm sum}`; the last bound is
    :math:`\max_t \min(2t, (1 - t)W_1)`). Both bounds between the conventions are attained: two
    point masses at distance d are at :math:`\beta_{\max} = \min(d, 2)` and
    :math:`\beta_{\rm sum} = 2d/(d + 2)`, equal to first order as :math:`d \to 0` and
    :math:`\beta_{\rm sum} = \beta_{\max}/2 = 1` at d = 2. Both metrize weak convergence and
    both have supremum 2, which ``max`` reaches and ``sum`` only approaches.

    ``method="lp"`` solves the defining linear program over the values :math:`h_k` of the test
    function at the N = n + m pooled points with SciPy's HiGHS (``linprog(method='highs')``),
    :math:`c = (\frac1n \mathbf 1_n, -\frac1m \mathbf 1_m)`:

    .. math::

        \max\ c^\top h \ \text{ s.t. }\ |h_k| \le a,\ h_k - h_l \le (1 - a)|z_k - z_l|,
            \ 0 \le a \le 1 \quad (\text{sum: one more variable } a), \\
        \max\ c^\top h \ \text{ s.t. }\ |h_k| \le 1,\ h_k - h_l \le |z_k - z_l|
            \quad (\text{max}).

    It is exact: a function on finitely many points with these bounds extends to all of
    :math:`\mathbb R^d` with the same bounds (McShane's extension, clipped). For ``max`` a
    Lipschitz constraint with :math:`|z_k - z_l| \ge 2` is implied by the bounds and dropped;
    for ``sum`` all N(N - 1) remain. Memory grows like :math:`N^2` and time faster (measured,
    one core, ``max``: N = 100 in 3 dimensions 0.03 s, N = 600 2.5-3.4 s), hence ``max_points``.

    ``method="transport"`` is exact too, and far faster. For ``max``: a function with
    :math:`|h| \le c` and :math:`\mathrm{Lip}(h) \le 1` is 1-Lipschitz for the truncated metric
    :math:`\min(|z - z'|, 2c)`, and conversely such a function varies by at most 2c, so a constant
    shift puts it in [-c, c] without changing the objective; by Kantorovich-Rubinstein duality

    .. math::

        \beta_c(\hat\mu, \hat\nu) = \min_{\pi} \sum_{ij} \pi_{ij} \min(|x_i - y_j|, 2c),

    one n x m transport problem (POT ``emd``) for :math:`\beta_{\max} = \beta_1`. For ``sum``,
    by the relation above :math:`\beta_{\rm sum} = \max_{t\in[0,1]} f(t)` with
    :math:`f(t) = \min_\pi \sum_{ij}\pi_{ij}\min((1 - t)|x_i - y_j|, 2t)`. Each f(t) is a
    minimum over plans of concave functions of t, so f is concave (and piecewise linear); the
    maximum is found by a cutting-plane search whose optimal plans give upper bounds on each
    side, so the returned value is certified to 1e-11 (typically 5 to 15 transport problems). Not
    subject to ``max_points``. Both methods agree to solver precision (tested, both norms).

    In high dimension pairwise distances between samples are large (about :math:`\sqrt{2d}` for
    standardised data): every Lipschitz constraint drops out, ``max`` is 2 and ``sum`` is
    :math:`\approx 2d_0/(d_0 + 2)` for the typical distance :math:`d_0`, whatever the laws are.
    The plug-in is then useless unless the points are first projected on the directions where
    the laws differ.

    Parameters
    ----------
    X : array-like, shape (n, d) or (n,)
    Y : array-like, shape (m, d) or (m,)
    norm : {"sum", "max"}, default "sum"
        Test-function class: :math:`\|h\|_\infty + \mathrm{Lip}(h) \le 1` or both at most 1.
    method : {"lp", "transport"}, default "lp"
    max_points : int or None, default 600
        Largest pooled size n + m accepted by ``method="lp"``; ``None`` for no limit.

    Returns
    -------
    float
        In [0, 2) for ``sum``, [0, 2] for ``max``.

    Raises
    ------
    ValueError
        For invalid samples, an unknown ``norm`` or ``method``, or ``n + m > max_points`` with
        ``method="lp"``.
    RuntimeError
        If a solver fails.

    References
    ----------
    B. K. Sriperumbudur, A. Gretton, K. Fukumizu, G. R. G. Lanckriet, B. Schölkopf, "A note on
    integral probability metrics and phi-divergences", arXiv:0901.2698 (2009).
    """
    X, Y = _samples(X, Y)
    norm = v.choice("norm", norm, DUDLEY_NORMS)
    method = v.choice("method", method, DUDLEY_METHODS)
    max_points = v.integer("max_points", max_points, low=2, allow_none=True)
    if method == "transport":
        dist = ot.dist(X, Y, metric="euclidean")
        if norm == "sum":
            return min(_dudley_sum_transport(dist), _DUDLEY_BOUND)
        return min(_coupling(np.minimum(dist, _DUDLEY_BOUND))[0], _DUDLEY_BOUND)
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
    off_diagonal = ~np.eye(total, dtype=bool)
    if norm == "max":
        # h_k - h_l <= d_kl for every ordered pair closer than 2; the rest are implied.
        rows, cols = np.nonzero((dist < _DUDLEY_BOUND) & off_diagonal)
    else:
        rows, cols = np.nonzero(off_diagonal)
    count = len(rows)
    pairs = np.arange(count)
    width = total + (norm == "sum")
    entries = [np.ones(count), -np.ones(count)]
    coords_r, coords_c = [pairs, pairs], [rows, cols]
    if norm == "sum":
        # h_k - h_l + d_kl a <= d_kl, then h_k - a <= 0 and -h_k - a <= 0; a is the last variable
        entries.append(dist[rows, cols])
        coords_r.append(pairs)
        coords_c.append(np.full(count, total))
        k = np.arange(total)
        entries += [np.ones(total), -np.ones(total), -np.ones(2 * total)]
        coords_r += [count + k, count + total + k, count + np.arange(2 * total)]
        coords_c += [k, k, np.full(2 * total, total)]
        height = count + 2 * total
        bounds = [(None, None)] * total + [(0.0, 1.0)]
        upper = np.concatenate([dist[rows, cols], np.zeros(2 * total)])
    else:
        height = count
        bounds = (-1.0, 1.0)
        upper = dist[rows, cols]
    constraints = scipy.sparse.csr_array(
        (np.concatenate(entries), (np.concatenate(coords_r), np.concatenate(coords_c))),
        shape=(height, width),
    )
    # linprog minimises -c^T h
    objective = np.concatenate([-_uniform(n), _uniform(m), np.zeros(width - total)])
    result = linprog(
        objective,
        A_ub=constraints if height else None,
        b_ub=upper if height else None,
        bounds=bounds,
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
