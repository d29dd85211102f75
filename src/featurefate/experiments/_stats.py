"""Summary statistics over random instances, shared by the experiments."""

from __future__ import annotations

import numpy as np


def mean_and_stderr(values, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Mean over ``axis`` and its standard error ``std(ddof=1) / sqrt(count)``."""
    values = np.asarray(values)
    count = values.shape[axis]
    return values.mean(axis=axis), values.std(axis=axis, ddof=1) / np.sqrt(count)
