r"""Two-layer ReLU networks in closed form: Section 4 and Appendix C of the paper.

A network of width m and its teacher of width k are

.. math::

    f(x) = \frac1m \sum_{i=1}^m c_i\, \mathrm{relu}(w_i \cdot x), \qquad
    f_t(x) = \frac1k \sum_{j=1}^k a_j\, \mathrm{relu}(u_j \cdot x),

eqs. (18)-(20), with inputs :math:`x \sim N(0, I_d)`. Every network in this module carries the
mean-field factor one over its number of rows; a source teacher made by removing neurons from the
target keeps the target's rows with the removed output weights set to zero (docs/theory.md, Two-layer ReLU networks), so
that source and target share ``W_teacher`` and their difference is exact.

Everything rests on the arc-cosine kernel of degree one (Cho & Saul 2009; eqs. 152-153),

.. math::

    E_x\, \mathrm{relu}(w \cdot x)\, \mathrm{relu}(v \cdot x)
      = \frac{|w||v|}{2\pi} \big(\sin\varphi + (\pi - \varphi)\cos\varphi\big)
      = |w||v|\, \kappa(\cos\varphi),

:math:`\varphi` the angle between ``w`` and ``v`` and
:math:`\kappa(u) = (\sqrt{1 - u^2} + u(\pi - \arccos u)) / (2\pi)`. Population losses,
generalization errors, the projections of a teacher on the span of the model's features
(eqs. 157-159) and the similarity of kernels are therefore exact quadratic forms over the Gram
matrices :math:`K_{mm}, K_{mk}, K_{kk}` (eqs. 154-156); nothing here samples.

The module also holds the empirical side of Fig. 4: the power-law fit :math:`A n^{-\nu}` of the
scratch learning curve (Fig. 4c) and the predicted phase boundary where it meets the irreducible
error of linear transfer, :math:`A n^{-\nu} = |P_\perp f_t|^2` (Fig. 4e).

All functions are NumPy only and batched over leading axes: weights of shape ``(..., m, d)``
with output weights ``(..., m)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats

from featurefate import _validation as v

_TWO_PI = 2.0 * np.pi


# --------------------------------------------------------------------------------------------
# validation helpers


def _weights(name, value):
    arr = v.real_array(name, value)
    if arr.ndim < 2 or arr.shape[-1] < 1 or arr.shape[-2] < 1:
        raise ValueError(
            f"{name} must have shape (..., rows, d) with rows, d >= 1; got {arr.shape}"
        )
    return arr


def _outputs(name, value, weights, weights_name):
    arr = v.real_array(name, value)
    if arr.shape[-1:] != weights.shape[-2:-1]:
        raise ValueError(
            f"{name} must have shape (..., {weights.shape[-2]}) to match {weights_name} "
            f"{weights.shape}; got {arr.shape}"
        )
    return arr


def _same_dim(name_a, a, name_b, b):
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same input dimension d (last axis); "
            f"got {a.shape} and {b.shape}"
        )


def _rcond(rcond, size):
    if rcond is None:
        return size * np.finfo(np.float64).eps
    return float(v.real_array("rcond", rcond, low=0.0, high=1.0, high_open=True))


# --------------------------------------------------------------------------------------------
# the kernel


def kappa(u):
    r"""The arc-cosine kernel of unit vectors as a function of their cosine, eq. (153).

    .. math::

        \kappa(u) = \frac{\sqrt{1 - u^2} + u\,(\pi - \arccos u)}{2\pi}, \qquad
        \kappa'(u) = \frac{\pi - \arccos u}{2\pi},

    with ``u`` clipped to [-1, 1] first, so rounding past 1 cannot produce NaN. It rises from
    :math:`\kappa(-1) = 0` through :math:`\kappa(0) = 1/(2\pi)` to :math:`\kappa(1) = 1/2`
    (:math:`E\,\mathrm{relu}(w \cdot x)^2 = |w|^2/2`).

    Parameters
    ----------
    u : array-like
        Cosines.

    Returns
    -------
    ndarray or float
    """
    u = np.clip(np.asarray(u, dtype=np.float64), -1.0, 1.0)
    return v.scalar_or_array((np.sqrt(1.0 - u * u) + u * (np.pi - np.arccos(u))) / _TWO_PI)


def relu_kernel(W, V):
    r"""Gram matrix of the arc-cosine kernel between the rows of ``W`` and ``V``, eqs. (152)-(153).

    .. math::

        K_{ij} = E_{x \sim N(0, I_d)}\, \mathrm{relu}(w_i \cdot x)\, \mathrm{relu}(v_j \cdot x)
               = \frac{|w_i||v_j|}{2\pi} \big(\sin\varphi_{ij} + (\pi - \varphi_{ij}) \cos\varphi_{ij}\big).

    The cosine is clipped to [-1, 1] (identical rows give exactly :math:`|w|^2/2`), and a zero
    row gives a zero row of K.

    Parameters
    ----------
    W : array-like, shape (..., m, d)
    V : array-like, shape (..., k, d)
        Leading axes broadcast against each other.

    Returns
    -------
    K : ndarray, shape (..., m, k)
    """
    W, V = _weights("W", W), _weights("V", V)
    _same_dim("W", W, "V", V)
    return _kernel(W, V)


def _kernel(W, V):
    norm_w = np.linalg.norm(W, axis=-1)
    norm_v = np.linalg.norm(V, axis=-1)
    scale = norm_w[..., :, None] * norm_v[..., None, :]
    dots = W @ np.swapaxes(V, -1, -2)
    positive = scale > 0.0
    cos = np.where(positive, dots / np.where(positive, scale, 1.0), 0.0)
    return scale * kappa(cos)


class ReluGrams(NamedTuple):
    r"""The Gram matrices of eqs. (154)-(156) between model rows W and teacher rows U.

    Attributes
    ----------
    model : ndarray, shape (..., m, m)
        :math:`K_{mm} = \kappa(W W^\top)` (for unit rows).
    cross : ndarray, shape (..., m, k)
        :math:`K_{mk}`.
    teacher : ndarray, shape (..., k, k)
        :math:`K_{kk}`.
    """

    model: np.ndarray
    cross: np.ndarray
    teacher: np.ndarray


def gram_matrices(W_model, W_teacher) -> ReluGrams:
    """The three Gram matrices :math:`K_{mm}, K_{mk}, K_{kk}`, eqs. (154)-(156).

    Parameters
    ----------
    W_model : array-like, shape (..., m, d)
    W_teacher : array-like, shape (..., k, d)

    Returns
    -------
    ReluGrams
    """
    W, U = _weights("W_model", W_model), _weights("W_teacher", W_teacher)
    _same_dim("W_model", W, "W_teacher", U)
    return ReluGrams(_kernel(W, W), _kernel(W, U), _kernel(U, U))


def feature_kernel(X, W, weights=None):
    r"""The kernel of a layer of ReLU features on given points, :math:`\sum_i p_i \phi_i(x)\phi_i(x')`.

    .. math::

        K(x, x') = \sum_{i} p_i\, \mathrm{relu}(w_i \cdot x)\, \mathrm{relu}(w_i \cdot x'),

    with mixing weights :math:`p_i \ge 0` normalised to sum to one (uniform by default: the
    model's kernel :math:`\frac1m \sum_i`). Used to show a kernel on a few test points (Fig. 4a-b).

    Parameters
    ----------
    X : array-like, shape (..., p, d)
        Points.
    W : array-like, shape (..., m, d)
        Feature rows.
    weights : array-like, shape (..., m), optional
        Nonnegative, not all zero; default uniform.

    Returns
    -------
    ndarray, shape (..., p, p)
    """
    X, W = _weights("X", X), _weights("W", W)
    _same_dim("X", X, "W", W)
    p = _mixing("weights", weights, W)
    features = np.maximum(X @ np.swapaxes(W, -1, -2), 0.0)
    return (features * p[..., None, :]) @ np.swapaxes(features, -1, -2)


def _mixing(name, weights, W):
    if weights is None:
        return np.full(W.shape[:-1], 1.0 / W.shape[-2])
    p = _outputs(name, weights, W, "its rows")
    v.real_array(name, p, low=0.0)
    total = p.sum(axis=-1, keepdims=True)
    if np.any(total <= 0.0):
        raise ValueError(f"{name} must have a positive sum over the rows; got all zeros")
    return p / total


# --------------------------------------------------------------------------------------------
# losses


def generalization_error(c, W, c_teacher, W_teacher):
    r"""Exact population loss of a network against a teacher, by expanding the square.

    .. math::

        E_x\,(f(x) - f_t(x))^2
          = \frac{c^\top K_{mm} c}{m^2} - \frac{2\, c^\top K_{mk} a}{m k}
            + \frac{a^\top K_{kk} a}{k^2},

    for :math:`f = \frac1m\sum_i c_i \mathrm{relu}(w_i \cdot x)` and
    :math:`f_t = \frac1k\sum_j a_j \mathrm{relu}(u_j \cdot x)` (eqs. 18-20 and 154-156). This is
    both the pretraining objective (against the source) and the generalization error (against
    the target); the teacher is noiseless, so it equals the error of eq. (8). Clipped at 0
    against rounding.

    Parameters
    ----------
    c : array-like, shape (..., m)
        Output weights of the network.
    W : array-like, shape (..., m, d)
        Its hidden weights (any norms).
    c_teacher : array-like, shape (..., k)
        Teacher output weights a.
    W_teacher : array-like, shape (..., k, d)
        Teacher hidden weights U.

    Returns
    -------
    ndarray or float, shape (...)
    """
    W, U = _weights("W", W), _weights("W_teacher", W_teacher)
    _same_dim("W", W, "W_teacher", U)
    c = _outputs("c", c, W, "W")
    a = _outputs("c_teacher", c_teacher, U, "W_teacher")
    m, k = W.shape[-2], U.shape[-2]
    fm = c / m
    ft = a / k
    model = np.einsum("...i,...ij,...j->...", fm, _kernel(W, W), fm)
    cross = np.einsum("...i,...ij,...j->...", fm, _kernel(W, U), ft)
    teacher = np.einsum("...i,...ij,...j->...", ft, _kernel(U, U), ft)
    return v.scalar_or_array(np.maximum(model - 2.0 * cross + teacher, 0.0))


def function_norm(c, W):
    r""":math:`|f|^2 = E_x f(x)^2 = c^\top K_{mm} c / m^2` for :math:`f = \frac1m \sum_i c_i \mathrm{relu}(w_i \cdot x)`.

    Parameters
    ----------
    c : array-like, shape (..., m)
    W : array-like, shape (..., m, d)

    Returns
    -------
    ndarray or float, shape (...)
    """
    W = _weights("W", W)
    c = _outputs("c", c, W, "W") / W.shape[-2]
    return v.scalar_or_array(np.einsum("...i,...ij,...j->...", c, _kernel(W, W), c))


# --------------------------------------------------------------------------------------------
# Mercer decomposition and projections (Appendix C)


class Mercer(NamedTuple):
    r"""The nonzero part of the Mercer decomposition of the model's kernel, eq. (157).

    Attributes
    ----------
    eigenvalues : ndarray, shape (..., m)
        Eigenvalues :math:`\lambda_a` of the integral operator of
        :math:`K(x, x') = \frac1m \sum_i \mathrm{relu}(w_i \cdot x)\mathrm{relu}(w_i \cdot x')`,
        i.e. of :math:`K_{mm}/m`, in decreasing order; those at or below the cutoff are set to 0.
    eigenvectors : ndarray, shape (..., m, m)
        Column ``a`` is :math:`u_a`; the eigenfunction is
        :math:`\psi_a(x) = \sum_i u_{ai} \mathrm{relu}(w_i \cdot x) / \sqrt{m \lambda_a}`,
        orthonormal in :math:`L^2(N(0, I_d))`.
    rank : ndarray of int, shape (...)
        Number of eigenvalues kept.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    rank: np.ndarray


def mercer_decomposition(W, *, rcond=None) -> Mercer:
    r"""Mercer eigenvalues and eigenfunctions of the model's kernel, eqs. (150), (157).

    The kernel :math:`K(x, x') = \frac1m \sum_i \phi_i(x)\phi_i(x')`,
    :math:`\phi_i = \mathrm{relu}(w_i \cdot x)`, has an m-dimensional feature space. If
    :math:`K_{mm} u_a = m\lambda_a u_a`, then
    :math:`\psi_a = \sum_i u_{ai}\phi_i / \sqrt{m\lambda_a}` satisfies
    :math:`E_{x'} K(x, x')\psi_a(x') = \lambda_a \psi_a(x)` and
    :math:`\langle \psi_a, \psi_b \rangle = \delta_{ab}`.

    Rank deficiency. Pretrained neurons crowd onto the teacher's directions, so :math:`K_{mm}`
    is often numerically singular. Eigenvalues at or below ``rcond`` times the largest are
    treated as zero: their eigenfunctions are dropped from the span. The default,
    ``m * eps`` (NumPy's ``matrix_rank`` rule), drops only what rounding cannot resolve; the
    functions it keeps have :math:`L^2` norm at least :math:`\sqrt{\mathrm{rcond}\,\lambda_{\max}}`
    relative to the features, and the neglected part of any projection is the teacher's
    component along the dropped functions.

    Parameters
    ----------
    W : array-like, shape (..., m, d)
        Model rows.
    rcond : float, optional
        Relative eigenvalue cutoff in [0, 1); default ``m * eps``.

    Returns
    -------
    Mercer
    """
    W = _weights("W", W)
    m = W.shape[-2]
    return _mercer(_kernel(W, W) / m, _rcond(rcond, m))


def _mercer(operator, rcond):
    eigenvalues, eigenvectors = np.linalg.eigh(operator)
    eigenvalues, eigenvectors = eigenvalues[..., ::-1], eigenvectors[..., ::-1]
    cutoff = rcond * np.maximum(eigenvalues[..., :1], 0.0)
    keep = eigenvalues > cutoff
    return Mercer(np.where(keep, eigenvalues, 0.0), eigenvectors, keep.sum(axis=-1))


class Projection(NamedTuple):
    r"""A teacher split by the model's feature space, eqs. (158)-(159).

    Attributes
    ----------
    in_span : ndarray, shape (...)
        :math:`|P f_t|^2`.
    orthogonal : ndarray, shape (...)
        :math:`|P_\perp f_t|^2 = |f_t|^2 - |P f_t|^2`, the irreducible error of linear
        transfer, eq. (21).
    """

    in_span: np.ndarray
    orthogonal: np.ndarray


def rkhs_projection(W_model, W_teacher, c_teacher, *, rcond=None) -> Projection:
    r"""Squared norms of the teacher's projections on the model's RKHS and its complement.

    With the Mercer eigenfunctions of :func:`mercer_decomposition`, eqs. (158)-(159),

    .. math::

        |P f_t|^2 = \sum_{a:\,\lambda_a > 0} \langle \psi_a, f_t \rangle^2
                  = \frac{a^\top K_{km} K_{mm}^+ K_{mk}\, a}{k^2}, \qquad
        |P_\perp f_t|^2 = \frac{a^\top (K_{kk} - K_{km} K_{mm}^+ K_{mk})\, a}{k^2},

    for :math:`f_t = \frac1k \sum_j a_j \mathrm{relu}(u_j \cdot x)`. This is the least-squares
    projection of :math:`f_t` on :math:`\mathrm{span}\{\mathrm{relu}(w_i \cdot x)\}` in
    :math:`L^2(N(0, I_d))`: the error of the best network with the frozen rows ``W_model``.
    The pseudo-inverse drops eigenvalues at or below ``rcond`` times the largest (see
    :func:`mercer_decomposition`); the orthogonal part is clipped at 0 against rounding.

    Parameters
    ----------
    W_model : array-like, shape (..., m, d)
    W_teacher : array-like, shape (..., k, d)
    c_teacher : array-like, shape (..., k)
        Teacher output weights; zeros for removed neurons.
    rcond : float, optional
        Relative eigenvalue cutoff; default ``m * eps``.

    Returns
    -------
    Projection
        ``(in_span, orthogonal)``.
    """
    W, U = _weights("W_model", W_model), _weights("W_teacher", W_teacher)
    _same_dim("W_model", W, "W_teacher", U)
    a = _outputs("c_teacher", c_teacher, U, "W_teacher")
    m, k = W.shape[-2], U.shape[-2]
    mercer = _mercer(_kernel(W, W) / m, _rcond(rcond, m))
    ft = a / k
    total = np.einsum("...i,...ij,...j->...", ft, _kernel(U, U), ft)
    # <phi_i, f_t>, then its coordinates on the eigenfunctions: <psi_a, f_t>^2
    overlap = np.einsum("...ij,...j->...i", _kernel(W, U), ft)
    coords = np.einsum("...ia,...i->...a", mercer.eigenvectors, overlap)
    lam = mercer.eigenvalues
    kept = lam > 0.0
    in_span = np.sum(np.where(kept, coords**2 / np.where(kept, m * lam, 1.0), 0.0), axis=-1)
    in_span = np.minimum(in_span, total)
    return Projection(
        v.scalar_or_array(in_span), v.scalar_or_array(np.maximum(total - in_span, 0.0))
    )


def kernel_alignment(W_a, W_b, *, weights_a=None, weights_b=None, centered=False):
    r"""Exact alignment of two ReLU feature kernels as operators on :math:`L^2(N(0, I_d))`.

    For :math:`K_a = \sum_i p_i \phi_i \otimes \phi_i` and :math:`K_b = \sum_j q_j \chi_j \otimes
    \chi_j` (rows :math:`w_i`, :math:`v_j`; mixing weights uniform by default), the
    Hilbert-Schmidt inner product is a sum of squared kernel values,
    :math:`\langle K_a, K_b \rangle = E_{x,x'} K_a(x,x') K_b(x,x') = \sum_{ij} p_i q_j K(w_i, v_j)^2`,
    so the similarity number

    .. math::

        A(K_a, K_b) = \frac{\langle K_a, K_b \rangle}{\|K_a\| \|K_b\|} \in [0, 1]

    is exact (no test points). It is 1 when the kernels are proportional, e.g. a model whose rows
    sit exactly on the source teacher's rows in equal proportions. With ``centered`` the features
    are centred first, :math:`\phi - E\phi` (the same as centring the kernel), which replaces
    :math:`K(w, v)` by :math:`K(w, v) - |w||v|/(2\pi)` and removes the large common constant
    mode that every pair of ReLU kernels shares.

    Parameters
    ----------
    W_a : array-like, shape (..., m, d)
    W_b : array-like, shape (..., k, d)
    weights_a, weights_b : array-like, shape (..., m) and (..., k), optional
        Nonnegative mixing weights (normalisation irrelevant); zero removes a row.
    centered : bool, default False

    Returns
    -------
    ndarray or float, shape (...)
    """
    A, B = _weights("W_a", W_a), _weights("W_b", W_b)
    _same_dim("W_a", A, "W_b", B)
    p, q = _mixing("weights_a", weights_a, A), _mixing("weights_b", weights_b, B)

    def gram(X, Y):
        K = _kernel(X, Y)
        if centered:
            norms = (
                np.linalg.norm(X, axis=-1)[..., :, None] * np.linalg.norm(Y, axis=-1)[..., None, :]
            )
            K = K - norms / _TWO_PI
        return K

    def inner(x, K, y):
        return np.einsum("...i,...ij,...j->...", x, K**2, y)

    cross = inner(p, gram(A, B), q)
    norm_a = np.sqrt(inner(p, gram(A, A), p))
    norm_b = np.sqrt(inner(q, gram(B, B), q))
    return v.scalar_or_array(cross / (norm_a * norm_b))


# --------------------------------------------------------------------------------------------
# the scratch learning curve and the phase boundary (Fig. 4c, 4e)


@dataclass(frozen=True)
class PowerLawFit:
    r"""A least-squares fit :math:`E(n) = A n^{-\nu}` in log-log coordinates.

    Attributes
    ----------
    amplitude : float
        A.
    exponent : float
        :math:`\nu`.
    amplitude_interval, exponent_interval : tuple of float
        Two-sided confidence intervals at level ``confidence`` (Student t with ``n_points - 2``
        degrees of freedom; A's interval is the exponential of that of :math:`\log A`).
    amplitude_stderr, exponent_stderr : float
        Standard errors of :math:`\log A` and of :math:`\nu`.
    n_points : int
    confidence : float
    residual_std : float
        Root-mean-square residual of :math:`\log E` (``n_points - 2`` degrees of freedom).
    """

    amplitude: float
    exponent: float
    amplitude_interval: tuple[float, float]
    exponent_interval: tuple[float, float]
    amplitude_stderr: float
    exponent_stderr: float
    n_points: int
    confidence: float
    residual_std: float

    def __call__(self, n):
        """The fitted curve :math:`A n^{-\\nu}` at ``n``."""
        return self.amplitude * np.asarray(n, dtype=np.float64) ** (-self.exponent)


def fit_power_law(n, error, *, confidence=0.95) -> PowerLawFit:
    r"""Fit :math:`E(n) = A n^{-\nu}` by ordinary least squares on :math:`\log E` against :math:`\log n`.

    .. math::

        \log E_i = \log A - \nu \log n_i + \epsilon_i ,

    the scratch learning curve of Fig. 4(c) (the paper reports :math:`\nu \approx 1.18`). The
    confidence intervals assume independent Gaussian residuals in log space; with repeated
    measurements per n (instances), pass them all, or their means for a fit of the mean curve.

    Parameters
    ----------
    n : array-like
        Sample sizes, > 0, at least two distinct values and three points in all.
    error : array-like
        Errors, > 0, broadcast against ``n``.
    confidence : float, default 0.95
        Level of the intervals, in (0, 1).

    Returns
    -------
    PowerLawFit
    """
    n = v.real_array("n", n, low=0.0, low_open=True)
    error = v.real_array("error", error, low=0.0, low_open=True)
    confidence = float(
        v.real_array("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    )
    n, error = (a.ravel() for a in np.broadcast_arrays(n, error))
    if n.size < 3 or np.unique(n).size < 2:
        raise ValueError(
            f"n must hold at least 3 points with 2 distinct values; got {n.size} points, "
            f"{np.unique(n).size} distinct"
        )
    x, y = np.log(n), np.log(error)
    x_mean = x.mean()
    sxx = np.sum((x - x_mean) ** 2)
    slope = np.sum((x - x_mean) * (y - y.mean())) / sxx
    intercept = y.mean() - slope * x_mean
    dof = n.size - 2
    residual_std = np.sqrt(np.sum((y - intercept - slope * x) ** 2) / dof) if dof > 0 else 0.0
    se_slope = residual_std / np.sqrt(sxx)
    se_intercept = residual_std * np.sqrt(1.0 / n.size + x_mean**2 / sxx)
    t = stats.t.ppf(0.5 + confidence / 2.0, dof) if dof > 0 else np.inf
    nu = -slope
    return PowerLawFit(
        amplitude=float(np.exp(intercept)),
        exponent=float(nu),
        amplitude_interval=(
            float(np.exp(intercept - t * se_intercept)),
            float(np.exp(intercept + t * se_intercept)),
        ),
        exponent_interval=(float(nu - t * se_slope), float(nu + t * se_slope)),
        amplitude_stderr=float(se_intercept),
        exponent_stderr=float(se_slope),
        n_points=int(n.size),
        confidence=confidence,
        residual_std=float(residual_std),
    )


def predicted_boundary(amplitude, exponent, residual):
    r"""Predicted phase boundary :math:`n^*` of linear transfer, Fig. 4(e).

    Scratch training's error :math:`A n^{-\nu}` falls below linear transfer's irreducible error
    :math:`|P_\perp f_t|^2` (eq. 21) beyond

    .. math::

        n^* = \Big(\frac{A}{|P_\perp f_t|^2}\Big)^{1/\nu},

    so transfer is predicted positive for :math:`n < n^*` and negative above. Infinite where the
    residual is 0 (transfer never loses).

    Parameters
    ----------
    amplitude : array-like
        A > 0.
    exponent : array-like
        :math:`\nu > 0`.
    residual : array-like
        :math:`|P_\perp f_t|^2 \ge 0`.

    Returns
    -------
    ndarray or float
        :math:`n^*`, broadcast over the inputs.
    """
    amplitude = v.real_array("amplitude", amplitude, low=0.0, low_open=True)
    exponent = v.real_array("exponent", exponent, low=0.0, low_open=True)
    residual = v.real_array("residual", residual, low=0.0)
    with np.errstate(divide="ignore", over="ignore"):
        ratio = amplitude / residual
        out = np.where(residual > 0.0, ratio ** (1.0 / exponent), np.inf)
    return v.scalar_or_array(out)
