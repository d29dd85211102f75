r"""Closed-form discrepancies between the source and target data distributions (Section 2.1).

Both tasks draw :math:`x \sim N(0, I_D)` and label it with a linear teacher,
:math:`y = \beta \cdot x + \sigma \epsilon`, so each joint :math:`p(x, y)` is a centred Gaussian
on :math:`\mathbb{R}^{D+1}` with covariance

.. math::

    \Sigma = \begin{pmatrix} I_D & \beta \\ \beta^\top & |\beta|^2 + \sigma^2 \end{pmatrix}.

The source teacher has norm ``source_norm`` and the target teacher norm ``target_norm`` at angle
:math:`\theta` from it (docs/theory.md, Conventions and Dataset discrepancies). This module gives the Kullback-Leibler divergence
and the 2-Wasserstein distance between the two joints in closed form, and the family of targets
behind Theorem 2.2: arbitrarily far from the source in these distances, yet transferring
positively by linear transfer (Section 3). Everything broadcasts over array arguments and returns
a NumPy scalar for scalar input; angles are in radians.

Why both distances are independent of D: write :math:`e = \hat\beta_s` and :math:`\nu` the unit
vector of the part of :math:`\beta_t` orthogonal to :math:`e`. In the orthonormal coordinates
:math:`(e \cdot x, \nu \cdot x, y, \text{the other } D - 2 \text{ directions of } x)` both joints are
a product of a 3-dimensional Gaussian and the *same* standard Gaussian on the remaining
:math:`D - 2` directions. KL divergences add over independent factors and the identical factor
contributes 0; for W2 the 3-dimensional block of the Bures formula decouples from an identity
block, which contributes :math:`\operatorname{tr} I + \operatorname{tr} I - 2 \operatorname{tr} I = 0`.
The same holds for every integral probability metric over 1-Lipschitz test functions (W1,
Dudley), since projecting on the block is 1-Lipschitz and the shared factor can be coupled to
itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurefate import _validation as v
from featurefate.theory.linear import FINETUNE_VARIANTS, transferability

__all__ = [
    "Theorem22Family",
    "bures_wasserstein2",
    "joint_covariance",
    "kl_divergence",
    "theorem22_family",
    "wasserstein2",
]


def _theta(theta):
    return v.real_array("theta", theta, low=0.0, high=np.pi)


def _positive(name, value):
    return v.real_array(name, value, low=0.0, low_open=True)


def _noise(sigma, target_sigma):
    sigma = v.real_array("sigma", sigma, low=0.0)
    if target_sigma is None:
        return sigma, sigma
    return sigma, v.real_array("target_sigma", target_sigma, low=0.0)


def _squared_teacher_gap(theta, source_norm, target_norm):
    r""":math:`|\beta_s - \beta_t|^2 = (a - b)^2 + 4ab\sin^2(\theta/2)`, free of cancellation at small angles."""
    return (source_norm - target_norm) ** 2 + 4.0 * source_norm * target_norm * np.sin(
        theta / 2.0
    ) ** 2


def joint_covariance(beta, sigma):
    r"""Covariance of the joint :math:`(x, y)`, :math:`x \sim N(0, I_D)`, :math:`y = \beta\cdot x + \sigma\epsilon`.

    .. math::

        \Sigma = \begin{pmatrix} I_D & \beta \\ \beta^\top & |\beta|^2 + \sigma^2 \end{pmatrix}.

    Parameters
    ----------
    beta : array-like, shape (..., D)
        Teachers, batched over leading axes.
    sigma : array-like, broadcastable to beta's leading shape
        Label-noise standard deviation, >= 0.

    Returns
    -------
    ndarray, shape (..., D + 1, D + 1)
        The last row and column belong to y.
    """
    beta = v.real_array("beta", beta)
    if beta.ndim < 1 or beta.shape[-1] < 1:
        raise ValueError(f"beta must have shape (..., D) with D >= 1; got shape {beta.shape}")
    sigma = v.real_array("sigma", sigma, low=0.0)
    lead = np.broadcast_shapes(beta.shape[:-1], sigma.shape)
    beta = np.broadcast_to(beta, (*lead, beta.shape[-1]))
    dim = beta.shape[-1]
    cov = np.zeros((*lead, dim + 1, dim + 1))
    cov[..., :dim, :dim] = np.eye(dim)
    cov[..., :dim, dim] = beta
    cov[..., dim, :dim] = beta
    cov[..., dim, dim] = np.sum(beta**2, axis=-1) + np.broadcast_to(sigma, lead) ** 2
    return cov


def kl_divergence(theta, sigma, *, source_norm=1.0, target_norm=1.0, target_sigma=None):
    r"""Kullback-Leibler divergence :math:`KL(p_s \| p_t)` from the source joint to the target joint.

    The x-marginals are equal, so only the conditional laws of y given x contribute:

    .. math::

        KL(p_s \| p_t) = E_x\, KL\big(N(\beta_s\cdot x, \sigma_s^2) \,\|\, N(\beta_t\cdot x, \sigma_t^2)\big)
        = \frac{|\beta_s - \beta_t|^2 + \sigma_s^2}{2\sigma_t^2} - \frac12
          + \ln\frac{\sigma_t}{\sigma_s},

    with :math:`|\beta_s - \beta_t|^2 = |\beta_s|^2 + |\beta_t|^2 - 2|\beta_s||\beta_t|\cos\theta`.
    For equal noise (the default) this is :math:`|\beta_s - \beta_t|^2 / (2\sigma^2)`, and
    :math:`(1 - \cos\theta)/\sigma^2` for unit norms (docs/theory.md, Dataset discrepancies; the computation in the
    proof of Theorem 2.2, Appendix B.1).
    It is independent of D.

    Noiseless joints are degenerate (supported on the hyperplane :math:`y = \beta\cdot x`): when
    a noise level is 0 the divergence is ``inf``, except 0 when the two joints coincide
    (both noiseless, :math:`\theta = 0` and equal norms). No error is raised.

    Parameters
    ----------
    theta : array-like
        Angle between the teachers, radians in [0, pi].
    sigma : array-like
        Label-noise standard deviation :math:`\sigma_s` of the source, >= 0; also the target's
        unless ``target_sigma`` is given.
    source_norm, target_norm : array-like, default 1.0
        :math:`|\beta_s|`, :math:`|\beta_t|`, > 0.
    target_sigma : array-like, optional
        :math:`\sigma_t`, >= 0, when it differs from the source's.

    Returns
    -------
    ndarray or float
        In nats, broadcast over the inputs.
    """
    theta = _theta(theta)
    sigma_s, sigma_t = _noise(sigma, target_sigma)
    source_norm = _positive("source_norm", source_norm)
    target_norm = _positive("target_norm", target_norm)
    gap2 = _squared_teacher_gap(theta, source_norm, target_norm)
    both = (sigma_s > 0.0) & (sigma_t > 0.0)
    s_safe, t_safe = np.where(both, sigma_s, 1.0), np.where(both, sigma_t, 1.0)
    # (r - 1 - ln r) / 2 with r = sigma_s^2 / sigma_t^2, as expm1(u) - u (u = ln r): accurate
    # when the noise levels are close, and exactly 0 when they are equal.
    log_ratio2 = 2.0 * (np.log(s_safe) - np.log(t_safe))
    noise_term = 0.5 * (np.expm1(log_ratio2) - log_ratio2)
    finite = gap2 / (2.0 * t_safe**2) + noise_term
    identical = (gap2 == 0.0) & (sigma_s == sigma_t)
    out = np.where(both, finite, np.where(identical, 0.0, np.inf))
    return v.scalar_or_array(np.asarray(out, dtype=np.float64))


def _block_covariances(theta, sigma_s, sigma_t, source_norm, target_norm):
    r"""The 3x3 blocks of both joint covariances in the coordinates :math:`(e\cdot x, \nu\cdot x, y)`."""
    shape = np.broadcast_shapes(
        theta.shape, sigma_s.shape, sigma_t.shape, source_norm.shape, target_norm.shape
    )
    a = np.broadcast_to(source_norm, shape)
    b_par = np.broadcast_to(target_norm * np.cos(theta), shape)
    b_perp = np.broadcast_to(target_norm * np.sin(theta), shape)
    cov_s = np.zeros((*shape, 3, 3))
    cov_t = np.zeros((*shape, 3, 3))
    for cov in (cov_s, cov_t):
        cov[..., 0, 0] = cov[..., 1, 1] = 1.0
    cov_s[..., 0, 2] = cov_s[..., 2, 0] = a
    cov_s[..., 2, 2] = a**2 + np.broadcast_to(sigma_s, shape) ** 2
    cov_t[..., 0, 2] = cov_t[..., 2, 0] = b_par
    cov_t[..., 1, 2] = cov_t[..., 2, 1] = b_perp
    cov_t[..., 2, 2] = np.broadcast_to(target_norm, shape) ** 2 + (
        np.broadcast_to(sigma_t, shape) ** 2
    )
    return cov_s, cov_t


def _psd_sqrt(cov):
    """Symmetric square root of a batch of positive semi-definite matrices, by eigh."""
    w, q = np.linalg.eigh(cov)
    return (q * np.sqrt(np.clip(w, 0.0, None))[..., None, :]) @ np.swapaxes(q, -1, -2)


def bures_wasserstein2(cov_a, cov_b):
    r"""W2 distance between centred Gaussians :math:`N(0, A)` and :math:`N(0, B)`, batched.

    .. math::

        W_2^2 = \operatorname{tr} A + \operatorname{tr} B
                - 2 \operatorname{tr}\big(A^{1/2} B A^{1/2}\big)^{1/2}
              = \min_{U^\top U = I} \big\| A^{1/2} - B^{1/2} U \big\|_F^2 .

    The second form is evaluated, with U the orthogonal polar factor from the SVD
    :math:`A^{1/2} B^{1/2} = P S Q^\top`, :math:`U = Q P^\top` (then
    :math:`\operatorname{tr}(A^{1/2} B^{1/2} U) = \operatorname{tr} S`, the nuclear norm, which is
    the Bures fidelity term). It is a norm of a difference, so nearly equal covariances give a
    small distance to full relative precision instead of a difference of traces near 0.

    Parameters
    ----------
    cov_a, cov_b : array-like, shape (..., d, d)
        Symmetric positive semi-definite.

    Returns
    -------
    ndarray, shape (...)
    """
    cov_a = v.real_array("cov_a", cov_a)
    cov_b = v.real_array("cov_b", cov_b)
    for name, cov in (("cov_a", cov_a), ("cov_b", cov_b)):
        if cov.ndim < 2 or cov.shape[-1] != cov.shape[-2] or cov.shape[-1] != cov_a.shape[-1]:
            raise ValueError(
                f"{name} must have shape (..., d, d), both with the same d; got {cov.shape}"
            )
    root_a, root_b = _psd_sqrt(cov_a), _psd_sqrt(cov_b)
    p, _, qt = np.linalg.svd(root_a @ root_b)
    rotation = np.swapaxes(qt, -1, -2) @ np.swapaxes(p, -1, -2)
    diff = root_a - root_b @ rotation
    return np.sqrt(np.sum(diff**2, axis=(-2, -1)))


def wasserstein2(theta, sigma, *, source_norm=1.0, target_norm=1.0, target_sigma=None):
    r"""2-Wasserstein distance between the source and target joints :math:`p(x, y)`.

    Both joints are centred Gaussians, so the Bures formula applies,

    .. math::

        W_2^2(p_s, p_t) = \operatorname{tr}\Sigma_s + \operatorname{tr}\Sigma_t
            - 2 \operatorname{tr}\big(\Sigma_s^{1/2} \Sigma_t \Sigma_s^{1/2}\big)^{1/2},

    and it reduces exactly to the 3x3 blocks in the coordinates
    :math:`(e \cdot x, \nu \cdot x, y)` (module docstring):

    .. math::

        \Sigma_s \to \begin{pmatrix} 1 & 0 & a \\ 0 & 1 & 0 \\ a & 0 & a^2 + \sigma_s^2 \end{pmatrix},
        \qquad
        \Sigma_t \to \begin{pmatrix} 1 & 0 & b\cos\theta \\ 0 & 1 & b\sin\theta \\
                     b\cos\theta & b\sin\theta & b^2 + \sigma_t^2 \end{pmatrix},

    with :math:`a = |\beta_s|`, :math:`b = |\beta_t|`. The remaining :math:`D - 2` directions
    contribute nothing, so the distance is independent of D (and the formula holds for D = 1 at
    :math:`\theta \in \{0, \pi\}`). It is evaluated by :func:`bures_wasserstein2`, accurate to
    about 1e-15 absolute; 0 exactly only up to rounding when the joints coincide.

    Unlike KL, W2 is finite for noiseless teachers (``sigma = 0``), where the joints are
    degenerate Gaussians: the Bures formula holds for positive semi-definite covariances. Since
    :math:`W_1 \le W_2`, this is also an upper bound on the W1 and Dudley distances.

    Parameters
    ----------
    theta : array-like
        Radians in [0, pi].
    sigma : array-like
        Source label noise :math:`\sigma_s`, >= 0 (the target's too unless ``target_sigma``).
    source_norm, target_norm : array-like, default 1.0
        :math:`|\beta_s|`, :math:`|\beta_t|`, > 0.
    target_sigma : array-like, optional
        :math:`\sigma_t`, >= 0.

    Returns
    -------
    ndarray or float
        :math:`W_2`, broadcast over the inputs.
    """
    theta = _theta(theta)
    sigma_s, sigma_t = _noise(sigma, target_sigma)
    source_norm = _positive("source_norm", source_norm)
    target_norm = _positive("target_norm", target_norm)
    cov_s, cov_t = _block_covariances(theta, sigma_s, sigma_t, source_norm, target_norm)
    return v.scalar_or_array(bures_wasserstein2(cov_s, cov_t))


@dataclass(frozen=True)
class Theorem22Family:
    r"""Targets :math:`\beta_t = -k\,\beta_s` in the source's feature span (Theorem 2.2).

    Attributes
    ----------
    k : ndarray
        Scale of the target, > 0.
    target_norm : ndarray
        :math:`|\beta_t| = k |\beta_s|`; the angle to the source is :math:`\theta = \pi`.
    kl, w2 : ndarray
        :math:`KL(p_s\|p_t) = (1 + k)^2 |\beta_s|^2 / (2\sigma^2)` and the Bures W2 distance;
        both grow without bound in k (W2 at least like :math:`|k - 1||\beta_s|`, the gap between
        the standard deviations of y).
    transferability_linear : ndarray
        Linear transfer, :math:`T = E R_{\rm sc} - E R_{\rm lt}`: the target has no component
        outside the source feature, :math:`\beta_\perp = 0`, so :math:`R_{\rm lt}` is only the
        fluctuation :math:`\sigma^2/(n - 2)` (0 as D grows) while scratch training pays
        :math:`(1 - \alpha) k^2 |\beta_s|^2` below :math:`\alpha = 1`. Positive for every k when
        :math:`\sigma > 0` (and growing with k below :math:`\alpha = 1`).
    transferability_finetune : ndarray
        Fine-tuning for contrast, eq. (17): it starts from :math:`\beta_s` on the wrong side, so
        :math:`T_{\rm ft} = -(1 - \alpha)(2ck + c^2)|\beta_s|^2 < 0` below :math:`\alpha = 1`.
        The features, not the distance, decide, and so does how they are used.
    alpha, sigma : ndarray
        The target sample ratio and noise where T is evaluated.
    """

    k: np.ndarray
    target_norm: np.ndarray
    kl: np.ndarray
    w2: np.ndarray
    transferability_linear: np.ndarray
    transferability_finetune: np.ndarray
    alpha: np.ndarray
    sigma: np.ndarray


def theorem22_family(
    k, alpha, sigma, *, source_norm=1.0, variant="paper", depth=2, dim=None
) -> Theorem22Family:
    r"""Targets far from the source in KL and W2 that still transfer positively (Theorem 2.2).

    The source's pretrained feature is the line of :math:`\beta_s` (Theorem 3.4), so a target in
    its span is :math:`\beta_t = c\,\beta_s`. Taking :math:`c = -k` (:math:`\theta = \pi`,
    :math:`|\beta_t| = k|\beta_s|`):

    .. math::

        KL(p_s \| p_t) = \frac{(1 + k)^2 |\beta_s|^2}{2\sigma^2} \xrightarrow{k\to\infty} \infty,
        \qquad W_2(p_s, p_t) \ge \Big|\sqrt{k^2|\beta_s|^2 + \sigma^2} - \sqrt{|\beta_s|^2 +
        \sigma^2}\Big| \to \infty,

    while linear transfer recovers the target up to one fitted coefficient, so
    :math:`T_{\rm lt} = R_{\rm sc} - \sigma^2/(n - 2) > 0` (exactly, at ``dim``) and
    :math:`T_{\rm lt} = R_{\rm sc} > 0` in the limit, for every k, whenever :math:`\sigma > 0`.
    (:math:`\beta_t = +k\beta_s` with :math:`k \to \infty` works as well.)

    The Dudley half of Theorem 2.2 needs care: the Dudley (bounded-Lipschitz) metric is at most 2
    (:math:`|h| \le 1`), so "arbitrarily far" can only mean any distance below 2. Along this
    family the Dudley distance tends to 2 from below as k grows (the target's mass moves away
    from the source's except within :math:`O(1/k)` of :math:`e\cdot x = 0`) and never exceeds it.
    KL and W2 (and W1, which lies between Dudley and W2) have no such bound.

    Parameters
    ----------
    k : array-like
        Target scale, > 0.
    alpha : array-like
        Target samples per dimension, > 0.
    sigma : array-like
        Label noise of both tasks, > 0 (KL is infinite at 0).
    source_norm : array-like, default 1.0
    variant : {"paper", "exact"}
        Fine-tuning endpoint used for ``transferability_finetune``.
    depth : int, default 2
    dim : int, optional
        D, for the exact finite-size transferabilities.

    Returns
    -------
    Theorem22Family
        Arrays broadcast over ``k``, ``alpha``, ``sigma`` and ``source_norm``.
    """
    k = _positive("k", k)
    alpha = _positive("alpha", alpha)
    sigma = _positive("sigma", sigma)
    source_norm = _positive("source_norm", source_norm)
    variant = v.choice("variant", variant, FINETUNE_VARIANTS)
    shape = np.broadcast_shapes(k.shape, alpha.shape, sigma.shape, source_norm.shape)
    k, alpha, sigma, source_norm = (
        np.broadcast_to(x, shape) for x in (k, alpha, sigma, source_norm)
    )
    target_norm = k * source_norm
    norms = {"source_norm": source_norm, "target_norm": target_norm}
    common = {**norms, "dim": dim}
    return Theorem22Family(
        k=k,
        target_norm=target_norm,
        kl=np.asarray(kl_divergence(np.pi, sigma, **norms)),
        w2=np.asarray(wasserstein2(np.pi, sigma, **norms)),
        transferability_linear=np.asarray(
            transferability("linear", alpha, np.pi, sigma, depth=depth, **common)
        ),
        transferability_finetune=np.asarray(
            transferability("finetune", alpha, np.pi, sigma, variant=variant, depth=depth, **common)
        ),
        alpha=alpha,
        sigma=sigma,
    )
