"""featurefate: when do pretrained features help? The theory of *Features are fate*, computed.

The public names are re-exported here; see :mod:`featurefate.theory` for the closed forms.
"""

from importlib.metadata import PackageNotFoundError, version

from featurefate.theory import (
    finetune_error,
    linear_transfer_error,
    negative_transfer_regions,
    ridge_transfer_error,
    scratch_error,
    transferability,
)

try:
    __version__ = version("featurefate")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "finetune_error",
    "linear_transfer_error",
    "negative_transfer_regions",
    "ridge_transfer_error",
    "scratch_error",
    "transferability",
]
