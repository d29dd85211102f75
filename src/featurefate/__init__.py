"""featurefate: when do pretrained features help? The theory of *Features are fate*, computed.

The public names are re-exported here; see :mod:`featurefate.theory` for the closed forms.
They, and ``__version__``, are resolved on first use (PEP 562), so that importing a module of
the package (the command line, a simulation) loads only what that module needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from featurefate._logme import logme
    from featurefate.diagnosis import diagnose
    from featurefate.theory import (
        finetune_error,
        linear_transfer_error,
        negative_transfer_regions,
        ridge_transfer_error,
        scratch_error,
        transferability,
    )

__all__ = [
    "__version__",
    "diagnose",
    "finetune_error",
    "linear_transfer_error",
    "logme",
    "negative_transfer_regions",
    "ridge_transfer_error",
    "scratch_error",
    "transferability",
]

# the own-data tool (docs/diagnose.md); its module is not named diagnose, so that importing it
# never rebinds featurefate.diagnose from the function to a module
_OWN_DATA = {"diagnose": "featurefate.diagnosis", "logme": "featurefate._logme"}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("featurefate")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        value = _version()
    elif name in _OWN_DATA:
        import importlib

        value = getattr(importlib.import_module(_OWN_DATA[name]), name)
    elif name in __all__:
        from featurefate import theory

        value = getattr(theory, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
