r"""Will pretrained features help on my data? The paper's thesis applied to a user's own data set.

The transferability of eq. (7), :math:`T(n) = R_{\rm scratch}(n) - R_{\rm transfer}(n)`, is
estimated at the user's sample size n from learning curves measured on the data itself:

1. **Learning curves.** At several training sizes :math:`m < n` (geometric, up to
   ``n - n_test``), independent random splits train (a) *linear transfer*, ridge regression on the
   pretrained features with the penalty chosen by generalized cross-validation, and (b)
   *scratch training*: by default the minimum-norm least-squares fit on X (the scratch of the
   deep linear theory, Theorem 3.5), or ridge on X, or any scikit-learn-compatible estimator;
   each is scored by its mean squared error on held-out points.
2. **Curve forms.** The theory's forms are fitted to the mean curves (relative least squares).
   With the default scratch, eq. (10) in test-error form (the noise :math:`s^2` added),

   .. math::

       E_{\rm sc}(m) = b^2 (1 - m/D)_+ + s^2 \begin{cases}
           (D - 1)/(D - m - 1) & m < D - 1 \\ (m - 1)/(m - D - 1) & m > D + 1, \end{cases}

   and eq. (12) with q effective regressors, q the ridge fit's degrees of freedom
   :math:`\mathrm{tr}\, H` at each size (q = 1 for the paper's rank-one features), and at the
   largest measured size for the extrapolation,

   .. math::

       E_{\rm lt}(m) = (r + s^2)\, \frac{m - 1}{m - q - 1},

   whose floor :math:`r + s^2` holds the *irreducible error* r, the part of the target outside
   the span of the features (:math:`|\beta_t|^2\sin^2\theta` in the paper). A general scratch
   learner gets the power law plus floor of Section 4, :math:`E(m) = E_\infty + A m^{-\nu}`, and
   so does transfer then. With an intercept, m counts the samples left after centring (m - 1).
3. **Prediction.** :math:`\hat T(n) = E_{\rm sc}(n) - E_{\rm lt}(n)` (the noise cancels),
   with a percentile interval from the bootstrap over the splits at each size; the verdict is
   ``"positive"`` or ``"negative"`` when the interval excludes 0, else ``"uncertain"``. The
   crossover is where the fitted T changes sign from + (transfer helps) to - (scratch wins).

See docs/diagnose.md for the method, its validation and its limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featurefate import _validation as v

SCRATCH_CHOICES = ("min_norm", "ridge")
VERDICTS = ("positive", "negative", "uncertain")
_MIN_SAMPLES = 20
_LAM_GRID = np.logspace(-6.0, 4.0, 41)  # relative to the mean eigenvalue of the Gram matrix
_NU_GRID = np.linspace(0.05, 4.0, 80)


@dataclass(frozen=True)
class Interval:
    """An estimate with its bootstrap interval at ``confidence``."""

    estimate: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose` found.

    Attributes
    ----------
    n : int
        The user's sample size, at which everything is predicted.
    transferability : Interval
        Predicted :math:`R_{\\rm scratch}(n) - R_{\\rm transfer}(n)` (eq. 7), > 0: transfer helps.
    verdict : str
        ``"positive"`` (interval above 0), ``"negative"`` (below 0) or ``"uncertain"``.
    crossover_n : float or None
        Sample size beyond which scratch beats linear transfer, by the fitted curves, within
        ``[curves.n_curve.min(), curves.n_curve.max()]``: for a positive estimate the first
        crossing above n, for a negative one the last crossing at or below n; ``None`` when the
        fitted T does not cross there.
    irreducible_error : Interval
        The part of the target's mean square outside the features' span, r (eq. 12's floor less
        the noise), clipped at 0.
    parameters : dict
        Fitted curve parameters of ``"scratch"`` and ``"linear"``, with their forms.
    logme : float
        LogME of the features for the targets (You et al., 2021), for comparison.
    curves : xarray.Dataset
        Measured errors ``error_scratch``, ``error_linear`` (dims ``n``, ``split``), the chosen
        ``lam_linear``, and the fits ``fit_scratch``, ``fit_linear``, ``transferability`` with
        ``transferability_low``/``_high`` on the grid ``n_curve``.
    settings : dict
        The options the diagnosis ran with.
    """

    n: int
    transferability: Interval
    verdict: str
    crossover_n: float | None
    irreducible_error: Interval
    parameters: dict[str, Any]
    logme: float
    curves: Any = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (floats and lists; inf and NaN stay floats, see the CLI for strings)."""
        c = self.curves
        return {
            "n": self.n,
            "transferability": self.transferability.to_dict(),
            "verdict": self.verdict,
            "crossover_n": self.crossover_n,
            "irreducible_error": self.irreducible_error.to_dict(),
            "parameters": self.parameters,
            "logme": self.logme,
            "settings": self.settings,
            "curves": {
                "n": c["n"].values.tolist(),
                "error_scratch": c["error_scratch"].mean("split").values.tolist(),
                "error_scratch_std": c["error_scratch"].std("split").values.tolist(),
                "error_linear": c["error_linear"].mean("split").values.tolist(),
                "error_linear_std": c["error_linear"].std("split").values.tolist(),
                "n_curve": c["n_curve"].values.tolist(),
                "fit_scratch": c["fit_scratch"].values.tolist(),
                "fit_linear": c["fit_linear"].values.tolist(),
                "transferability": c["transferability"].values.tolist(),
                "transferability_low": c["transferability_low"].values.tolist(),
                "transferability_high": c["transferability_high"].values.tolist(),
            },
        }


# --------------------------------------------------------------------------------------------
# input


def _matrix(name, value, *, n=None):
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real array; got {type(value).__name__}") from None
    if arr.ndim == 1 and name == "y":
        arr = arr[:, None]
    if arr.ndim != 2:
        shape = "(n,) or (n, c)" if name == "y" else "(n, columns)"
        raise ValueError(f"{name} must have shape {shape}; got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(
            f"{name} must have one row per sample, n = {n} (the rows of X); got {arr.shape[0]}"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column; got shape {arr.shape}")
    if not v.all_finite(arr):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} must be finite; got {arr[tuple(bad)]} at row {bad[0]}, column {bad[1]}"
        )
    return arr


def _varying_columns(name, arr):
    """Columns of ``arr`` with nonzero variance; an error when there is none."""
    spread = np.ptp(arr, axis=0)
    keep = spread > 1e-12 * np.maximum(np.max(np.abs(arr), axis=0), 1e-300)
    if not np.any(keep):
        what = "targets" if name == "y" else "columns"
        raise ValueError(
            f"{name} has zero variance: every one of its {arr.shape[1]} {what} is constant over "
            f"the {arr.shape[0]} samples, so there is nothing to learn"
        )
    return keep


def check_data(X, y, features):
    """Validate the user's data; returns ``(X, Y, F, dropped)`` as float64, Y of shape (n, c).

    Raises ``ValueError`` (one line) for mismatched n, NaN or inf, fewer than 20 samples,
    constant targets and features or inputs without variance. Constant columns of X and of the
    features are dropped (a dead ReLU unit is constant); ``dropped`` counts them.
    """
    X = _matrix("X", X)
    n = X.shape[0]
    if n < _MIN_SAMPLES:
        raise ValueError(
            f"X must have at least {_MIN_SAMPLES} samples to measure and fit learning curves; "
            f"got n = {n}"
        )
    Y = _matrix("y", y, n=n)
    F = _matrix("features", features, n=n)
    keep_x = _varying_columns("X", X)
    keep_f = _varying_columns("features", F)
    keep_y = _varying_columns("y", Y)
    if not np.all(keep_y):
        Y = Y[:, keep_y]
    dropped = {"X": int(np.sum(~keep_x)), "features": int(np.sum(~keep_f))}
    return X[:, keep_x], Y, F[:, keep_f], dropped


# --------------------------------------------------------------------------------------------
# the learners


def _one_thread():
    """BLAS limited to one thread for a factorization: at these sizes (up to a few thousand)
    LAPACK's eigh and Cholesky gain little from threads and, on a shared machine, a threaded
    OpenBLAS factorization ran 8x slower than a single-threaded one (benchmarks/diagnose_bench.py)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _eig_gram(A):
    """Eigenpairs of the smaller Gram matrix of A (m, p): ``(s2, U)`` with U (m, r) orthonormal
    and :math:`A A^\\top = U \\mathrm{diag}(s2) U^\\top` on the resolvable directions."""
    m, p = A.shape
    if m <= p:
        with _one_thread():
            s2, U = np.linalg.eigh(A @ A.T)
    else:
        with _one_thread():
            s2, V = np.linalg.eigh(A.T @ A)
    keep = s2 > max(m, p) * np.finfo(np.float64).eps * max(s2[-1], 0.0)
    s2 = s2[keep]
    if m <= p:
        return s2, U[:, keep]
    return s2, (A @ V[:, keep]) / np.sqrt(s2)


def ridge_gcv(A, Y, A_test, *, lam=None, lams=None, gram=None, centred=False):
    r"""Ridge regression on centred data; the penalty by generalized cross-validation.

    With ``lam=None`` the penalty minimises, over the grid ``lams`` (relative to the mean
    eigenvalue of :math:`A^\top A`), the generalized cross-validation score

    .. math::

        \mathrm{GCV}(\lambda) = \frac{m\, |Y - H_\lambda Y|^2}{(m - \mathrm{tr}\, H_\lambda)^2},
        \qquad H_\lambda = A (A^\top A + \lambda I)^{-1} A^\top,

    leave-one-out cross-validation with every leverage replaced by their mean (Golub, Heath and
    Wahba, 1979), all from one eigendecomposition; penalties leaving less than one residual
    degree of freedom (:math:`m - \mathrm{tr}\, H < 1`) are not considered. With ``lam`` given (absolute units) the fit is
    one Cholesky solve.

    Returns ``(predictions on A_test, penalty in absolute units, degrees of freedom
    tr H)``, the last NaN when ``lam`` is given; A, A_test and Y must be centred by the caller. ``gram``: :math:`A^\top A`, if already at hand (tall A only).
    """
    m, p = A.shape
    if lam is not None:
        from scipy.linalg import cho_factor, cho_solve

        gram = A.T @ A if gram is None else gram.copy()
        gram[np.diag_indices(p)] += lam
        with _one_thread():
            factor = cho_factor(gram, check_finite=False)
        coef = cho_solve(factor, A.T @ Y, check_finite=False)
        return A_test @ coef, float(lam), float("nan")
    wide = m <= p
    gram = A @ A.T if wide else (A.T @ A if gram is None else gram)
    with _one_thread():
        s2, basis = np.linalg.eigh(gram)
    keep = s2 > max(m, p) * np.finfo(np.float64).eps * max(s2[-1], 0.0)
    s2, basis = s2[keep], basis[:, keep]
    # Z = U^T Y, U the left singular vectors: the basis itself (wide) or A V / s (tall)
    Z = basis.T @ Y if wide else (basis.T @ (A.T @ Y)) / np.sqrt(s2)[:, None]
    lams = _LAM_GRID if lams is None else np.asarray(lams, dtype=np.float64)
    lam_abs = lams * (np.sum(s2) / p)
    outside = np.sum(Y * Y) - np.sum(Z * Z)  # the part of Y no penalty can fit
    shrink = lam_abs[:, None] / (s2[None, :] + lam_abs[:, None])  # 1 - s2 / (s2 + lam)
    rss = outside + (shrink**2) @ np.sum(Z * Z, axis=1)
    dof = np.sum(1.0 - shrink, axis=1)
    # a penalty that leaves less than one residual degree of freedom interpolates, where GCV's
    # 0/0 is noise (it picked lam ~ 0 and a test error of 20x at m ~ k on the digits demo)
    m_res = m - 1.0 if centred else float(m)  # centring spends one degree of freedom
    with np.errstate(divide="ignore"):
        gcv = np.where(m_res - dof >= 1.0, m_res * rss / np.maximum(m_res - dof, 1.0) ** 2, np.inf)
    best = int(np.argmin(gcv))
    scaled = Z / (s2 + lam_abs[best])[:, None]
    coef = A.T @ (basis @ scaled) if wide else basis @ (scaled * np.sqrt(s2)[:, None])
    return A_test @ coef, float(lam_abs[best]), float(dof[best])


def min_norm_predict(A, Y, A_test, *, centred=False, gram=None):
    r"""Predictions of the minimum-norm least-squares fit :math:`A^+ Y` (Theorem 3.5) on A_test.

    A full-rank Gram matrix (the smaller of :math:`A A^\top`, :math:`A^\top A`) is solved by
    Cholesky, :math:`A^\top (A A^\top)^{-1} Y` or :math:`(A^\top A)^{-1} A^\top Y`; a singular
    one falls back to its eigendecomposition with NumPy's pinv cutoff (``gram``: :math:`A^\top
    A` if already at hand, used for a tall A). With ``centred`` (rows of
    A and Y summing to 0) the wide Gram matrix is singular along the all-ones vector, which Y
    is orthogonal to; adding a multiple of :math:`\mathbf 1 \mathbf 1^\top` there leaves the
    solution unchanged and makes the matrix definite.
    """
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    m, p = A.shape
    wide = m <= p
    if gram is None or wide:
        gram = A @ A.T if wide else A.T @ A
    if wide and centred:
        gram += np.trace(gram) / m**2
    rhs = Y if wide else A.T @ Y
    try:
        with _one_thread():
            factor = cho_factor(gram, lower=True, check_finite=False)
        diag = np.diag(factor[0]) ** 2
        if diag.min() <= max(m, p) * np.finfo(np.float64).eps * diag.max():
            raise LinAlgError("numerically singular")
        solved = cho_solve(factor, rhs, check_finite=False)
        coef = A.T @ solved if wide else solved
    except LinAlgError:
        s2, U = _eig_gram(A)
        coef = A.T @ (U @ ((U.T @ Y) / s2[:, None]))
    return A_test @ coef


def _mse(pred, Y):
    return float(np.mean((pred - Y) ** 2))


# --------------------------------------------------------------------------------------------
# curve forms (vectorised over bootstrap replicates)


def _two_term_nnls(B, T, w):
    r"""Non-negative least squares of each row of T (R, S) on the two columns of B (S, 2), with
    weights w (S): returns ``(coef (R, 2), sse (R,))``."""
    Bw = B * w[:, None]
    G = B.T @ Bw  # (2, 2)
    rhs = T @ Bw  # (R, 2)
    det = G[0, 0] * G[1, 1] - G[0, 1] ** 2
    cands = []
    if det > 1e-14 * G[0, 0] * G[1, 1]:
        c0 = (G[1, 1] * rhs[:, 0] - G[0, 1] * rhs[:, 1]) / det
        c1 = (G[0, 0] * rhs[:, 1] - G[0, 1] * rhs[:, 0]) / det
        full = np.stack([c0, c1], axis=1)
        ok = np.all(full >= 0.0, axis=1)
        cands.append(np.where(ok[:, None], full, np.nan))
    for j in range(2):
        c = np.zeros_like(rhs)
        c[:, j] = np.maximum(rhs[:, j] / G[j, j], 0.0) if G[j, j] > 0 else 0.0
        cands.append(c)
    best_coef = np.full_like(rhs, np.nan)
    best_sse = np.full(T.shape[0], np.inf)
    for c in cands:
        sse = np.sum(w * (T - c @ B.T) ** 2, axis=1)
        sse = np.where(np.isnan(sse), np.inf, sse)
        better = sse < best_sse
        best_sse = np.where(better, sse, best_sse)
        best_coef = np.where(better[:, None], c, best_coef)
    return best_coef, best_sse


def _eq10_basis(m, dim):
    """Columns (1 - m/D)_+ and the noise factor of eq. (10) in test-error form."""
    m = np.asarray(m, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        noise = np.where(
            m < dim - 1.0,
            (dim - 1.0) / (dim - m - 1.0),
            np.where(m > dim + 1.0, (m - 1.0) / (m - dim - 1.0), np.inf),
        )
    return np.stack([np.maximum(1.0 - m / dim, 0.0), noise], axis=-1)


def _fit_eq10(m, T, w, dim):
    coef, sse = _two_term_nnls(_eq10_basis(m, dim), T, w)
    return {"signal": coef[:, 0], "noise": coef[:, 1]}, sse


def _eval_eq10(p, m, dim):
    B = _eq10_basis(m, dim)
    with np.errstate(invalid="ignore"):
        out = p["signal"][:, None] * B[None, :, 0] + p["noise"][:, None] * B[None, :, 1]
    return np.where(p["noise"][:, None] == 0.0, np.nan_to_num(out, posinf=0.0), out)


def _eq12_factor(m, q):
    return (m - 1.0) / (m - q - 1.0)


def _fit_eq12(m, T, w, q):
    """Eq. (12)'s floor with the known effective regressors q per size, by weighted least
    squares on the sizes with m >= 2q + 1: eq. (12)'s variance term is least squares', and where
    a ridge fit has fewer than about two samples per degree of freedom its error is dominated by
    the penalty's bias instead (the largest two sizes if fewer qualify)."""
    finite = m - q - 1.0 >= 1.0
    ok = finite & (m >= 2.0 * q + 1.0)
    if np.sum(ok) < 2:
        ok = finite & (np.arange(m.size) >= m.size - 2)
    if np.sum(ok) < 2:
        raise ValueError(
            "features must leave room for a learning curve: the transfer fit uses "
            f"{q[-1]:.3g} effective regressors at the largest size {m[-1] + 1:.0f}; give more "
            "samples or fewer features"
        )
    h = np.where(ok, _eq12_factor(m, np.where(ok, q, 0.0)), 0.0)
    wo = np.where(ok, w, 0.0)
    floor = np.maximum((T * wo) @ h / np.sum(wo * h * h), 0.0)
    sse = np.sum(wo * (T - floor[:, None] * h) ** 2, axis=1)
    return {"floor": floor, "q": np.full(T.shape[0], q[-1])}, sse


def _eval_eq12(p, m):
    m = np.asarray(m, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(
            m[None, :] > p["q"][:, None] + 1.0, _eq12_factor(m[None, :], p["q"][:, None]), np.inf
        )
    return p["floor"][:, None] * factor


def _fit_power(m, T, w):
    best = {k: np.full(T.shape[0], np.nan) for k in ("floor", "amplitude", "exponent")}
    best_sse = np.full(T.shape[0], np.inf)
    for nu in _NU_GRID:
        B = np.stack([np.ones_like(m), (m / m[0]) ** (-nu)], axis=1)
        coef, sse = _two_term_nnls(B, T, w)
        better = sse < best_sse
        best_sse = np.where(better, sse, best_sse)
        best["floor"] = np.where(better, coef[:, 0], best["floor"])
        best["amplitude"] = np.where(better, coef[:, 1] * m[0] ** nu, best["amplitude"])
        best["exponent"] = np.where(better, nu, best["exponent"])
    return best, best_sse


def _eval_power(p, m):
    m = np.asarray(m, dtype=np.float64)
    return p["floor"][:, None] + p["amplitude"][:, None] * m[None, :] ** (-p["exponent"][:, None])


# --------------------------------------------------------------------------------------------
# sizes, crossover


def _sizes(n, n_test, num_sizes, min_size, dim):
    top = n - n_test
    low = max(min_size, 5)
    if top < low + 2:
        raise ValueError(
            f"n = {n} leaves {top} training samples after the {n_test} held out; at least "
            f"{low + 2} are needed for a learning curve (more samples, or a smaller test_fraction)"
        )
    sizes = np.unique(np.round(np.geomspace(low, top, num_sizes)).astype(int))
    # the minimum-norm fit's error is infinite at m = D (eq. 10): step off the peak
    if dim is not None:
        near = np.abs(sizes - dim) <= 2
        sizes = np.unique(np.where(near, np.where(sizes <= dim, dim - 3, dim + 3), sizes))
        sizes = sizes[(sizes >= low) & (sizes <= top)].astype(int)
    if sizes.size < 3:
        raise ValueError(
            f"num_sizes must give at least 3 distinct training sizes; got {sizes.size} "
            f"between {low} and {top}"
        )
    return sizes


def _crossover(grid, t, n):
    """Where the curve t on grid changes sign from + to -, the one that matters at n."""
    pos = t >= 0.0
    down = np.nonzero(pos[:-1] & ~pos[1:])[0]  # t[i] >= 0 > t[i+1]
    if down.size == 0 or not np.isfinite(t).any():
        return None
    i_n = np.searchsorted(grid, n)
    t_n = t[min(i_n, t.size - 1)]
    if t_n >= 0.0:
        cand = down[grid[down + 1] > n]
        if cand.size == 0:
            return None
        i = cand[0]
    else:
        cand = down[grid[down + 1] <= n]
        if cand.size == 0:
            return None
        i = cand[-1]
    t0, t1 = t[i], t[i + 1]
    if not (np.isfinite(t0) and np.isfinite(t1)):
        return float(grid[i + 1])
    frac = t0 / (t0 - t1)
    return float(np.exp(np.log(grid[i]) + frac * (np.log(grid[i + 1]) - np.log(grid[i]))))


# --------------------------------------------------------------------------------------------
# the diagnosis


class _NestedGram:
    r""":math:`A^\top A` over growing prefixes of the rows ``pool`` (nested training sets), each
    new row added once; centred on request (:math:`A_c^\top A_c = A^\top A - m \mu \mu^\top`)."""

    def __init__(self, A, pool):
        self.A, self.pool, self.done, self.gram = A, pool, 0, None

    def upto(self, m, *, centred):
        rows = self.A[self.pool[self.done : m]]
        self.gram = rows.T @ rows if self.gram is None else self.gram + rows.T @ rows
        self.done = m
        if not centred:
            return self.gram.copy()
        mu = self.A[self.pool[:m]].mean(axis=0)
        return self.gram - m * np.outer(mu, mu)


def learning_curves(X, Y, F, *, sizes, n_test, repeats, scratch, fit_intercept, rng):
    r"""Learning curves of scratch and linear transfer on nested random splits.

    Each repeat draws a random held-out set of ``n_test`` samples and trains on growing prefixes
    of a random order of the rest, so the Gram matrices grow by the new rows only. Returns
    ``(test, sq_scratch, sq_linear, lam_linear, dof_linear)``: the held-out indices (repeats,
    n_test), the squared errors on them (mean over target columns), shape (sizes, repeats,
    n_test), the chosen transfer penalties (sizes, repeats) and the transfer fit's degrees of
    freedom :math:`\mathrm{tr}\, H` at each size (first repeat, where the penalty is chosen).
    """
    n, dim = X.shape
    tests = np.empty((repeats, n_test), dtype=np.intp)
    sq_sc = np.empty((sizes.size, repeats, n_test))
    sq_lt = np.empty_like(sq_sc)
    lam_lt = np.empty((sizes.size, repeats))
    lam_sc = np.empty(sizes.size)
    dof_lt = np.empty(sizes.size)
    if fit_intercept:  # centred once globally, so that the nested Gram updates lose no digits
        X, F = X - X.mean(axis=0), F - F.mean(axis=0)
    estimator = None
    if not isinstance(scratch, str):
        from sklearn.base import clone

        estimator = scratch
    for r in range(repeats):
        perm = rng.permutation(n)
        test, pool = perm[:n_test], perm[n_test:]
        tests[r] = test
        gram_x, gram_f = _NestedGram(X, pool), _NestedGram(F, pool)
        Yt = Y[test]
        for i, m in enumerate(sizes):
            train = pool[:m]
            Yc = Y[train]
            y_mean = Yc.mean(axis=0) if fit_intercept else np.zeros(Y.shape[1])
            Yc = Yc - y_mean
            Fc, Ft = F[train], F[test]
            if fit_intercept:
                f_mean = Fc.mean(axis=0)
                Fc, Ft = Fc - f_mean, Ft - f_mean
            gram = gram_f.upto(m, centred=fit_intercept) if m > F.shape[1] else None
            # the penalty is chosen on the first split of each size and kept for the others
            lam = None if r == 0 else lam_lt[i, 0]
            pred, lam_lt[i, r], dof = ridge_gcv(
                Fc, Yc, Ft, lam=lam, gram=gram, centred=fit_intercept
            )
            if r == 0:
                dof_lt[i] = dof
            sq_lt[i, r] = np.mean((pred + y_mean - Yt) ** 2, axis=1)
            if estimator is not None:
                model = clone(estimator)
                model.fit(X[train], Y[train, 0] if Y.shape[1] == 1 else Y[train])
                pred = np.asarray(model.predict(X[test]), dtype=np.float64).reshape(Yt.shape)
                sq_sc[i, r] = np.mean((pred - Yt) ** 2, axis=1)
                continue
            Xc, Xt = X[train], X[test]
            if fit_intercept:
                x_mean = Xc.mean(axis=0)
                Xc, Xt = Xc - x_mean, Xt - x_mean
            gram = gram_x.upto(m, centred=fit_intercept) if m > dim else None
            if scratch == "min_norm":
                pred = min_norm_predict(Xc, Yc, Xt, centred=fit_intercept, gram=gram)
            else:
                lam = None if r == 0 else lam_sc[i]
                pred, lam_sc[i], _ = ridge_gcv(
                    Xc, Yc, Xt, lam=lam, gram=gram, centred=fit_intercept
                )
            sq_sc[i, r] = np.mean((pred + y_mean - Yt) ** 2, axis=1)
    return tests, sq_sc, sq_lt, lam_lt, dof_lt


def _bootstrap_means(tests, sq_sc, sq_lt, n, bootstrap, rng):
    r"""Mean test errors per size, point estimate first, then ``bootstrap`` replicates.

    A replicate weighs every one of the n samples by an Exp(1) draw (the Bayesian bootstrap:
    the held-out errors are averages over the user's n points, whose own sampling error is what
    dominates the floors) and resamples the repeats with replacement, each whole curve at once
    (the spread of the learners over training sets; a repeat's sizes are nested, hence
    correlated). Shapes (1 + bootstrap, sizes).
    """
    S, R, _ = sq_sc.shape
    out_sc = np.empty((1 + bootstrap, S))
    out_lt = np.empty((1 + bootstrap, S))
    out_sc[0] = sq_sc.mean(axis=(1, 2))
    out_lt[0] = sq_lt.mean(axis=(1, 2))
    W = rng.exponential(size=(bootstrap, n))[:, tests]  # (B, R, n_test)
    total = W.sum(axis=2)
    pick = rng.integers(0, R, size=(bootstrap, R))
    for i in range(S):
        split_sc = np.einsum("brt,rt->br", W, sq_sc[i]) / total
        split_lt = np.einsum("brt,rt->br", W, sq_lt[i]) / total
        out_sc[1:, i] = np.take_along_axis(split_sc, pick, axis=1).mean(axis=1)
        out_lt[1:, i] = np.take_along_axis(split_lt, pick, axis=1).mean(axis=1)
    return out_sc, out_lt


def diagnose(
    X,
    y,
    features,
    *,
    scratch=None,
    repeats=8,
    num_sizes=8,
    min_size=None,
    test_fraction=0.2,
    fit_intercept=True,
    bootstrap=400,
    confidence=0.9,
    horizon=10.0,
    seed=0,
):
    r"""Predict whether linear transfer on ``features`` beats training from scratch on X, at n.

    Measures both learning curves by repeated random splits, fits the theory's curve forms
    (eqs. 10 and 12 for the default scratch, the power law plus floor of Section 4 otherwise;
    see the module docstring and docs/diagnose.md), and predicts the transferability of eq. (7)

    .. math::

        T(n) = R_{\rm scratch}(n) - R_{\rm transfer}(n)

    with a bootstrap interval, the crossover sample size and the irreducible error.

    Parameters
    ----------
    X : array-like, shape (n, D)
        Target inputs (what scratch training sees).
    y : array-like, shape (n,) or (n, c)
        Targets; several columns are scored by their mean squared error together.
    features : array-like, shape (n, k)
        The pretrained model's features of the same n inputs (what linear transfer sees).
    scratch : None, "min_norm", "ridge" or estimator, default None
        Scratch learner: the minimum-norm fit (default, eq. 10's form), ridge on X with the
        penalty by generalized cross-validation, or any scikit-learn-compatible regressor (e.g.
        ``MLPRegressor``); the last two are fitted with the power law plus floor.
    repeats : int, default 8
        Random splits per training size.
    num_sizes : int, default 8
        Training sizes, geometric from ``min_size`` to ``n - n_test``.
    min_size : int, optional
        Smallest training size, >= 5; default ``max(5, (n - n_test) // 40)``.
    test_fraction : float, default 0.2
        Held-out fraction of each split, in (0, 0.5].
    fit_intercept : bool, default True
        Centre inputs, features and targets on each training set.
    bootstrap : int, default 400
        Bootstrap replicates (the splits resampled at each size) for the intervals.
    confidence : float, default 0.9
        Level of the intervals, in (0, 1).
    horizon : float, default 10.0
        The fitted curves extend to ``horizon * n`` (>= 1) for the crossover.
    seed : int, default 0

    Returns
    -------
    Diagnosis
    """
    import xarray as xr

    from featurefate._logme import logme

    X, Y, F, dropped = check_data(X, y, features)
    n, dim = X.shape
    repeats = v.integer("repeats", repeats, low=2)
    num_sizes = v.integer("num_sizes", num_sizes, low=3)
    bootstrap = v.integer("bootstrap", bootstrap, low=10)
    seed = v.integer("seed", seed, low=0)
    test_fraction = float(
        v.real_array("test_fraction", test_fraction, low=0.0, high=0.5, low_open=True)
    )
    confidence = float(
        v.real_array("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    )
    horizon = float(v.real_array("horizon", horizon, low=1.0))
    if scratch is None:
        scratch = "min_norm"
    if isinstance(scratch, str):
        scratch = v.choice("scratch", scratch, SCRATCH_CHOICES)
    elif not (hasattr(scratch, "fit") and hasattr(scratch, "predict")):
        raise ValueError(
            f"scratch must be None, 'min_norm', 'ridge' or an estimator with fit and predict; "
            f"got {type(scratch).__name__}"
        )
    linear_forms = scratch == "min_norm"
    n_test = max(round(test_fraction * n), 5)
    top = n - n_test
    default_min = max(5, top // 40)
    min_size = default_min if min_size is None else v.integer("min_size", min_size, low=5)
    shift = 1.0 if fit_intercept else 0.0
    dim_eff = dim - shift  # centring removes one direction
    sizes = _sizes(n, n_test, num_sizes, min_size, dim if linear_forms else None)
    rng = np.random.default_rng(seed)
    tests, sq_sc, sq_lt, lam_lt, dof_lt = learning_curves(
        X, Y, F, sizes=sizes, n_test=n_test, repeats=repeats, scratch=scratch,
        fit_intercept=fit_intercept, rng=rng,
    )  # fmt: skip
    if not (v.all_finite(sq_sc) and v.all_finite(sq_lt)):
        raise ValueError("the learners gave non-finite test errors (the data is too ill-scaled)")
    err_sc, err_lt = sq_sc.mean(axis=2), sq_lt.mean(axis=2)
    boot_sc, boot_lt = _bootstrap_means(tests, sq_sc, sq_lt, n, bootstrap, rng)
    m_eff = sizes - shift
    w_sc = 1.0 / err_sc.mean(1) ** 2  # relative least squares
    w_lt = 1.0 / err_lt.mean(1) ** 2
    grid = np.unique(np.concatenate([np.geomspace(sizes[0], horizon * n, 400), [n]]))
    g_eff = grid - shift
    if linear_forms:
        p_sc, sse_sc = _fit_eq10(m_eff, boot_sc, w_sc, dim_eff)
        # eq. 12 is fitted for its floor, read off at n beyond every size: the larger sizes,
        # where ridge behaves like least squares, weigh in proportion to m
        p_lt, sse_lt = _fit_eq12(m_eff, boot_lt, w_lt * m_eff / m_eff[-1], dof_lt)
        curve_sc, curve_lt = _eval_eq10(p_sc, g_eff, dim_eff), _eval_eq12(p_lt, g_eff)
        noise, floor = p_sc["noise"], p_lt["floor"]
        forms = {"scratch": "eq. 10", "linear": "eq. 12, q = ridge degrees of freedom"}
    else:
        p_sc, sse_sc = _fit_power(m_eff, boot_sc, w_sc)
        p_lt, sse_lt = _fit_power(m_eff, boot_lt, w_lt)
        curve_sc, curve_lt = _eval_power(p_sc, g_eff), _eval_power(p_lt, g_eff)
        noise, floor = p_sc["floor"], p_lt["floor"]
        forms = {"scratch": "power law plus floor", "linear": "power law plus floor"}
    with np.errstate(invalid="ignore"):
        t_curves = curve_sc - curve_lt
    irreducible = np.maximum(floor - noise, 0.0)
    tail = (1.0 - confidence) / 2.0
    i_n = int(np.searchsorted(grid, n))

    def interval(samples):
        est = float(samples[0])
        low, high = np.nanquantile(samples[1:], [tail, 1.0 - tail], method="nearest")
        return Interval(est, float(low), float(high))

    with np.errstate(invalid="ignore"):
        t_n = interval(t_curves[:, i_n])
        t_low, t_high = np.nanquantile(t_curves[1:], [tail, 1.0 - tail], axis=0, method="nearest")
    verdict = "positive" if t_n.low > 0 else "negative" if t_n.high < 0 else "uncertain"
    crossover = _crossover(grid, t_curves[0], n)

    def params(p, sse, weights):
        out = {key: float(val[0]) for key, val in p.items()}
        out["rms_relative_residual"] = float(np.sqrt(sse[0] / weights.size))
        return out

    parameters = {
        "scratch": {"form": forms["scratch"], **params(p_sc, sse_sc, w_sc)},
        "linear": {"form": forms["linear"], **params(p_lt, sse_lt, w_lt)},
    }
    if linear_forms:
        parameters["scratch"]["dim"] = float(dim_eff)
    name = scratch if isinstance(scratch, str) else type(scratch).__name__
    settings = {
        "scratch": name,
        "repeats": repeats,
        "num_sizes": int(sizes.size),
        "n_test": n_test,
        "test_fraction": test_fraction,
        "fit_intercept": bool(fit_intercept),
        "bootstrap": bootstrap,
        "confidence": confidence,
        "horizon": horizon,
        "seed": seed,
        "dim": int(dim),
        "num_features": int(F.shape[1]),
        "num_targets": int(Y.shape[1]),
        "dropped_constant_columns": dropped,
    }
    curves = xr.Dataset(
        {
            "error_scratch": (("n", "split"), err_sc, {"long_name": "scratch test MSE"}),
            "error_linear": (("n", "split"), err_lt, {"long_name": "linear transfer test MSE"}),
            "lam_linear": (("n", "split"), lam_lt, {"long_name": "ridge penalty (GCV)"}),
            "dof_linear": ("n", dof_lt, {"long_name": "ridge degrees of freedom tr H"}),
            "fit_scratch": ("n_curve", curve_sc[0]),
            "fit_linear": ("n_curve", curve_lt[0]),
            "transferability": ("n_curve", t_curves[0]),
            "transferability_low": ("n_curve", t_low),
            "transferability_high": ("n_curve", t_high),
        },
        coords={"n": sizes, "split": np.arange(repeats), "n_curve": grid},
        attrs={
            "n_samples": n,
            "verdict": verdict,
            "crossover_n": float("nan") if crossover is None else crossover,
            "form_scratch": forms["scratch"],
            "form_linear": forms["linear"],
            "scratch": name,
            "confidence": confidence,
        },
    )
    return Diagnosis(
        n=n,
        transferability=t_n,
        verdict=verdict,
        crossover_n=crossover,
        irreducible_error=interval(irreducible),
        parameters=parameters,
        logme=logme(F, Y),
        curves=curves,
        settings=settings,
    )


def load_data(path, *, y=None, features=None):
    """Read DATA for ``featurefate diagnose``: ``(X, y, features)``.

    - ``.npz``: arrays named ``X``, ``y`` and ``features``;
    - ``.npy``: X itself, with ``y`` and ``features`` given as further ``.npy`` paths;
    - ``.csv`` or ``.parquet``: a table whose columns ``x_*`` are X, ``y`` or ``y_*`` the
      targets and ``f_*`` the features (column groups by prefix, in table order).
    """
    from pathlib import Path

    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise ValueError(f"DATA {path} does not exist")
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in ("X", "y", "features") if key not in data]
            if missing:
                raise ValueError(
                    f"DATA {path} must hold arrays X, y and features; missing {', '.join(missing)}"
                    f" (has {', '.join(data.files) or 'none'})"
                )
            return data["X"], data["y"], data["features"]
    if suffix == ".npy":
        if y is None or features is None:
            raise ValueError("DATA given as .npy is X: give --y Y.npy and --features F.npy with it")
        return (
            np.load(path, allow_pickle=False),
            np.load(y, allow_pickle=False),
            np.load(features, allow_pickle=False),
        )
    if suffix in (".csv", ".parquet"):
        import pandas as pd

        if suffix == ".csv":
            table = pd.read_csv(path)
        else:
            try:
                table = pd.read_parquet(path)
            except ImportError as err:
                raise ValueError(f"reading Parquet needs pyarrow or fastparquet: {err}") from None
        cols = [str(c) for c in table.columns]
        groups = {
            "X": [c for c in cols if c.startswith("x_")],
            "y": [c for c in cols if c == "y" or c.startswith("y_")],
            "features": [c for c in cols if c.startswith("f_")],
        }
        for key, names in groups.items():
            if not names:
                prefix = {"X": "x_", "y": "y or y_", "features": "f_"}[key]
                raise ValueError(
                    f"DATA {path} has no {key} columns: name them {prefix}<anything> "
                    f"(columns: {', '.join(cols[:8])}{' ...' if len(cols) > 8 else ''})"
                )
        try:
            return tuple(table[groups[key]].to_numpy(dtype=np.float64) for key in groups)
        except (TypeError, ValueError) as err:
            raise ValueError(f"DATA {path} has non-numeric columns: {err}") from None
    raise ValueError(f"DATA must be a .npz, .npy, .csv or .parquet file; got {path.name}")


def json_ready(result: Diagnosis) -> dict:
    """:meth:`Diagnosis.to_dict` with non-finite floats as the strings "inf", "-inf", "nan"."""

    def clean(value):
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [clean(item) for item in value]
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, np.generic):
            return clean(value.item())
        return value

    return clean(result.to_dict())
