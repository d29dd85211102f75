r"""Theory phase diagrams: transferability over (alpha, theta) from the closed forms of Section 3.

The paper's Figs. 1(a), 2, 3(a), 6 and 7 show the transferability :math:`T = E[R_{\rm sc}] -
E[R_{\rm transfer}]` (eq. 7) of the deep linear model as a heat map over the samples per dimension
:math:`\alpha = n / D` and the angle :math:`\theta` between the source and target teachers. This
module evaluates :mod:`featurefate.theory.linear` on such a grid and labels the result: a dataset
with dims ``(alpha, theta)``, the variables ``theory_transferability``, ``theory_scratch_error``
and ``theory_transfer_error``, and the full configuration in ``attrs`` (docs/theory.md, Fine-tuning).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

import featurefate
from featurefate import _validation as v
from featurefate.theory import linear as theory

# The defaults of the closed forms (unit teachers, two layers), recorded in every dataset.
_SOURCE_NORM = 1.0
_TARGET_NORM = 1.0
_DEPTH = 2

_TRANSFER_LONG_NAME = {
    "linear": "expected linear-transfer generalization error, eq. (12)",
    "ridge": "expected ridge linear-transfer generalization error, eqs. (14)-(15)",
    "finetune": "expected fine-tuning generalization error, eq. (16)",
}


def _description(method: str, variant: str | None, finite: bool) -> str:
    if method == "linear":
        if finite:
            return (
                "linear transfer at finite D: exact scratch error (eq. 10, inverse-Wishart moments) "
                "minus eq. (12) with its (|beta_perp|^2 + sigma^2)/(n - 2) term"
            )
        return "linear transfer, eq. (13): T = R_scratch(alpha, sigma) - sin^2(theta)"
    if method == "ridge":
        if finite:
            return (
                "ridge linear transfer at finite D: exact expectation over u ~ chi^2_n "
                "(docs/theory.md, Ridge linear transfer), eqs. (14)-(15)"
            )
        return (
            "ridge linear transfer, eqs. (14)-(15): "
            "T = R_scratch - sin^2(theta) - cos^2(theta) lam^2/(1 + lam)^2"
        )
    if variant == "paper":
        return (
            "fine-tuning, paper's endpoint X^+y + (I-P)beta_s, eqs. (16)-(17): "
            "T = (1 - alpha)(2 cos(theta) - 1) for alpha < 1, 0 for alpha >= 1"
        )
    return (
        "fine-tuning, corrected endpoint X^+y + c(I-P)beta_s with c^4 - a c^2 - b = 0 "
        "(docs/theory.md, Fine-tuning): T = (1 - alpha)(2 c cos(theta) - c^2) for alpha < 1, 0 for alpha >= 1"
    )


def _single(name: str, value: object) -> None:
    """Refuse arrays where one number is expected (the range is checked by the theory)."""
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be a single number; got an array of shape {np.shape(value)}")


def _resolve_variant(method: str, variant: str | None) -> str | None:
    """Fine-tuning defaults to the paper's endpoint; other methods take no variant."""
    if method == "finetune" and variant is None:
        return "paper"
    return variant


def _transfer_error(method, alpha, theta, sigma, *, lam, variant, dim):
    """The expected error of the transferred model for ``method`` (broadcast over the inputs)."""
    if method == "linear":
        return theory.linear_transfer_error(alpha, theta, sigma, dim=dim)
    if method == "ridge":
        return theory.ridge_transfer_error(alpha, theta, sigma, lam, dim=dim)
    return theory.finetune_error(alpha, theta, sigma, variant=variant, dim=dim)


MAX_POINTS = 20_000
"""Most points along one axis of :func:`grid` (far beyond any figure's resolution)."""
MAX_GRID = 4_000_000
"""Most points of a whole grid: each array of the diagram is then at most 32 MB."""


def _sample_count_at_least_one(alpha, dim) -> None:
    """Refuse finite-size points with fewer than one sample: ``n = alpha * dim < 1``."""
    dim = v.integer("dim", dim, low=1, allow_none=True)
    if dim is None:
        return
    smallest = float(np.min(v.real_array("alpha", alpha, low=0.0, low_open=True)))
    if smallest * dim < 1.0 - 1e-9:
        raise ValueError(
            f"alpha * dim must be at least 1 (one sample) for the finite-size forms; got "
            f"alpha = {smallest:g} at dim = {dim}, n = {smallest * dim:g}"
        )


def _whole_sample_count(alpha, dim) -> None:
    """Refuse one finite-size point at a fractional sample count ``n = alpha * dim``.

    A simulation draws ``round(alpha * dim)`` samples and its theory is taken there; a single
    theory point at a fraction of a sample would be compared with nothing. (A phase diagram over
    a continuous alpha axis interpolates between whole n, and is allowed.)
    """
    if dim is None:
        return
    n = float(theory._sample_count(alpha, dim))  # the closed forms' own rounding rule
    if n != round(n):
        below, above = math.floor(n), math.ceil(n)
        raise ValueError(
            f"alpha * dim must be a whole number of samples for the finite-size forms; got "
            f"alpha = {float(alpha):g} at dim = {int(dim)}, n = {n:g}: take alpha = "
            f"{below / int(dim):g} (n = {below}) or {above / int(dim):g} (n = {above})"
        )


def grid(alpha_max=2.0, num_alpha=400, num_theta=300, theta_max=np.pi / 2):
    r"""The 1-D coordinates of a phase diagram.

    ``alpha`` takes the ``num_alpha`` multiples ``k * alpha_max / num_alpha``, ``k = 1 ..
    num_alpha`` (so ``alpha = 1`` lies exactly on the default grid, where scratch training's
    error diverges when :math:`\sigma > 0`); ``theta`` takes ``num_theta`` equally spaced
    angles from 0 to ``theta_max`` inclusive.

    Parameters
    ----------
    alpha_max : float, default 2.0
        Largest ``n / D``, > 0.
    num_alpha : int, default 400
        Number of alpha values, in [1, :data:`MAX_POINTS`].
    num_theta : int, default 300
        Number of theta values, in [2, :data:`MAX_POINTS`]; at most :data:`MAX_GRID` points
        in all.
    theta_max : float, default pi/2
        Largest angle in radians, in (0, pi].

    Returns
    -------
    alpha : ndarray (num_alpha,)
    theta : ndarray (num_theta,)
    """
    _single("alpha_max", alpha_max)
    _single("theta_max", theta_max)
    alpha_max = float(v.real_array("alpha_max", alpha_max, low=0.0, low_open=True))
    theta_max = float(v.real_array("theta_max", theta_max, low=0.0, high=np.pi, low_open=True))
    num_alpha = v.integer("num_alpha", num_alpha, low=1, high=MAX_POINTS)
    num_theta = v.integer("num_theta", num_theta, low=2, high=MAX_POINTS)
    if num_alpha * num_theta > MAX_GRID:
        raise ValueError(
            f"num_alpha * num_theta must be at most {MAX_GRID:,} grid points; got "
            f"{num_alpha} * {num_theta} = {num_alpha * num_theta:,}"
        )
    alpha = alpha_max * np.arange(1, num_alpha + 1) / num_alpha
    theta = np.linspace(0.0, theta_max, num_theta)
    return alpha, theta


def _coordinate(name: str, values, default: np.ndarray) -> np.ndarray:
    if values is None:
        return default
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array; got shape {arr.shape}")
    return arr


def phase_diagram(method, sigma, *, lam=None, variant=None, alpha=None, theta=None, dim=None):
    r"""Transferability of one transfer method over an (alpha, theta) grid, eq. (7).

    Evaluates :func:`featurefate.theory.transferability` (eq. 13 for linear transfer, eqs.
    (14)-(15) for ridge, eq. (17) for fine-tuning) together with the two errors it compares,
    scratch training (eq. 10) and the transferred model (eqs. 12, 14-15 or 16). For fine-tuning
    ``T`` is 0 for every :math:`\alpha \ge 1`, also at :math:`\alpha = 1` where both errors are
    infinite, so ``T`` is not always the difference of the stored errors there.

    Parameters
    ----------
    method : {"linear", "ridge", "finetune"}
    sigma : float
        Label-noise standard deviation, >= 0.
    lam : float, optional
        Ridge penalty, required for (and only for) ``method="ridge"``.
    variant : {"paper", "exact"}, optional
        Fine-tuning endpoint, for ``method="finetune"`` only; default ``"paper"``.
    alpha : array-like (num_alpha,), optional
        ``n / D`` values; default the alpha of :func:`grid`.
    theta : array-like (num_theta,), optional
        Angles in radians; default the theta of :func:`grid`.
    dim : int, optional
        Input dimension D for the exact finite-size forms; default the limit D -> infinity.

    Returns
    -------
    xarray.Dataset
        ``theory_transferability`` and ``theory_transfer_error`` with dims ``(alpha, theta)``,
        ``theory_scratch_error`` with dim ``alpha``; ``attrs`` hold the package version, the
        method, ``sigma``, ``lam`` (ridge), ``variant`` (fine-tuning), ``dim`` (when given), the
        teacher norms and depth, ``limit`` and a ``description`` of the equation shown.

    Raises
    ------
    ValueError
        For an unknown method or variant, out-of-range values, options that do not apply to
        the method, or with ``dim`` an ``alpha`` below one sample (``alpha * dim < 1``).
    """
    default_alpha, default_theta = grid()
    alpha = _coordinate("alpha", alpha, default_alpha)
    theta = _coordinate("theta", theta, default_theta)
    _single("sigma", sigma)
    if lam is not None:
        _single("lam", lam)
    variant = _resolve_variant(method, variant)
    _sample_count_at_least_one(alpha, dim)
    a, t = alpha[:, None], theta[None, :]
    shape = (alpha.size, theta.size)
    transferability = theory.transferability(method, a, t, sigma, lam=lam, variant=variant, dim=dim)
    transfer = _transfer_error(method, a, t, sigma, lam=lam, variant=variant, dim=dim)
    scratch = theory.scratch_error(alpha, sigma, dim=dim)

    unitless = {"units": "1"}
    error_units = {"units": "|beta_t|^2"}
    attrs = {
        "featurefate_version": featurefate.__version__,
        "method": method,
        "sigma": float(sigma),
    }
    if lam is not None:
        attrs["lam"] = float(lam)
    if variant is not None:
        attrs["variant"] = variant
    if dim is not None:
        attrs["dim"] = int(dim)
    attrs |= {
        "source_norm": _SOURCE_NORM,
        "target_norm": _TARGET_NORM,
        "depth": _DEPTH,
        "limit": "finite D" if dim is not None else "D -> infinity",
        "description": _description(method, variant, dim is not None),
    }
    return xr.Dataset(
        data_vars={
            "theory_transferability": (
                ("alpha", "theta"),
                np.broadcast_to(transferability, shape).copy(),
                {"long_name": "transferability T = R_scratch - R_transfer, eq. (7)"} | error_units,
            ),
            "theory_scratch_error": (
                ("alpha",),
                np.asarray(scratch, dtype=np.float64),
                {"long_name": "expected scratch-training generalization error, eq. (10)"}
                | error_units,
            ),
            "theory_transfer_error": (
                ("alpha", "theta"),
                np.broadcast_to(transfer, shape).copy(),
                {"long_name": _TRANSFER_LONG_NAME[method]} | error_units,
            ),
        },
        coords={
            "alpha": (
                "alpha",
                alpha,
                {"long_name": "samples per dimension alpha = n / D"} | unitless,
            ),
            "theta": (
                "theta",
                theta,
                {"long_name": "angle between source and target teachers", "units": "rad"},
            ),
        },
        attrs=attrs,
    )


def phase_stem(method, sigma, *, lam=None, variant=None, dim=None) -> str:
    """A file-name stem naming a phase diagram's configuration.

    Examples: ``phase_linear_sigma0.2``, ``phase_ridge_sigma0.2_lam0.1``,
    ``phase_finetune-exact_sigma0.2``, ``phase_linear_sigma0_dim500``. Fine-tuning always names
    its variant (``paper`` when none is given).
    """
    variant = _resolve_variant(method, variant)
    name = f"{method}-{variant}" if variant is not None else str(method)
    stem = f"phase_{name}_sigma{float(sigma):g}"
    if lam is not None:
        stem += f"_lam{float(lam):g}"
    if dim is not None:
        stem += f"_dim{int(dim)}"
    return stem


def theory_point(method, alpha, theta, sigma, *, lam=None, variant=None, dim=None) -> dict:
    r"""All the theory has to say about one (method, alpha, theta, sigma) point.

    Parameters
    ----------
    method : {"linear", "ridge", "finetune"}
    alpha, theta, sigma : float
        ``n / D`` (> 0), the angle in radians ([0, pi]) and the label noise (>= 0).
    lam, variant, dim
        As in :func:`phase_diagram`.

    Returns
    -------
    dict
        The inputs (``variant`` resolved to ``"paper"`` for fine-tuning), ``limit``, and the
        floats ``scratch_error`` (eq. 10), ``transfer_error`` and ``transferability`` (eq. 7);
        non-finite values stay ``inf`` or ``nan``. For ``linear`` also ``negative_transfer``:
        the limit regions of :func:`featurefate.theory.negative_transfer_regions` at this theta
        and sigma (``alpha_lower``, ``alpha_upper``, NaN when the interval below 1 is empty,
        ``alpha_threshold``) and ``is_negative`` at this alpha. For ``finetune`` also
        ``break_even_angle`` (radians) and ``break_even_angle_deg`` of the variant at this alpha
        and sigma (:func:`featurefate.theory.finetune_break_even_angle`, NaN for alpha >= 1).
    """
    for name, value in (("alpha", alpha), ("theta", theta), ("sigma", sigma), ("lam", lam)):
        if value is not None:
            _single(name, value)
    variant = _resolve_variant(method, variant)
    transferability = theory.transferability(
        method, alpha, theta, sigma, lam=lam, variant=variant, dim=dim
    )
    _sample_count_at_least_one(alpha, dim)
    _whole_sample_count(alpha, dim)
    out = {
        "method": method,
        "alpha": float(alpha),
        "theta": float(theta),
        "sigma": float(sigma),
        "lam": None if lam is None else float(lam),
        "variant": variant,
        "dim": None if dim is None else int(dim),
        "limit": "finite D" if dim is not None else "D -> infinity",
        "scratch_error": float(theory.scratch_error(alpha, sigma, dim=dim)),
        "transfer_error": float(
            _transfer_error(method, alpha, theta, sigma, lam=lam, variant=variant, dim=dim)
        ),
        "transferability": float(transferability),
    }
    if method == "linear":
        regions = theory.negative_transfer_regions(theta, sigma)
        out["negative_transfer"] = {
            "limit": "D -> infinity",
            "alpha_lower": float(regions.alpha_lower),
            "alpha_upper": float(regions.alpha_upper),
            "alpha_threshold": float(regions.alpha_threshold),
            "is_negative": bool(regions.is_negative(alpha)),
        }
    elif method == "finetune":
        angle = float(theory.finetune_break_even_angle(alpha, sigma, variant=variant))
        out["break_even_angle"] = angle
        out["break_even_angle_deg"] = float(np.degrees(angle))
    return out
