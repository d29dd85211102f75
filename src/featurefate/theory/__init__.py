"""Closed-form theory: NumPy and SciPy only.

``featurefate.theory.linear`` holds Section 3 of the paper (deep linear networks).
"""

from featurefate.theory.linear import (
    FINETUNE_VARIANTS,
    METHODS,
    NegativeTransferRegions,
    finetune_break_even_angle,
    finetune_error,
    finetune_scale,
    finetune_transferability_finite_source,
    linear_transfer_error,
    negative_transfer_regions,
    ridge_transfer_error,
    scratch_error,
    solve_finetune_scale,
    transferability,
)

__all__ = [
    "FINETUNE_VARIANTS",
    "METHODS",
    "NegativeTransferRegions",
    "finetune_break_even_angle",
    "finetune_error",
    "finetune_scale",
    "finetune_transferability_finite_source",
    "linear_transfer_error",
    "negative_transfer_regions",
    "ridge_transfer_error",
    "scratch_error",
    "solve_finetune_scale",
    "transferability",
]
