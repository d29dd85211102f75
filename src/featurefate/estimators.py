r"""Ground-truth endpoints of gradient flow in the deep linear model, without training a network.

Each function returns the end-to-end vector :math:`w` that gradient flow from small
initialisation reaches (Theorems 3.4, 3.5, 3.9 and docs/theory.md, Fine-tuning), batched over leading axes.
They are the reference the closed forms of :mod:`featurefate.theory.linear` are checked against by
Monte Carlo, and the targets a network simulation must hit.
"""

from __future__ import annotations

import numpy as np

from featurefate import _validation as v
from featurefate.theory.linear import FINETUNE_VARIANTS, solve_finetune_scale


def thin_svd(X):
    """Thin SVD ``(U, s, Vt)`` of each data matrix, shape (..., n, D), by LAPACK.

    :func:`featurefate.training.empirical_statistics` and :func:`exact_endpoints` accept it, or
    the faster :func:`gram_svd`.
    """
    return np.linalg.svd(np.asarray(X, dtype=np.float64), full_matrices=False)


def gram_svd(X, *, left=True):
    r"""Thin SVD ``(U, s, Vt)`` of each data matrix from the eigendecomposition of its Gram matrix.

    With :math:`m = \min(n, D)`, the symmetric eigenproblem of the :math:`m \times m` Gram
    matrix (:math:`X X^\top` or :math:`X^\top X`) gives :math:`\sigma^2` and one set of
    singular vectors; the other is :math:`X^\top u / \sigma` (or :math:`X v / \sigma`).
    On this project's machines it is 5-8x faster than LAPACK's SVD of a wide (K, n, D) batch.

    With ``left=False`` the left singular vectors of a tall X (n > D), the one product this
    would form only for them (:math:`X V` costs as much as the Gram matrix), are not formed:
    U is returned as None. Every consumer here needs only s and V of it
    (:func:`featurefate.training.empirical_statistics`), or applies
    :math:`X^+ = V \mathrm{diag}(\sigma^{-2}) V^\top X^\top` instead of
    :math:`V \mathrm{diag}(\sigma^{-1}) U^\top` (:func:`min_norm_fit`, :func:`exact_endpoints`),
    which is the same product regrouped, since :math:`U^\top = \mathrm{diag}(\sigma^{-1})
    V^\top X^\top` on the resolvable directions. For a wide X the left vectors come free and
    are always returned.

    Accuracy: singular values carry an absolute error of order
    :math:`\epsilon\, \sigma_{\max}^2 / \sigma` instead of :math:`\epsilon\, \sigma_{\max}`,
    so directions with :math:`\sigma^2 \le \max(n, D)\, \epsilon\, \sigma_{\max}^2` are
    returned as exactly 0, with zero singular vectors: the data has no resolvable variance along
    them, and every consumer treats them as the null space. For Gaussian data the smallest
    singular value stays far above that cutoff even at n = D (:math:`\sigma_{\min} /
    \sigma_{\max} \sim 10^{-3}` at D = 500), where the relative error of the smallest one is
    about 1e-10.
    """
    X = np.asarray(X, dtype=np.float64)
    n, dim = X.shape[-2:]
    Xt = np.swapaxes(X, -1, -2)
    wide = n <= dim
    eigval, eigvec = np.linalg.eigh(X @ Xt if wide else Xt @ X)
    eigval, eigvec = eigval[..., ::-1], eigvec[..., ::-1]  # largest first
    keep = eigval > max(n, dim) * np.finfo(np.float64).eps * eigval[..., :1]
    s = np.sqrt(np.where(keep, eigval, 0.0))
    inv = np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0)[..., None, :]
    eigvec = np.where(keep[..., None, :], eigvec, 0.0)
    if wide:
        return eigvec, s, np.swapaxes((Xt @ eigvec) * inv, -1, -2)
    U = (X @ eigvec) * inv if left else None
    return U, s, np.swapaxes(eigvec, -1, -2)


def resolvable(s, shape):
    """The singular values ``s`` (largest first) of matrices of ``shape`` (..., n, D) above
    NumPy's pseudo-inverse cutoff ``max(n, D) * eps * s_max``: a boolean mask."""
    return s > max(shape[-2:]) * np.finfo(np.float64).eps * s[..., :1]


def _pinv_solve(X, Y, svd=None):
    r"""Apply :math:`X^+` to the columns of Y, shape (..., n, m), from one thin SVD of X.

    ``svd``: :func:`thin_svd` or :func:`gram_svd` of X, if already computed; without U
    (``gram_svd(X, left=False)``), :math:`U^\top Y = \mathrm{diag}(\sigma^{-1}) V^\top X^\top Y`.
    """
    U, s, Vt = thin_svd(X) if svd is None else svd
    keep = resolvable(s, X.shape)
    inv = np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0)
    if U is None:
        coef = (inv**2)[..., None] * (Vt @ (np.swapaxes(X, -1, -2) @ Y))
    else:
        coef = inv[..., None] * (np.swapaxes(U, -1, -2) @ Y)
    return np.swapaxes(Vt, -1, -2) @ coef


def min_norm_fit(X, y, *, svd=None):
    r"""The minimum-norm least-squares fit :math:`X^+ y` (scratch training, Theorem 3.5).

    Computed from the thin SVD with NumPy's pseudo-inverse cutoff (singular values below
    ``max(n, D) * eps * s_max`` are dropped), batched over leading axes.

    Parameters
    ----------
    X : array-like, shape (..., n, D)
    y : array-like, shape (..., n)
    svd : tuple of arrays, optional
        X's :func:`thin_svd` or :func:`gram_svd`, if already computed.

    Returns
    -------
    w : ndarray, shape (..., D)
    """
    X, y = v.data(X, y)
    return _pinv_solve(X, y[..., None], svd)[..., 0]


def pretrained_features(beta_s, *, depth=2):
    r"""Hidden features of a network pretrained on :math:`\beta_s`, as ``init_scale -> 0``.

    By Theorem 3.4 the first ``depth - 1`` layers collapse to rank one along
    :math:`\hat\beta_s`; balanced layers share the norm, so the feature map is
    :math:`h = |\beta_s|^{(L-1)/L}\, \hat\beta_s \cdot x` (one feature; the hidden direction it
    points along is irrelevant to what the last layer can express).

    Parameters
    ----------
    beta_s : array-like, shape (..., D)
    depth : int, default 2

    Returns
    -------
    features : ndarray, shape (..., 1, D)
        Rows are feature directions: hidden features are ``features @ x``.
    """
    beta_s = np.asarray(beta_s, dtype=np.float64)
    depth = v.integer("depth", depth, low=2)
    norm = np.linalg.norm(beta_s, axis=-1, keepdims=True)
    if np.any(norm == 0.0):
        raise ValueError("beta_s must be non-zero; got a zero vector")
    return (norm ** ((depth - 1) / depth) * beta_s / norm)[..., None, :]


def frozen_feature_fit(X, y, features, *, lam=0.0):
    r"""Linear transfer on frozen features, eqs. (11) and (14): the last layer alone is fitted.

    With hidden features :math:`h = F x` (rows of F are feature directions) the last layer
    ``a`` minimises :math:`\frac1n |y - X F^\top a|^2 + \lambda |a|^2` (the minimum-norm solution
    when :math:`\lambda = 0`), and the end-to-end vector is :math:`w = F^\top a`.

    Parameters
    ----------
    X : array-like, shape (..., n, D)
    y : array-like, shape (..., n)
    features : array-like, shape (..., k, D)
    lam : float or sequence of float, default 0.0
        Ridge penalties, >= 0. With a sequence, ``w`` gains a leading ``lam`` axis; the
        projection :math:`Z = X F^\top` and its Gram matrix are then formed once for all.

    Returns
    -------
    w : ndarray, shape (..., D), or (n_lam, ..., D) for a sequence ``lam``
    """
    X, y = v.data(X, y)
    features = np.asarray(features, dtype=np.float64)
    if not np.all(np.isfinite(features)):
        raise ValueError("features must be finite; got NaN or inf")
    lams = v.real_array("lam", lam, low=0.0)
    if lams.ndim > 1:
        raise ValueError(f"lam must be a number or a 1-D sequence; got shape {lams.shape}")
    Z = np.einsum("...nd,...kd->...nk", X, features)
    n, k = Z.shape[-2:]
    gram = rhs = None
    fits = []
    for value in np.atleast_1d(lams):
        if value == 0.0:
            a = _pinv_solve(Z, y[..., None])[..., 0]
        else:
            if gram is None:
                gram = np.einsum("...nk,...nl->...kl", Z, Z)
                rhs = np.einsum("...nk,...n->...k", Z, y)[..., None]
            a = np.linalg.solve(gram + n * float(value) * np.eye(k), rhs)[..., 0]
        fits.append(np.einsum("...kd,...k->...d", features, a))
    return fits[0] if lams.ndim == 0 else np.stack(fits)


def linear_transfer_fit(X, y, beta_s, *, lam=0.0, depth=2):
    r"""Linear (or ridge, ``lam > 0``) transfer from a network pretrained on :math:`\beta_s`.

    :func:`frozen_feature_fit` on :func:`pretrained_features`: the endpoint whose expected error
    is eq. (12) (``lam = 0``) or eq. (15).
    """
    return frozen_feature_fit(X, y, pretrained_features(beta_s, depth=depth), lam=lam)


def finetune_components(X, y, beta_s, *, depth=2, svd=None):
    r"""The pieces of the fine-tuning endpoints, from one SVD of X.

    Returns the interpolant :math:`X^+ y` (the scratch endpoint), the residual
    :math:`(I - X^+ X)\beta_s` and the exact variant's factor c
    (:func:`featurefate.theory.linear.solve_finetune_scale` with
    :math:`a = |(I - P)\beta_s|^2`, :math:`b = |X^+ y|^2`), so that the endpoints are
    ``interpolant + residual`` (paper) and ``interpolant + c[..., None] * residual`` (exact).

    ``svd`` is X's thin SVD (:func:`thin_svd` or :func:`gram_svd`), if already computed (it is
    then not recomputed).

    Returns
    -------
    interpolant, residual : ndarray, shape (..., D)
    c : ndarray, shape (...)
    """
    X, y = v.data(X, y)
    beta_s = np.broadcast_to(np.asarray(beta_s, dtype=np.float64), X.shape[:-2] + X.shape[-1:])
    rhs = np.stack([y, np.einsum("...nd,...d->...n", X, beta_s)], axis=-1)
    interpolant, projected = np.moveaxis(_pinv_solve(X, rhs, svd), -1, 0)
    residual = beta_s - projected
    c = solve_finetune_scale(
        np.sum(residual**2, axis=-1),
        np.sum(interpolant**2, axis=-1),
        source_norm=np.linalg.norm(beta_s, axis=-1),
        depth=depth,
    )
    return interpolant, residual, np.asarray(c)


def finetune_fit(X, y, beta_s, *, variant="paper", depth=2):
    r"""Endpoint of fine-tuning all layers from the pretrained network, Theorem 3.9.

    .. math::

        w_{\rm ft} = X^+ y + c\, (I - X^+ X)\, \beta_s,

    with ``c = 1`` for ``variant="paper"`` (eq. 16) and, for ``variant="exact"``, c from
    :func:`featurefate.theory.linear.solve_finetune_scale` with this instance's
    :math:`a = |(I - P)\beta_s|^2` and :math:`b = |X^+ y|^2` (docs/theory.md, Fine-tuning). When ``n >= D``
    the projector is the identity and both reduce to the least-squares fit.

    Parameters
    ----------
    X : array-like, shape (..., n, D)
    y : array-like, shape (..., n)
    beta_s : array-like, shape (..., D)
    variant : {"paper", "exact"}
    depth : int, default 2

    Returns
    -------
    w : ndarray, shape (..., D)
    """
    variant = v.choice("variant", variant, FINETUNE_VARIANTS)
    interpolant, residual, c = finetune_components(X, y, beta_s, depth=depth)
    return interpolant + (1.0 if variant == "paper" else c[..., None]) * residual


def exact_endpoints(X, y, beta_s, *, depth=2, svd=None) -> dict[str, np.ndarray]:
    r"""Every method's gradient-flow endpoint (``init_scale -> 0``) for the same instances.

    ``svd``: :func:`thin_svd` or :func:`gram_svd` of X, if already computed.

    Returns
    -------
    dict of str to ndarray, shape (..., D)
        ``scratch`` (:math:`X^+ y`, Theorem 3.5), ``linear`` (eq. 11), ``finetune_paper``
        (:math:`X^+ y + (I - P)\beta_s`, eq. 16) and ``finetune_exact``
        (:math:`X^+ y + c\,(I - P)\beta_s`, docs/theory.md, Fine-tuning).
    """
    interpolant, residual, c = finetune_components(X, y, beta_s, depth=depth, svd=svd)
    return {
        "scratch": interpolant,
        "linear": linear_transfer_fit(X, y, beta_s, depth=depth),
        "finetune_paper": interpolant + residual,
        "finetune_exact": interpolant + c[..., None] * residual,
    }


def generalization_error(w, beta_t):
    r"""Generalization error (8) of a linear predictor, label noise excluded: :math:`|w - \beta_t|^2`."""
    diff = np.asarray(w, dtype=np.float64) - np.asarray(beta_t, dtype=np.float64)
    return np.sum(diff**2, axis=-1)


def _bartlett3(rng, dof, size):
    """Lower Cholesky factors of ``size`` draws of the 3 x 3 Wishart W_3(dof, I) (Bartlett)."""
    L = np.zeros((size, 3, 3))
    for i in range(3):
        L[:, i, i] = np.sqrt(rng.chisquare(dof - i, size))
        L[:, i, :i] = rng.standard_normal((size, i))
    return L


def finetune_error_draws(
    dim, n, theta, sigma, size, *, source_norm=1.0, target_norm=1.0, depth=2, seed=None
):
    r"""Independent draws of the corrected fine-tuning endpoint's error, O(1) work per draw.

    The error :math:`|w - \beta_t|^2` of :math:`w = X^+ y + c (I - P)\beta_s` (Theorem 3.9 as
    corrected in docs/theory.md, Fine-tuning) depends on the data only through the 3 x 3 matrix
    :math:`K = Z^\top (X X^\top)^{-1} Z`, :math:`Z = [X\hat\beta_s, X\nu, \epsilon/\sigma]`
    (the entries of P in the teachers' plane, :math:`|X^+\epsilon|^2` and :math:`|X^+ y|^2`).
    Writing :math:`X X^\top = Z_{12} Z_{12}^\top + W` with :math:`W \sim W_n(D - 2, I)`
    independent of Z, Woodbury gives :math:`K = A - A_{:,12}(I + A_{12,12})^{-1}A_{12,:}` with
    :math:`A = Z^\top W^{-1} Z`, and :math:`A \overset{d}{=} L\,\Omega^{-1} L^\top`, where
    :math:`L L^\top \sim W_3(n, I)` and :math:`\Omega \sim W_3(D - n + 1, I)` (the Schur
    complement of a Wishart matrix) are drawn by Bartlett's decomposition. The draws have exactly
    the law of :func:`finetune_fit`'s errors on Gaussian data (checked against it in the tests),
    at any D, for the Monte-Carlo checks of the finite-size closed form.

    Parameters
    ----------
    dim, n : int
        D and the sample count, ``3 <= n <= D - 2``.
    theta, sigma : float
        Angle (radians) and label-noise standard deviation.
    size : int
        Number of draws.
    source_norm, target_norm : float, default 1.0
    depth : int, default 2
    seed : int or Generator, optional

    Returns
    -------
    error : ndarray, shape (size,)
        :math:`|w - \beta_t|^2`.
    coupled : ndarray, shape (size,)
        :math:`c^2 a - 2 c\,\beta_s^\top (I - P)\beta_t`, the part of the error that c couples.
    """
    dim = v.integer("dim", dim, low=5)
    n = v.integer("n", n, low=3)
    if n > dim - 2:
        raise ValueError(f"n must be an integer in [3, dim - 2] = [3, {dim - 2}]; got {n}")
    size = v.integer("size", size, low=1)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    L = _bartlett3(rng, n, size)
    omega = _bartlett3(rng, dim - n + 1, size)
    omega = omega @ np.swapaxes(omega, 1, 2)
    A = L @ np.linalg.solve(omega, np.swapaxes(L, 1, 2))
    K = A - A[:, :, :2] @ np.linalg.solve(np.eye(2) + A[:, :2, :2], A[:, :2, :])
    null = np.eye(2) - K[:, :2, :2]  # (I - P) in the orthonormal pair (beta_s_hat, nu)
    cos, sin = np.cos(theta), np.sin(theta)
    a = source_norm**2 * null[:, 0, 0]
    g = source_norm * target_norm * (cos * null[:, 0, 0] + sin * null[:, 0, 1])
    miss = target_norm**2 * (cos**2 * null[:, 0, 0] + 2 * cos * sin * null[:, 0, 1])
    miss += target_norm**2 * sin**2 * null[:, 1, 1]
    label = np.array([target_norm * cos, target_norm * sin, sigma])  # y = Z label
    b = np.maximum(np.einsum("i,kij,j->k", label, K, label), 0.0)
    c = np.asarray(
        solve_finetune_scale(np.maximum(a, 0.0), b, source_norm=source_norm, depth=depth)
    )
    coupled = c**2 * a - 2.0 * c * g
    return sigma**2 * K[:, 2, 2] + miss + coupled, coupled
