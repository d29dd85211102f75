"""Closed-form theory: NumPy and SciPy only.

``featurefate.theory.linear`` holds Section 3 of the paper (deep linear networks);
``featurefate.theory.discrepancy`` the distances between the source and target joints of
Section 2.1 (KL, W2, the Theorem 2.2 family).
"""

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
