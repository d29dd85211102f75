r"""Closed-form theory of transfer learning in deep linear networks (Section 3 of the paper).

Conventions (docs/theory.md, Conventions): inputs :math:`x \sim N(0, I_D)`, :math:`\alpha = n / D`, teachers
:math:`y = \beta \cdot x + \epsilon` with :math:`\epsilon \sim N(0, \sigma^2)`, the target at angle
:math:`\theta` from the source, :math:`\beta_t = |\beta_t| (\cos\theta\, \hat\beta_s + \sin\theta\, \nu)`.
The generalization error excludes label noise, :math:`R = |w - \beta_t|^2`, and the transferability
is the difference :math:`T = E[R_{\rm scratch}] - E[R_{\rm transfer}]` (eq. 7): ``T > 0`` is positive
transfer.

Every function broadcasts over its array arguments, takes angles in radians and returns a NumPy
scalar for scalar input. Without ``dim`` a function gives the high-dimensional limit
:math:`D \to \infty` at fixed :math:`\alpha`; with ``dim`` it gives the exact expectation at
``D = dim`` and ``n = alpha * dim`` where one exists (docs/theory.md, a section per method).

At :math:`\alpha = 1` (or ``D - 1 <= n <= D + 1`` at finite size) the minimum-norm interpolator's
expected error is infinite when :math:`\sigma > 0`; these functions return ``inf`` there, and the
finite noiseless value when :math:`\sigma = 0`, without NumPy warnings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurefate import _validation as v
from featurefate.theory import _finetune_law

METHODS = ("linear", "ridge", "finetune")
"""Transfer methods understood by :func:`transferability`."""

FINETUNE_VARIANTS = ("paper", "exact")
"""``paper``: the endpoint of Theorem 3.9; ``exact``: the corrected endpoint (docs/theory.md, Fine-tuning)."""


# --------------------------------------------------------------------------------------------
# validation helpers


def _alpha(alpha):
    return v.real_array("alpha", alpha, low=0.0, low_open=True)


def _theta(theta):
    return v.real_array("theta", theta, low=0.0, high=np.pi)


def _sigma(sigma, name="sigma"):
    return v.real_array(name, sigma, low=0.0)


def _norm(value, name):
    return v.real_array(name, value, low=0.0, low_open=True)


def _lam(lam):
    return v.real_array("lam", lam, low=0.0)


def _dim(dim):
    return v.integer("dim", dim, low=1, allow_none=True)


def _depth(depth):
    return v.integer("depth", depth, low=2)


def _variant(variant):
    return v.choice("variant", variant, FINETUNE_VARIANTS)


def _source_data(alpha_source, sigma_source):
    """Validate the finite-source arguments; ``(None, None)`` for population pretraining."""
    if alpha_source is None:
        if np.any(np.asarray(sigma_source, dtype=float) != 0.0):
            raise ValueError(
                "sigma_source applies with alpha_source only (finite source data); "
                f"got sigma_source = {sigma_source!r} with alpha_source = None"
            )
        return None, None
    alpha_source = v.real_array("alpha_source", alpha_source, low=0.0, low_open=True)
    return alpha_source, _sigma(sigma_source, "sigma_source")


# --------------------------------------------------------------------------------------------
# building blocks

# Exp-sinh quadrature grid: nodes s = exp(pi/2 sinh t) for |t| <= 4.5 span 1e-31 .. 1e31.
_DE_STEP = 1.0 / 64.0
_DE_TMAX = 4.5


def _sample_count(alpha, dim):
    r"""The sample count :math:`n = \alpha D` of the finite-size forms.

    A whole number up to rounding is snapped to it: a grid's ``alpha = 1.0000000000000002`` at
    D = 500 is n = 500 (P = I), not a fraction of a sample short of it, where the forms that
    depend on D - n would take a vanishing D - n for a real one. Other values are kept (a
    finite-size phase diagram over a continuous alpha interpolates between whole n).
    """
    n = np.asarray(alpha, dtype=float) * dim
    whole = np.round(n)
    return np.where(np.abs(n - whole) <= 1e-9 * np.maximum(whole, 1.0), whole, n)


def _unexplained_fraction(alpha):
    r"""Expected :math:`|(I - P)v|^2 / |v|^2` for the row-space projector P of X: (1 - n/D)_+.

    Exact at every size for a fixed vector v, since P projects on a uniformly random subspace.
    """
    return np.maximum(1.0 - alpha, 0.0)


def _spread(out, *args):
    """``out`` broadcast against ``args`` as a new array (one pass; ``out`` itself if it already
    has their shape)."""
    shape = np.broadcast_shapes(np.shape(out), *(np.shape(a) for a in args))
    if np.shape(out) == shape and isinstance(out, np.ndarray):
        return out
    return np.broadcast_to(out, shape).copy()


def _noise_error(alpha, sigma, dim):
    r"""Expected :math:`|X^+ \epsilon|^2`, the label-noise part of the minimum-norm fit.

    Limit: :math:`\sigma^2 \alpha / (1 - \alpha)` below 1, :math:`\sigma^2 / (\alpha - 1)` above.
    Finite size (inverse Wishart): :math:`\sigma^2 n / (D - n - 1)` for ``n < D - 1`` and
    :math:`\sigma^2 D / (n - D - 1)` for ``n > D + 1``; infinite in between unless ``sigma = 0``.
    """
    s2 = sigma**2
    with np.errstate(divide="ignore", invalid="ignore"):
        if dim is None:
            below = s2 * alpha / (1.0 - alpha)
            above = s2 / (alpha - 1.0)
            is_below, is_above = alpha < 1.0, alpha > 1.0
        else:
            n = _sample_count(alpha, dim)
            below = s2 * n / (dim - n - 1.0)
            above = s2 * dim / (n - dim - 1.0)
            is_below, is_above = n < dim - 1.0, n > dim + 1.0
        out = np.where(is_below, below, np.where(is_above, above, np.inf))
    return np.where(s2 == 0.0, 0.0, out)


def _chi2_ridge_moments(n, c):
    r"""Return :math:`E[(c/(u+c))^2]` and :math:`E[u/(u+c)^2]` for :math:`u \sim \chi^2_n`.

    Both come from the Laplace transform :math:`E[e^{-su}] = (1 + 2s)^{-n/2}`, which turns them
    into smooth one-dimensional integrals with no cancellation,

    .. math::

        E\Big[\frac{c^2}{(u+c)^2}\Big] = c^2 \int_0^\infty s e^{-sc} (1 + 2s)^{-n/2}\, ds,
        \qquad
        E\Big[\frac{u}{(u+c)^2}\Big] = n \int_0^\infty s e^{-sc} (1 + 2s)^{-n/2 - 1}\, ds,

    evaluated by the double-exponential (exp-sinh) rule on a fixed grid, vectorised over all
    distinct ``(n, c)`` pairs. Against 30-digit quadrature of the :math:`\chi^2` density the
    absolute error is below 1e-15 for n in [2.5, 5000] and c in [1e-8, 1e4] (tested). ``c = 0``
    gives ``(0, 1/(n-2))``, infinite for ``n <= 2``.
    """
    n, c = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(c, dtype=float))
    pairs, inverse = np.unique(
        np.stack([n.ravel(), c.ravel()], axis=1), axis=0, return_inverse=True
    )
    k, ck = pairs[:, 0], pairs[:, 1]
    first = np.zeros(len(pairs))
    with np.errstate(divide="ignore"):
        second = np.where(k > 2.0, 1.0 / (k - 2.0), np.inf)
    pos = ck > 0.0
    t = np.arange(-_DE_TMAX, _DE_TMAX + _DE_STEP / 2, _DE_STEP)
    s = np.exp(0.5 * np.pi * np.sinh(t))
    log_weight = np.log(_DE_STEP * s * s * 0.5 * np.pi * np.cosh(t))  # h * s * ds/dt
    log1p2s = np.log1p(2.0 * s)
    for block in np.array_split(np.flatnonzero(pos), max(1, int(pos.sum()) // 2048)):
        kb, cb = k[block, None], ck[block, None]
        base = log_weight - s * cb
        first[block] = cb[:, 0] ** 2 * np.exp(base - 0.5 * kb * log1p2s).sum(axis=1)
        second[block] = kb[:, 0] * np.exp(base - (0.5 * kb + 1.0) * log1p2s).sum(axis=1)
    inverse = inverse.reshape(n.shape)
    return first[inverse], second[inverse]


# --------------------------------------------------------------------------------------------
# pretraining on finite source data


def _source_moments(theta, alpha_source, sigma_source, source_norm, dim):
    r"""Kept fraction, :math:`E|\hat\beta_s|^2` and the effective cosine of the source fit.

    ``kept = min(n_s/D, 1)``, ``norm2 = kept |beta_s|^2 + E|X_s^+ eps_s|^2`` (``inf`` where the
    source noise term is) and ``cos = kept |beta_s| cos(theta) / sqrt(norm2)`` (0 where
    ``norm2`` is infinite).
    """
    kept = 1.0 - _unexplained_fraction(alpha_source)
    norm2 = kept * source_norm**2 + _noise_error(alpha_source, sigma_source, dim)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(np.isinf(norm2), 0.0, kept * source_norm * np.cos(theta) / np.sqrt(norm2))
    return kept, norm2, np.clip(cos, -1.0, 1.0)


def finite_source_geometry(theta, alpha_source, sigma_source=0.0, *, source_norm=1.0, dim=None):
    r"""Angle to the target and norm of the source fit that finite-source pretraining ends at.

    Pretraining from small initialisation on :math:`n_s = \alpha_s D` source samples with label
    noise :math:`\sigma_s` ends at the minimum-norm fit :math:`\hat\beta_s = X_s^+ y_s`
    (Theorem 3.5 applied to the source), and the pretrained feature is rank one along it
    (Theorem 3.4). Every transfer method then sees the source only through
    :math:`\hat\beta_s`'s norm and its angle to :math:`\beta_t` (docs/theory.md, Finite source
    data). With :math:`\kappa = \min(\alpha_s, 1)` and :math:`N_s` the noise term of eq. (10)
    (:math:`\sigma_s^2 \alpha_s/(1-\alpha_s)` below 1, :math:`\sigma_s^2/(\alpha_s-1)` above),

    .. math::

        |\hat\beta_s|^2 \to \kappa |\beta_s|^2 + N_s, \qquad
        \langle\hat\beta_s, \beta_t\rangle \to \kappa \langle\beta_s, \beta_t\rangle, \qquad
        \cos\theta_{\rm eff} = \frac{\kappa |\beta_s| \cos\theta}
                                      {\sqrt{\kappa |\beta_s|^2 + N_s}}.

    With ``dim`` the same expressions use ``n_s / D`` and the inverse-Wishart noise term: then
    they are the exact expectations :math:`E|\hat\beta_s|^2` and
    :math:`E\langle\hat\beta_s, \beta_t\rangle`, and the angle is the one of those
    expectations (the typical angle; the actual one fluctuates by :math:`O(D^{-1/2})`).

    Parameters
    ----------
    theta : array-like
        Angle between :math:`\beta_s` and :math:`\beta_t`, radians in [0, pi].
    alpha_source : array-like
        Source samples per dimension ``n_s / D``, > 0.
    sigma_source : array-like, default 0.0
        Source label noise, >= 0.
    source_norm : array-like, default 1.0
        :math:`|\beta_s|`.
    dim : int, optional
        D, for the finite-size moments with ``n_s = alpha_source * dim``.

    Returns
    -------
    theta_eff : ndarray or float
        :math:`\theta_{\rm eff}`, radians in [0, pi]; :math:`\pi/2` where the norm is infinite.
    norm_eff : ndarray or float
        :math:`\sqrt{E|\hat\beta_s|^2}`; ``inf`` at :math:`\alpha_s = 1` (``D - 1 <= n_s <= D + 1``)
        when :math:`\sigma_s > 0`.
    """
    theta = _theta(theta)
    alpha_source, sigma_source = _source_data(alpha_source, sigma_source)
    if alpha_source is None:
        raise ValueError("alpha_source is required: a finite number in (0, inf)")
    source_norm, dim = _norm(source_norm, "source_norm"), _dim(dim)
    _, norm2, cos = _source_moments(theta, alpha_source, sigma_source, source_norm, dim)
    return v.scalar_or_array(np.arccos(cos)), v.scalar_or_array(np.sqrt(norm2) + 0.0 * cos)


def _effective_source(theta, source_norm, alpha_source, sigma_source, dim, *, squared=False):
    r"""``(theta, source_norm)`` seen by transfer: the teacher's, or the source fit's.

    ``squared=False``: the angle of the exact first moments (:func:`finite_source_geometry`),
    for fine-tuning, whose paper endpoint is linear in them. ``squared=True``, for linear and
    ridge transfer, whose error given the fit is linear in :math:`\cos^2\theta_{\rm eff}`: at
    finite D the law of :math:`\hat\beta_s` is invariant under rotations fixing
    :math:`\beta_s`, so its component orthogonal to :math:`\beta_s` is uniform on that
    sphere and, exactly,
    :math:`E\cos^2\theta_{\rm eff} = \rho\cos^2\theta + (1 - \rho)\sin^2\theta / (D - 1)`
    with :math:`\rho = E\cos^2\angle(\hat\beta_s, \beta_s)`; :math:`\rho` is taken at its
    typical value :math:`\kappa^2|\beta_s|^2 / E|\hat\beta_s|^2` (exact when
    :math:`\sigma_s = 0`: :math:`\rho = n_s / D`). The sign of the cosine is dropped.
    """
    if alpha_source is None:
        return theta, source_norm
    kept, norm2, cos = _source_moments(theta, alpha_source, sigma_source, source_norm, dim)
    if squared and dim is not None:
        rho = np.where(np.isinf(norm2), 0.0, (kept * source_norm) ** 2 / norm2)
        cos2 = rho * np.cos(theta) ** 2 + (1.0 - rho) * np.sin(theta) ** 2 / (dim - 1.0)
        cos = np.sqrt(np.clip(cos2, 0.0, 1.0))
    return np.arccos(cos), np.sqrt(norm2)


def _require_finite_source_norm(norm_eff, alpha_source):
    if np.any(np.isinf(norm_eff)):
        bad = np.broadcast_to(alpha_source, np.shape(norm_eff))[np.isinf(norm_eff)].flat[0]
        raise ValueError(
            "alpha_source must avoid 1 (n_s within 1 of D at finite size) when sigma_source > 0: "
            "the source fit's expected norm, and with it fine-tuning's error, is infinite there; "
            f"got alpha_source = {bad:g}"
        )


# --------------------------------------------------------------------------------------------
# errors


def scratch_error(alpha, sigma, *, target_norm=1.0, dim=None):
    r"""Expected generalization error of scratch training, Theorem 3.6, eq. (10).

    Gradient flow from small initialisation ends at the minimum-norm interpolator
    :math:`X^+ y` (Theorem 3.5), whose error is

    .. math::

        R_{\rm sc} = \begin{cases}
            (1 - \alpha)|\beta_t|^2 + \sigma^2 \dfrac{\alpha}{1 - \alpha} & \alpha < 1 \\[4pt]
            \dfrac{\sigma^2}{\alpha - 1} & \alpha > 1
        \end{cases}

    and infinite at :math:`\alpha = 1` when :math:`\sigma > 0` (double descent); with
    :math:`\sigma = 0` it is 0 there. With ``dim = D`` and ``n = alpha * D`` the exact finite-size
    expectation is :math:`(1 - n/D)|\beta_t|^2 + \sigma^2 n / (D - n - 1)` for ``n < D - 1`` and
    :math:`\sigma^2 D / (n - D - 1)` for ``n > D + 1`` (inverse-Wishart moments).

    Parameters
    ----------
    alpha : array-like
        Samples per dimension ``n / D``, > 0.
    sigma : array-like
        Label-noise standard deviation, >= 0.
    target_norm : array-like, default 1.0
        :math:`|\beta_t|`, > 0.
    dim : int, optional
        Input dimension D for the exact finite-size form.

    Returns
    -------
    ndarray or float
        :math:`E[R_{\rm sc}]`, broadcast over the inputs.
    """
    alpha, sigma = _alpha(alpha), _sigma(sigma)
    target_norm, dim = _norm(target_norm, "target_norm"), _dim(dim)
    bias = _unexplained_fraction(alpha) * target_norm**2
    return v.scalar_or_array(bias + _noise_error(alpha, sigma, dim))


def linear_transfer_error(
    alpha,
    theta,
    sigma,
    *,
    target_norm=1.0,
    dim=None,
    alpha_source=None,
    sigma_source=0.0,
    source_norm=1.0,
):
    r"""Expected generalization error of linear transfer, Theorem 3.7, eq. (12).

    After pretraining the hidden features are rank one along :math:`\beta_s` (Theorem 3.4), so
    linear transfer fits one coefficient by least squares on :math:`z = X \hat\beta_s`. Exactly,
    for every ``n > 2``,

    .. math::

        R_{\rm lt} = |\beta_\perp|^2 + \frac{|\beta_\perp|^2 + \sigma^2}{n - 2},
        \qquad |\beta_\perp| = |\beta_t| \sin\theta,

    independent of :math:`|\beta_s|`. Without ``dim`` the limit :math:`D \to \infty` at fixed
    :math:`\alpha` drops the second term. At finite size ``n <= 2`` gives ``inf`` (the expected
    inverse of a :math:`\chi^2_n` variable diverges).

    **Finite source data** (``alpha_source``; docs/theory.md, Finite source data): the feature
    lies along the source fit :math:`\hat\beta_s = X_s^+ y_s`, so :math:`\theta` is replaced by
    the effective angle of :func:`finite_source_geometry`,
    :math:`\cos^2\theta_{\rm eff} = \kappa^2 |\beta_s|^2\cos^2\theta / (\kappa|\beta_s|^2 + N_s)`,
    which depends on :math:`|\beta_s|`; at :math:`\alpha_s = 1` with :math:`\sigma_s > 0` the
    fit is pure noise in the limit (:math:`\theta_{\rm eff} = \pi/2`) and the error stays
    finite. In the limit this is exact. With ``dim`` the target side is exact given the source
    fit (the error is linear in :math:`\cos^2\theta_{\rm eff}`), and
    :math:`E\cos^2\theta_{\rm eff} = \rho\cos^2\theta + (1-\rho)\sin^2\theta/(D-1)`
    exactly, with :math:`\rho = E\cos^2\angle(\hat\beta_s, \beta_s)`: exact for
    :math:`\sigma_s = 0` (:math:`\rho = \min(n_s/D, 1)`); with source noise :math:`\rho` is
    taken at its typical value, off by :math:`O(1/D)` (its exact average is a ratio of Wishart
    quadratic forms without a closed form).

    Parameters
    ----------
    alpha : array-like
        ``n / D``, > 0.
    theta : array-like
        Angle between source and target teachers, radians in [0, pi].
    sigma : array-like
        Label-noise standard deviation, >= 0.
    target_norm : array-like, default 1.0
        :math:`|\beta_t|`.
    dim : int, optional
        D, for the exact finite-n form with ``n = alpha * dim``.
    alpha_source : array-like, optional
        Source samples per dimension ``n_s / D`` > 0 for pretraining on finite source data;
        ``None`` (default) pretrains on the source population (:math:`|\beta_s| = 1`).
    sigma_source : array-like, default 0.0
        Source label noise >= 0 (with ``alpha_source`` only).
    source_norm : array-like, default 1.0
        :math:`|\beta_s|`; it matters only with ``alpha_source``.

    Returns
    -------
    ndarray or float
    """
    out = _linear_transfer_error(
        alpha,
        theta,
        sigma,
        target_norm=target_norm,
        dim=dim,
        alpha_source=alpha_source,
        sigma_source=sigma_source,
        source_norm=source_norm,
    )
    return v.scalar_or_array(_spread(out, alpha, sigma))


def _linear_transfer_error(
    alpha,
    theta,
    sigma,
    *,
    target_norm=1.0,
    dim=None,
    alpha_source=None,
    sigma_source=0.0,
    source_norm=1.0,
):
    """:func:`linear_transfer_error` without spreading the limit over alpha and sigma."""
    alpha, theta, sigma = _alpha(alpha), _theta(theta), _sigma(sigma)
    target_norm, dim = _norm(target_norm, "target_norm"), _dim(dim)
    source_norm = _norm(source_norm, "source_norm")
    alpha_source, sigma_source = _source_data(alpha_source, sigma_source)
    theta, _ = _effective_source(theta, source_norm, alpha_source, sigma_source, dim, squared=True)
    perp2 = (target_norm * np.sin(theta)) ** 2
    if dim is None:
        out = perp2  # spread over alpha and sigma by the caller
    else:
        n = _sample_count(alpha, dim)
        noise = perp2 + sigma**2
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = np.where(n > 2.0, 1.0 / (n - 2.0), np.inf)
        if np.all(noise > 0.0):  # the usual case: one product, no 0 * inf to mask
            out = perp2 + noise * inverse
        else:
            with np.errstate(invalid="ignore"):
                out = perp2 + np.where(noise == 0.0, 0.0, noise * inverse)
    return v.scalar_or_array(out)


def ridge_transfer_error(
    alpha,
    theta,
    sigma,
    lam,
    *,
    source_norm=1.0,
    target_norm=1.0,
    depth=2,
    dim=None,
    alpha_source=None,
    sigma_source=0.0,
):
    r"""Expected generalization error of ridge linear transfer, Theorem 3.8, eqs. (14)-(15).

    The last layer ``a`` is fitted on the frozen rank-one features with objective
    :math:`\frac1n |y - \Phi a|^2 + \lambda |a|^2`. The pretrained features carry the source
    norm, so the penalty acts on the end-to-end coefficient as
    :math:`\lambda_{\rm eff} = \lambda / |\beta_s|^{2(L-1)/L}` (L = ``depth``). With
    :math:`u \sim \chi^2_n`, exactly at finite n,

    .. math::

        R = |\beta_\perp|^2
            + |\beta_\parallel|^2\, E\Big[\Big(\frac{n\lambda_{\rm eff}}{u + n\lambda_{\rm eff}}\Big)^2\Big]
            + (|\beta_\perp|^2 + \sigma^2)\, E\Big[\frac{u}{(u + n\lambda_{\rm eff})^2}\Big],

    evaluated by quadrature over the :math:`\chi^2_n` law (absolute accuracy about 1e-15), and
    in the limit :math:`n \to \infty`

    .. math::

        R_{\rm lt}(\lambda) = |\beta_\perp|^2
            + |\beta_\parallel|^2 \frac{\lambda_{\rm eff}^2}{(1 + \lambda_{\rm eff})^2},

    strictly increasing in :math:`\lambda` (the paper's "ridge cannot fix negative transfer").
    At finite n a small :math:`\lambda^* \approx (|\beta_\perp|^2 + \sigma^2)/(n|\beta_\parallel|^2)`
    helps slightly, so the theorem holds only in the limit (docs/theory.md, Ridge linear transfer). ``lam = 0`` gives
    :func:`linear_transfer_error`.

    **Finite source data** (``alpha_source``): :math:`\theta` and :math:`|\beta_s|` become the
    source fit's effective angle and norm (:func:`finite_source_geometry`); the feature's scale
    :math:`|\hat\beta_s|^{(L-1)/L}` sets :math:`\lambda_{\rm eff}`, which is 0 at
    :math:`\alpha_s = 1` with :math:`\sigma_s > 0` (infinite fit norm, the limit of
    :func:`linear_transfer_error` there). Exact in the limit; with ``dim`` the angle is the
    finite-D one of :func:`linear_transfer_error` and the norm is
    :math:`\sqrt{E|\hat\beta_s|^2}`, off by :math:`O(1/D)` when :math:`\sigma_s > 0`.

    Parameters
    ----------
    alpha, theta, sigma : array-like
        As in :func:`linear_transfer_error`.
    lam : array-like
        Ridge penalty :math:`\lambda \ge 0`.
    source_norm, target_norm : array-like, default 1.0
        :math:`|\beta_s|` and :math:`|\beta_t|`.
    depth : int, default 2
        Network depth L >= 2, which sets the scale of the pretrained features.
    dim : int, optional
        D, for the exact finite-n expectation with ``n = alpha * dim``.
    alpha_source, sigma_source : array-like, optional
        Finite source data, as in :func:`linear_transfer_error`.

    Returns
    -------
    ndarray or float
    """
    out = _ridge_transfer_error(
        alpha,
        theta,
        sigma,
        lam,
        source_norm=source_norm,
        target_norm=target_norm,
        depth=depth,
        dim=dim,
        alpha_source=alpha_source,
        sigma_source=sigma_source,
    )
    return v.scalar_or_array(_spread(out, alpha, sigma))


def _ridge_transfer_error(
    alpha,
    theta,
    sigma,
    lam,
    *,
    source_norm=1.0,
    target_norm=1.0,
    depth=2,
    dim=None,
    alpha_source=None,
    sigma_source=0.0,
):
    """:func:`ridge_transfer_error` without spreading the limit over alpha and sigma."""
    alpha, theta, sigma, lam = _alpha(alpha), _theta(theta), _sigma(sigma), _lam(lam)
    source_norm = _norm(source_norm, "source_norm")
    target_norm, depth, dim = _norm(target_norm, "target_norm"), _depth(depth), _dim(dim)
    alpha_source, sigma_source = _source_data(alpha_source, sigma_source)
    theta, source_norm = _effective_source(
        theta, source_norm, alpha_source, sigma_source, dim, squared=True
    )
    lam_eff = lam / source_norm ** (2.0 * (depth - 1) / depth)
    par2 = (target_norm * np.cos(theta)) ** 2
    perp2 = (target_norm * np.sin(theta)) ** 2
    if dim is None:
        out = perp2 + par2 * (lam_eff / (1.0 + lam_eff)) ** 2  # spread by the caller
    else:
        n = _sample_count(alpha, dim)
        shrink, spread = _chi2_ridge_moments(n, n * lam_eff)
        noise = perp2 + sigma**2
        out = perp2 + par2 * shrink + np.where(noise == 0.0, 0.0, noise * spread)
    return v.scalar_or_array(out)


def solve_finetune_scale(a, b, *, source_norm=1.0, depth=2):
    r"""The factor c of the exact fine-tuning endpoint (docs/theory.md, Fine-tuning, correction to eq. 16).

    With the first layers kept rank one by the conservation law (35), gradient flow from the
    pretrained weights only rescales the component of :math:`w` outside the row space of X, and
    the end-to-end norm grows as :math:`|w| = |\beta_s| c^{L/(L-1)}`. The endpoint
    :math:`X^+ y + c (I - P)\beta_s` therefore has :math:`c > 0` solving

    .. math::

        |\beta_s|^2 c^{2L/(L-1)} - a c^2 - b = 0, \qquad
        a = |(I - P)\beta_s|^2, \quad b = |X^+ y|^2,

    i.e. :math:`c^4 - a c^2 - b = 0` for ``depth = 2`` and unit source norm. (Derived from the
    balanced-flow equation :math:`\dot w = -|w|^{2-2/L}(g + (L-1)\hat w \hat w^\top g)`; checked
    against numerically integrated gradient flow in the tests.)

    Parameters
    ----------
    a, b : array-like
        :math:`|(I - P)\beta_s|^2 \ge 0` and :math:`|X^+ y|^2 \ge 0`, per instance or in expectation.
    source_norm : array-like, default 1.0
    depth : int, default 2

    Returns
    -------
    ndarray or float
        c, broadcast over the inputs (0 where ``a = b = 0``).
    """
    a = v.real_array("a", a, low=0.0)
    b = v.real_array("b", b, low=0.0, high=np.inf)
    source_norm, depth = _norm(source_norm, "source_norm"), _depth(depth)
    scale = source_norm**2
    if depth == 2:
        y = (a + np.sqrt(a**2 + 4.0 * scale * b)) / (2.0 * scale)
    else:
        # In u = c^(2/(L-1)) the equation is the polynomial f(u) = scale u^L - a u^(L-1) - b,
        # convex above a (L-2)/(L scale) and so above its root u* >= a/scale. Newton started
        # above the root, at the bound max(2a/scale, (2b/scale)^(1/L)) that
        # scale u^L = a u^(L-1) + b <= 2 max(a u^(L-1), b) gives, falls monotonically onto it
        # (integer powers: no pow calls, fast for the finite-size quadrature).
        u = np.maximum(2.0 * a / scale, (2.0 * b / scale) ** (1.0 / depth))
        for _ in range(100):
            power = u ** (depth - 2)  # u^(L-2)
            high = power * u  # u^(L-1)
            value = scale * high * u - a * high - b
            slope = depth * scale * high - (depth - 1) * a * power
            with np.errstate(divide="ignore", invalid="ignore"):
                step = np.where(slope > 0.0, value / slope, 0.0)
            u = u - step
            if np.all(np.abs(step) <= 1e-15 * np.maximum(u, 1e-300)):
                break
        y = u ** (depth - 1)
    return v.scalar_or_array(np.sqrt(y))


def finetune_scale(alpha, sigma, *, source_norm=1.0, target_norm=1.0, depth=2, dim=None):
    r"""The factor c of the exact fine-tuning endpoint at typical (expected) a and b.

    Uses :func:`solve_finetune_scale` with :math:`a = (1 - \alpha)|\beta_s|^2` and
    :math:`b = \alpha |\beta_t|^2 + E|X^+\epsilon|^2` (``n / D`` and the inverse-Wishart noise term
    at finite size, where c still fluctuates by :math:`O(D^{-1/2})` around this value; the
    finite-size errors of :func:`finetune_error` average over those fluctuations instead).
    ``c = 1`` when :math:`\sigma = 0` and the norms are equal; c = 1.2247 at
    :math:`\sigma = 1, \alpha = 0.5`. Defined for :math:`\alpha < 1` (``n < D - 1`` at finite
    size); NaN elsewhere. For :math:`\alpha \ge 1` fine-tuning forgets its initialisation and c
    plays no role; in the band ``D - 1 <= n < D`` the typical :math:`|X^+ y|^2` is infinite.
    """
    alpha, sigma = _alpha(alpha), _sigma(sigma)
    source_norm = _norm(source_norm, "source_norm")
    target_norm, depth, dim = _norm(target_norm, "target_norm"), _depth(depth), _dim(dim)
    below = (alpha < 1.0) if dim is None else (_sample_count(alpha, dim) < dim - 1.0)
    a = np.where(below, (1.0 - alpha) * source_norm**2, 0.0)
    b = np.where(below, alpha * target_norm**2 + _noise_error(alpha, sigma, dim), 0.0)
    c = solve_finetune_scale(a, b, source_norm=source_norm, depth=depth)
    return v.scalar_or_array(np.where(below, c, np.nan))


def _finetune_coupled(alpha, theta, sigma, source_norm, target_norm, depth, dim):
    r"""Exact :math:`E[c^2 a - 2 c\, \beta_s^\top (I - P)\beta_t]` at ``D = dim`` and ``n = alpha * dim``.

    The part of the corrected endpoint's error that c couples; 0 where ``n >= D`` (P = I). One
    five-dimensional quadrature per distinct parameter set (:mod:`._finetune_law`).
    """
    shape = np.broadcast_shapes(*(np.shape(x) for x in (alpha, theta, sigma)))
    shape = np.broadcast_shapes(shape, np.shape(source_norm), np.shape(target_norm))
    args = np.broadcast_arrays(alpha, theta, sigma, source_norm, target_norm)
    out = np.zeros(shape)
    for index in np.ndindex(shape):
        a, t, s, ns, nt = (float(x[index]) for x in args)
        n = float(_sample_count(a, dim))
        if n < dim:
            out[index] = _finetune_law.coupled_term(
                n, dim, t, s, ns, nt, depth, solve_finetune_scale
            )
    return out


def _finetune_gain(alpha, theta, sigma, variant, source_norm, target_norm, depth, dim):
    r""":math:`T_{\rm ft} = (1-\alpha)_+ (2 c |\beta_s||\beta_t|\cos\theta - c^2 |\beta_s|^2)`.

    At finite size the exact variant's gain is :math:`-E[c^2 a - 2 c g]` (:func:`_finetune_coupled`):
    scratch and fine-tuning share :math:`|X^+\epsilon|^2 + |(I - P)\beta_t|^2` term by term.
    """
    if variant == "exact" and dim is not None:
        return 0.0 - _finetune_coupled(alpha, theta, sigma, source_norm, target_norm, depth, dim)
    overlap = source_norm * target_norm * np.cos(theta)
    fraction = _unexplained_fraction(alpha)
    if variant == "paper":  # c = 1: one product over the grid, written where fraction > 0 only
        inner = 2.0 * overlap - source_norm**2
        shape = np.broadcast_shapes(*(np.shape(x) for x in (fraction, inner, sigma)))
        gain = np.zeros(shape)
        np.multiply(fraction, inner, out=gain, where=fraction > 0.0)
        return gain
    c = finetune_scale(
        alpha, sigma, source_norm=source_norm, target_norm=target_norm, depth=depth, dim=dim
    )
    # The label noise cancels between scratch and fine-tuning instance by instance, so T stays
    # finite where both errors are infinite; it is 0 wherever the data pin w down (alpha >= 1).
    # fraction * (2 c overlap - (c |beta_s|)^2), with the factors that do not depend on theta
    # formed before they meet it; where fraction = 0 (c may be NaN there) the gain is +0.0:
    # 0 * overlap - (-0.0).
    below = fraction > 0.0
    linear = np.where(below, 2.0 * fraction * c, 0.0)
    constant = np.where(below, fraction * (c * source_norm) ** 2, -0.0)
    return linear * overlap - constant


def finetune_error(
    alpha,
    theta,
    sigma,
    *,
    variant="paper",
    source_norm=1.0,
    target_norm=1.0,
    depth=2,
    dim=None,
    alpha_source=None,
    sigma_source=0.0,
):
    r"""Expected generalization error of fine-tuning, Theorem 3.9, eq. (16).

    ``variant="paper"`` uses the paper's endpoint :math:`X^+ y + (I - P)\beta_s`:

    .. math::

        R_{\rm ft} = (1 - \alpha)|\beta_s - \beta_t|^2 + \sigma^2 \frac{\alpha}{1 - \alpha}
        \quad (\alpha < 1), \qquad R_{\rm ft} = R_{\rm sc} \quad (\alpha \ge 1).

    ``variant="exact"`` uses the corrected endpoint :math:`X^+ y + c (I - P)\beta_s` of
    :func:`solve_finetune_scale` (docs/theory.md, Fine-tuning), with c at its typical value
    (:func:`finetune_scale`):
    :math:`R_{\rm ft} = (1 - \alpha)|c\beta_s - \beta_t|^2 + \sigma^2 \alpha / (1 - \alpha)`.
    The two agree when :math:`\sigma = 0` and the norms are equal.

    With ``dim`` both are exact expectations at finite size. The paper variant is
    ``1 - n/D`` and the inverse-Wishart noise term. For the exact variant c fluctuates with the
    data by :math:`O(D^{-1/2})`, and plugging in its typical value would be off by
    :math:`O(1/D)`; instead the error is averaged over the joint law of
    :math:`(a, \beta_s^\top (I-P)\beta_t, b)`, reduced by rotational invariance to five
    independent scalar variables (Beta, beta-prime and spherical-coordinate laws) and integrated
    by quadrature to a relative accuracy of about 1e-8 (docs/theory.md, Finite-D fine-tuning):

    .. math::

        E[R_{\rm ft}] = \sigma^2 \frac{n}{D - n - 1} + |\beta_t|^2 \Big(1 - \frac nD\Big)
            + E\big[c^2 a - 2 c\, \beta_s^\top (I - P)\beta_t\big], \qquad n < D - 1.

    ``depth`` enters through c (:func:`solve_finetune_scale`) in the limit and at finite size.

    **Finite source data** (``alpha_source``; docs/theory.md, Finite source data): fine-tuning
    starts from the source fit :math:`\hat\beta_s`, so :math:`|\beta_s|` and :math:`\theta`
    become its norm and angle (:func:`finite_source_geometry`), and the corrected endpoint is
    :math:`X^+ y + c(I - P)\hat\beta_s` with c from
    :math:`|\hat\beta_s|^2 c^{2L/(L-1)} = a c^2 + b`, :math:`a = |(I-P)\hat\beta_s|^2`. In the
    limit, with :math:`\kappa = \min(\alpha_s, 1)` and :math:`N_s` the source noise term,

    .. math::

        T_{\rm ft} = (1 - \alpha)_+ \big(2 c \kappa \langle\beta_s, \beta_t\rangle
                      - c^2 (\kappa |\beta_s|^2 + N_s)\big),

    c = 1 for the paper's endpoint. The paper's endpoint is exact at finite size too (its error
    is linear in :math:`\hat\beta_s` and :math:`|\hat\beta_s|^2`, whose exact means use
    ``n_s / D`` and the inverse-Wishart noise term); the corrected one with ``dim`` averages
    exactly over the target data at the source fit's typical angle and norm, off by
    :math:`O(1/D)`. Infinite at :math:`\alpha_s = 1` (``D - 1 <= n_s <= D + 1``) when
    :math:`\sigma_s > 0`: a ``ValueError`` says so.

    Parameters
    ----------
    alpha, theta, sigma : array-like
        As in :func:`linear_transfer_error`.
    variant : {"paper", "exact"}
    source_norm, target_norm : array-like, default 1.0
    depth : int, default 2
        Network depth L >= 2; used by the exact variant only.
    dim : int, optional
        D, for the exact finite-size expectation with ``n = alpha * dim``; one quadrature per
        distinct parameter set for the exact variant (about 0.05-0.5 s each, cached).
    alpha_source, sigma_source : array-like, optional
        Finite source data, as in :func:`linear_transfer_error`.

    Returns
    -------
    ndarray or float
    """
    alpha, theta, sigma = _alpha(alpha), _theta(theta), _sigma(sigma)
    variant, depth, dim = _variant(variant), _depth(depth), _dim(dim)
    source_norm = _norm(source_norm, "source_norm")
    target_norm = _norm(target_norm, "target_norm")
    alpha_source, sigma_source = _source_data(alpha_source, sigma_source)
    theta, source_norm = _effective_source(theta, source_norm, alpha_source, sigma_source, dim)
    _require_finite_source_norm(source_norm, alpha_source)
    gain = _finetune_gain(alpha, theta, sigma, variant, source_norm, target_norm, depth, dim)
    scratch = scratch_error(alpha, sigma, target_norm=target_norm, dim=dim)
    # R_ft = R_sc - gain; where R_sc is infinite the gain is 0 (alpha >= 1) and R_ft is too.
    return v.scalar_or_array(np.where(np.isinf(scratch), scratch, scratch - gain))


def finetune_transferability_finite_source(alpha, theta, alpha_source, sigma_source):
    r"""The paper's fine-tuning transferability after pretraining on finite source data.

    A thin wrapper: ``transferability("finetune", alpha, theta, 0.0, variant="paper",
    alpha_source=alpha_source, sigma_source=sigma_source)``. With unit norms, in the limit,

    .. math::

        T_{\rm ft} = -(1 - \alpha)_+ \Big[\kappa (1 - 2\cos\theta) + N_s\Big],
        \qquad \kappa = \min(\alpha_s, 1),

    :math:`N_s = \sigma_s^2 \alpha_s / (1 - \alpha_s)` below 1 and :math:`\sigma_s^2/(\alpha_s - 1)`
    above (the target noise cancels). ``alpha_source = 1`` with ``sigma_source > 0`` raises
    (infinite there).
    """
    return transferability(
        "finetune",
        alpha,
        theta,
        0.0,
        variant="paper",
        alpha_source=alpha_source,
        sigma_source=sigma_source,
    )


# --------------------------------------------------------------------------------------------
# transferability and phase boundaries


def transferability(
    method,
    alpha,
    theta,
    sigma,
    *,
    lam=None,
    variant=None,
    source_norm=1.0,
    target_norm=1.0,
    depth=2,
    dim=None,
    alpha_source=None,
    sigma_source=0.0,
):
    r"""Transferability :math:`T = E[R_{\rm sc}] - E[R_{\rm transfer}]`, eq. (7).

    ``method="linear"`` gives eq. (13), :math:`T_{\rm lt} = R_{\rm sc}(\alpha, \sigma) - \sin^2\theta`
    in the limit; ``"ridge"`` uses :func:`ridge_transfer_error` (``lam`` required);
    ``"finetune"`` gives eq. (17), :math:`T_{\rm ft} = (1 - \alpha)(2c\cos\theta - c^2)` for
    :math:`\alpha < 1` and 0 for :math:`\alpha \ge 1` (c = 1 for ``variant="paper"``, the default).
    Fine-tuning's T is 0 for every :math:`\alpha \ge 1`, also at :math:`\alpha = 1` where both
    errors are infinite; linear and ridge transfer give ``+inf`` there when :math:`\sigma > 0`.
    With ``dim`` the exact variant's T is :math:`-E[c^2 a - 2c\,\beta_s^\top(I-P)\beta_t]`
    (:func:`finetune_error`), finite for every ``n < D`` and 0 for ``n >= D``.

    ``alpha_source`` (and ``sigma_source``) pretrain on finite source data: every method sees
    the source fit :math:`\hat\beta_s = X_s^+ y_s` instead of :math:`\beta_s`
    (:func:`finite_source_geometry`; docs/theory.md, Finite source data).

    Parameters
    ----------
    method : {"linear", "ridge", "finetune"}
    alpha, theta, sigma : array-like
    lam : array-like, optional
        Ridge penalty, for ``method="ridge"`` only.
    variant : {"paper", "exact"}, optional
        For ``method="finetune"`` only; default ``"paper"``.
    source_norm, target_norm : array-like, default 1.0
    depth : int, default 2
    dim : int, optional
        Exact finite-size forms at ``D = dim``.
    alpha_source, sigma_source : array-like, optional
        Finite source data, as in :func:`linear_transfer_error`.

    Returns
    -------
    ndarray or float
    """
    method = v.choice("method", method, METHODS)
    if lam is not None and method != "ridge":
        raise ValueError(f"lam applies to method 'ridge' only; got method {method!r}")
    if lam is None and method == "ridge":
        raise ValueError("lam is required for method 'ridge' (a finite number in [0, inf))")
    if variant is not None and method != "finetune":
        raise ValueError(f"variant applies to method 'finetune' only; got method {method!r}")
    alpha, theta, sigma = _alpha(alpha), _theta(theta), _sigma(sigma)
    source = {"alpha_source": alpha_source, "sigma_source": sigma_source}
    if method == "finetune":
        variant = _variant("paper" if variant is None else variant)
        source_norm = _norm(source_norm, "source_norm")
        target_norm = _norm(target_norm, "target_norm")
        dim = _dim(dim)
        alpha_source, sigma_source = _source_data(alpha_source, sigma_source)
        theta, source_norm = _effective_source(theta, source_norm, alpha_source, sigma_source, dim)
        _require_finite_source_norm(source_norm, alpha_source)
        gain = _finetune_gain(
            alpha, theta, sigma, variant, source_norm, target_norm, _depth(depth), dim
        )
        return v.scalar_or_array(_spread(gain, sigma))
    scratch = scratch_error(alpha, sigma, target_norm=target_norm, dim=dim)
    if method == "linear":
        # Linear transfer without ridge is independent of the depth, and of the source norm
        # unless the source is finite (the source fit's angle depends on it).
        _depth(depth)
        transfer = _linear_transfer_error(
            alpha,
            theta,
            sigma,
            target_norm=target_norm,
            dim=dim,
            source_norm=source_norm,
            **source,
        )
    else:
        transfer = _ridge_transfer_error(
            alpha,
            theta,
            sigma,
            lam,
            source_norm=source_norm,
            target_norm=target_norm,
            depth=depth,
            dim=dim,
            **source,
        )
    with np.errstate(invalid="ignore"):
        return v.scalar_or_array(np.asarray(scratch - transfer))


def finetune_break_even_angle(
    alpha, sigma, *, variant="paper", source_norm=1.0, target_norm=1.0, depth=2
):
    r"""Angle below which fine-tuning transfers positively (for :math:`\alpha < 1`).

    From eq. (17), :math:`T_{\rm ft} > 0` iff :math:`\cos\theta > c|\beta_s| / (2|\beta_t|)`:
    :math:`\theta^* = \pi/3` for the paper variant with unit norms, and
    :math:`\arccos(c/2)` for the exact one (52 degrees at :math:`\sigma = 1, \alpha = 0.5`).
    Returns 0 where no angle gives positive transfer and NaN for :math:`\alpha \ge 1`, where
    fine-tuning's transferability is 0 at every angle.
    """
    alpha, sigma = _alpha(alpha), _sigma(sigma)
    variant = _variant(variant)
    source_norm = _norm(source_norm, "source_norm")
    target_norm = _norm(target_norm, "target_norm")
    if variant == "paper":
        c = np.where(alpha < 1.0, 1.0, np.nan) + 0.0 * sigma
    else:
        c = finetune_scale(
            alpha, sigma, source_norm=source_norm, target_norm=target_norm, depth=depth
        )
    ratio = c * source_norm / (2.0 * target_norm)
    with np.errstate(invalid="ignore"):
        return v.scalar_or_array(np.arccos(np.clip(ratio, -1.0, 1.0)))


@dataclass(frozen=True)
class NegativeTransferRegions:
    r"""Where transfer is negative, in the limit :math:`D \to \infty` (docs/theory.md, Negative-transfer regions).

    Linear transfer is negative for :math:`\alpha \in (\alpha_-, \alpha_+)` below 1 and for
    :math:`\alpha > \alpha_{\rm th}` above 1. When :math:`\sigma = 0` the two meet at
    :math:`\alpha = 1`, which is negative too; between them (around :math:`\alpha = 1`, for
    :math:`\sigma > 0`) transfer stays positive even at :math:`\theta = \pi/2`.

    Attributes
    ----------
    alpha_lower, alpha_upper : ndarray or float
        :math:`\alpha_\pm`; NaN where the interval below 1 is empty.
    alpha_threshold : ndarray or float
        :math:`1 + \sigma^2/|\beta_\perp|^2`; ``inf`` when :math:`\beta_\perp = 0`.
    finetune_angle_paper : ndarray or float
        Fine-tuning break-even angle of the paper's endpoint (:math:`\pi/3`, unit norms).
    finetune_angle_exact : ndarray or float or None
        The corrected endpoint's break-even angle at the given ``alpha``; ``None`` unless
        ``alpha`` was passed (it depends on :math:`\alpha` and :math:`\sigma`).
    """

    alpha_lower: np.ndarray | float
    alpha_upper: np.ndarray | float
    alpha_threshold: np.ndarray | float
    finetune_angle_paper: np.ndarray | float
    finetune_angle_exact: np.ndarray | float | None = None

    def is_negative(self, alpha):
        """True where linear transfer at ``alpha`` is negative (alpha broadcasts with theta)."""
        alpha = _alpha(alpha)
        below = (alpha > self.alpha_lower) & (alpha < self.alpha_upper)
        return v.scalar_or_array(np.asarray(below | (alpha > self.alpha_threshold)))


def negative_transfer_regions(theta, sigma, *, target_norm=1.0, alpha=None):
    r"""The negative-transfer regions of linear transfer and fine-tuning (docs/theory.md, Negative-transfer regions).

    For linear transfer (unit norms), below :math:`\alpha = 1`, :math:`T_{\rm lt} < 0` on
    :math:`(\alpha_-, \alpha_+)` with

    .. math::

        \alpha_\pm = \frac{(1 + \cos^2\theta - \sigma^2)
            \pm \sqrt{(1 + \cos^2\theta - \sigma^2)^2 - 4\cos^2\theta}}{2},

    non-empty iff :math:`1 - |\cos\theta| > \sigma` (noiseless: :math:`(\cos^2\theta, 1)`), and
    above 1 iff :math:`\alpha > 1 + \sigma^2/|\beta_\perp|^2`. A general target norm enters as
    :math:`\sigma / |\beta_t|`. Example: :math:`\sigma = 0.2, \theta = \pi/4` gives
    (0.5486, 0.9114) and 1.08.

    Parameters
    ----------
    theta : array-like
        Radians in [0, pi].
    sigma : array-like
        >= 0.
    target_norm : array-like, default 1.0
    alpha : array-like, optional
        Where to evaluate the exact variant's fine-tuning break-even angle.

    Returns
    -------
    NegativeTransferRegions
    """
    theta, sigma = _theta(theta), _sigma(sigma)
    target_norm = _norm(target_norm, "target_norm")
    s = sigma / target_norm
    cos2 = np.cos(theta) ** 2
    perp2 = np.sin(theta) ** 2
    mid = 1.0 + cos2 - s**2
    disc = mid**2 - 4.0 * cos2
    open_ = (1.0 - np.sqrt(cos2) > s) & (disc > 0.0)
    root = np.sqrt(np.where(open_, disc, 0.0))
    lower = np.where(open_, (mid - root) / 2.0, np.nan)
    upper = np.where(open_, (mid + root) / 2.0, np.nan)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # subnormal perp2: inf
        threshold = np.where(perp2 > 0.0, 1.0 + s**2 / perp2, np.inf)
    paper = np.broadcast_to(np.arccos(np.clip(0.5 / target_norm, -1.0, 1.0)), lower.shape).copy()
    exact = None
    if alpha is not None:
        exact = finetune_break_even_angle(alpha, sigma, variant="exact", target_norm=target_norm)
    return NegativeTransferRegions(
        alpha_lower=v.scalar_or_array(lower),
        alpha_upper=v.scalar_or_array(upper),
        alpha_threshold=v.scalar_or_array(np.asarray(threshold)),
        finetune_angle_paper=v.scalar_or_array(paper),
        finetune_angle_exact=exact,
    )


# --------------------------------------------------------------------------------------------
# Theorem 3.4: the pretrained features


def feature_scale(depth, *, source_norm=1.0):
    r"""Theorem 3.4: the one singular value the hidden features keep, :math:`|\beta_s|^{(L-1)/L}`.

    Population pretraining from a vanishing init makes the hidden features
    :math:`W_{L-1} \cdots W_1` rank one along :math:`\beta_s`, every layer of the same size
    (the conserved quantities (35) are 0): each carries :math:`|\beta_s|^{1/L}`.

    Parameters
    ----------
    depth : int
        L >= 2.
    source_norm : float or array-like
        :math:`|\beta_s| > 0`.
    """
    depth = _depth(depth)
    source_norm = _norm(source_norm, "source_norm")
    return v.scalar_or_array(source_norm ** ((depth - 1.0) / depth))


def init_feature_edge(depth, init_scale):
    r"""The largest singular value of the random init's hidden features as D grows.

    .. math::

        c_L \gamma^{L-1}, \qquad c_L = \left(\frac{L^L}{(L-1)^{L-1}}\right)^{1/2}

    (2 at L = 2, :math:`3\sqrt3/2 \approx 2.60` at L = 3). The authors' init makes the features
    :math:`\gamma^{L-1}` times a product of L - 1 independent D x D matrices with N(0, 1/D)
    entries, whose squared singular values follow the Fuss-Catalan law with upper edge
    :math:`L^L / (L-1)^{L-1}`. Theorem 3.4's other singular values stay at this scale.

    Parameters
    ----------
    depth : int
        L >= 2.
    init_scale : float or array-like
        :math:`\gamma > 0`.
    """
    depth = _depth(depth)
    init_scale = v.real_array("init_scale", init_scale, low=0.0, low_open=True)
    m = depth - 1.0
    return v.scalar_or_array(np.sqrt(depth**depth / m**m) * init_scale**m)
