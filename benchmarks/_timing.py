"""Timing helper shared by the benchmark scripts."""

from __future__ import annotations

import time

from featurefate._jax import jax


def best_of(fn, repeats=3):
    """The shortest of ``repeats`` wall times of ``fn()``, its JAX results waited for."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)
