"""Input validation shared by the public API.

Every check raises ``ValueError`` with one line that names the parameter, the offending value
and the valid range, so that the CLI can print it as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral

import numpy as np


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open or low == -np.inf else "["
    right = ")" if high_open or high == np.inf else "]"

    def fmt(v: float) -> str:
        if v == np.pi:
            return "pi"
        if np.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:g}"

    return f"{left}{fmt(low)}, {fmt(high)}{right}"


def real_array(
    name: str,
    value: object,
    *,
    low: float = -np.inf,
    high: float = np.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> np.ndarray:
    """Return ``value`` as a float64 array, every element finite and inside the interval.

    Raises
    ------
    ValueError
        Naming ``name``, the first offending value and the valid interval.
    """
    interval = _interval(low, high, low_open, high_open)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number in {interval}; got {value!r}") from None
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(arr)
        ok &= (arr > low) if low_open else (arr >= low)
        ok &= (arr < high) if high_open else (arr <= high)
    if not np.all(ok):
        bad = arr[~ok].flat[0] if arr.ndim else arr.item()
        raise ValueError(f"{name} must be a finite number in {interval}; got {bad:g}")
    return arr


def integer(
    name: str, value: object, *, low: int, high: int | None = None, allow_none: bool = False
) -> int | None:
    """Return ``value`` as a Python int ``>= low`` and, with ``high``, ``<= high`` (or ``None``
    when allowed)."""
    if value is None and allow_none:
        return None
    valid = f">= {low}" if high is None else f"in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, Integral | np.integer):
        if isinstance(value, float | np.floating) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer {valid}; got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {valid}; got {value}")
    return int(value)


def choice(name: str, value: object, options: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``options``."""
    options = tuple(options)
    if value not in options:
        valid = ", ".join(repr(o) for o in options)
        raise ValueError(f"{name} must be one of {valid}; got {value!r}")
    return str(value)


def all_finite(a: np.ndarray) -> bool:
    """``np.all(np.isfinite(a))`` for a float array, without its boolean temporary.

    A sum of squares is finite only if every term is (NaN and inf propagate, and the terms
    cannot cancel), so one BLAS dot product decides; only when it overflows (entries beyond
    ~1e154) are the entries checked one by one.
    """
    flat = a.ravel()
    with np.errstate(over="ignore", invalid="ignore"):
        squares = flat @ flat
    return bool(np.isfinite(squares)) or bool(np.all(np.isfinite(a)))


def data(X: object, y: object, *, batched: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return a data set ``X`` of shape (..., n, D) and labels ``y`` of shape (..., n) as float64.

    With ``batched`` the shapes must be exactly (K, n, D) and (K, n). Both must be finite.
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if batched and X.ndim != 3:
        raise ValueError(f"X must have shape (K, n, D), instances first; got {X.shape}")
    if X.ndim < 2 or y.shape != X.shape[:-1]:
        raise ValueError(
            f"X must have shape (..., n, D) and y shape (..., n); got {X.shape} and {y.shape}"
        )
    if not (all_finite(X) and all_finite(y)):
        raise ValueError("X and y must be finite; got NaN or inf")
    return X, y


def scalar_or_array(x: np.ndarray) -> np.ndarray | np.float64:
    """NumPy's convention: 0-d results come back as scalars."""
    return x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x
