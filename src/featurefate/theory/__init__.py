"""Closed-form theory: NumPy and SciPy only.

``featurefate.theory.linear`` holds Section 3 of the paper (deep linear networks);
``featurefate.theory.discrepancy`` the distances between the source and target joints of
Section 2.1 (KL, W2, the Theorem 2.2 family).

The names below are imported on first use (PEP 562), so that importing the package, or a
module of it, does not load SciPy's statistics (:mod:`.relu`) for a command that never uses it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from featurefate.theory.discrepancy import (
        Theorem22Family,
        bures_wasserstein2,
        joint_covariance,
        kl_divergence,
        theorem22_family,
        wasserstein2,
    )
    from featurefate.theory.linear import (
        FINETUNE_VARIANTS,
        METHODS,
        NegativeTransferRegions,
        finetune_break_even_angle,
        finetune_error,
        finetune_scale,
        finetune_transferability_finite_source,
        finite_source_geometry,
        linear_transfer_error,
        negative_transfer_regions,
        ridge_transfer_error,
        scratch_error,
        solve_finetune_scale,
        transferability,
    )
    from featurefate.theory.relu import (
        PowerLawFit,
        fit_power_law,
        kernel_alignment,
        predicted_boundary,
        relu_kernel,
        rkhs_projection,
    )

_HOME = {
    "bures_wasserstein2": "discrepancy",
    "finetune_break_even_angle": "linear",
    "finetune_error": "linear",
    "finetune_scale": "linear",
    "finetune_transferability_finite_source": "linear",
    "FINETUNE_VARIANTS": "linear",
    "finite_source_geometry": "linear",
    "fit_power_law": "relu",
    "joint_covariance": "discrepancy",
    "kernel_alignment": "relu",
    "kl_divergence": "discrepancy",
    "linear_transfer_error": "linear",
    "METHODS": "linear",
    "negative_transfer_regions": "linear",
    "NegativeTransferRegions": "linear",
    "PowerLawFit": "relu",
    "predicted_boundary": "relu",
    "relu_kernel": "relu",
    "ridge_transfer_error": "linear",
    "rkhs_projection": "relu",
    "scratch_error": "linear",
    "solve_finetune_scale": "linear",
    "theorem22_family": "discrepancy",
    "Theorem22Family": "discrepancy",
    "transferability": "linear",
    "wasserstein2": "discrepancy",
}
"""The module of :mod:`featurefate.theory` that defines each public name."""

__all__ = [
    "FINETUNE_VARIANTS",
    "METHODS",
    "NegativeTransferRegions",
    "PowerLawFit",
    "Theorem22Family",
    "bures_wasserstein2",
    "finetune_break_even_angle",
    "finetune_error",
    "finetune_scale",
    "finetune_transferability_finite_source",
    "finite_source_geometry",
    "fit_power_law",
    "joint_covariance",
    "kernel_alignment",
    "kl_divergence",
    "linear_transfer_error",
    "negative_transfer_regions",
    "predicted_boundary",
    "relu_kernel",
    "ridge_transfer_error",
    "rkhs_projection",
    "scratch_error",
    "solve_finetune_scale",
    "theorem22_family",
    "transferability",
    "wasserstein2",
]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
