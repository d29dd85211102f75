"""The one place that configures JAX: float64 on, and a persistent compilation cache.

Import JAX through this module (``from featurefate._jax import jax, jnp``) in simulation code.

**Float64.** Simulations are compared with closed forms to many digits, so ``jax_enable_x64``
is on.

**Compilation cache.** A process compiles every jitted training loop it runs, several seconds
of a short command such as ``featurefate simulate point``. The compiled programs are kept on
disk and reused by later processes (later commands, and every worker of a sweep), in

- ``$FEATUREFATE_JAX_CACHE`` if that variable is set: a directory, or empty or ``0`` to turn
  the cache off;
- otherwise JAX's own ``JAX_COMPILATION_CACHE_DIR`` if that is set;
- otherwise ``$XDG_CACHE_HOME/featurefate/jax``, or ``~/.cache/featurefate/jax`` when
  ``XDG_CACHE_HOME`` is unset.

JAX keys each entry by the program, the JAX/XLA versions, the device and the compiler flags, so
a stale entry is never used; deleting the directory is always safe. A cache that cannot be
written costs only the saving (JAX warns and compiles as usual).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp

CACHE_ENV = "FEATUREFATE_JAX_CACHE"
"""Environment variable naming the compilation cache directory (empty or ``0``: no cache)."""

MIN_COMPILE_SECONDS = 0.0
"""Every program is cached: a simulation compiles ~45, most in well under JAX's default threshold
of 1 s but together seconds, and all of them fit in well under 1 MB."""


def cache_dir(environ=None) -> Path | None:
    """The persistent compilation cache directory that ``environ`` (default ``os.environ``) selects.

    Returns None when ``FEATUREFATE_JAX_CACHE`` is set to an empty string or ``0``.
    """
    environ = os.environ if environ is None else environ
    value = environ.get(CACHE_ENV)
    if value is not None:
        value = value.strip()
        return None if value in ("", "0") else Path(value).expanduser()
    base = environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base).expanduser() if base else Path.home() / ".cache"
    return root / "featurefate" / "jax"


def _configure() -> None:
    jax.config.update("jax_enable_x64", True)
    if CACHE_ENV not in os.environ and jax.config.jax_compilation_cache_dir is not None:
        return  # JAX_COMPILATION_CACHE_DIR chose one already
    path = cache_dir()
    if path is not None:
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


_configure()

__all__ = ["CACHE_ENV", "cache_dir", "jax", "jnp"]
