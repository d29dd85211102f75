"""The least memory a simulation holds, to refuse one that cannot fit before it starts.

One estimate serves ``featurefate simulate point`` (its flags) and a sweep's config (its keys):
:func:`linear_bytes` counts the float64 arrays a linear simulation must hold at once;
:func:`sweep_cell_bytes` takes the largest cell of a sweep's grid, per experiment family, and
names the config keys that set it.
"""

from __future__ import annotations

import os

_FLOAT = 8  # bytes of a float64


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or ``None`` where unknown."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not POSIX
        return None


def linear_bytes(
    *, dim: int, depth: int, instances: int, n: float, rank_one: bool = False
) -> float:
    """The least a deep linear simulation holds: per instance the data ``n x D``, the sufficient
    statistics ``D x D`` and, unless the layers are rank one, ``depth`` layers of ``D x D``."""
    layers = 0 if rank_one else depth
    return _FLOAT * instances * (max(1.0, n) * dim + (1 + layers) * dim**2)


def relu_bytes(*, d: int, m: int, k: int, instances: int, n: float, n_test: int) -> float:
    """The least a ReLU teacher-student cell holds: per instance the data ``n x d``, the hidden
    layer ``m x d`` and its activations on the data and test points ``(n + n_test) x m``, and
    the teachers ``k x d``."""
    return _FLOAT * instances * (max(1.0, n) * d + m * d + (n + n_test) * m + k * d)


def sweep_cell_bytes(experiment: str, config, grid: dict) -> tuple[float, list[str]]:
    """Bytes the largest cell of a sweep holds at least, and the config keys that set it.

    Parameters
    ----------
    experiment : str
        The family (``linear_phase``, ``init_scale``, ``mechanism``, ``relu_phase``,
        ``discrepancy``).
    config : dataclass
        The family's config.
    grid : dict of str to sequence of float
        The cell axes' values.

    Returns
    -------
    (float, list of str)
        The bytes, and ``key = value`` for each key that sets them (``fixed.dim = 1200000``).
    """
    fixed = [("dim", "dim"), ("n_instances", "n_instances")]
    if experiment in ("linear_phase", "init_scale", "discrepancy"):
        alpha = max(grid["alpha"])
        n = alpha * config.dim
        rank_one = getattr(config, "init", "") == "rank_one"
        need = linear_bytes(
            dim=config.dim,
            depth=config.depth,
            instances=config.n_instances,
            n=n,
            rank_one=rank_one,
        )
        sources = getattr(config, "alpha_source", ()) or ()
        if sources:
            need += _FLOAT * config.n_instances * max(sources) * config.dim**2
        if experiment == "discrepancy":
            need += _FLOAT * config.n_instances * config.n_samples * config.dim
            fixed.append(("n_samples", "n_samples"))
        keys = [f"fixed.{key} = {getattr(config, name)}" for key, name in fixed]
        keys += [] if rank_one else [f"fixed.depth = {config.depth}"]
        keys.append(f"grid.alpha up to {alpha:g}")
        return need, keys
    if experiment == "mechanism":
        depth = int(max(grid["depth"]))
        need = linear_bytes(dim=config.dim, depth=depth, instances=config.n_instances, n=0)
        keys = [f"fixed.{key} = {getattr(config, name)}" for key, name in fixed]
        return need, [*keys, f"grid.depth up to {depth}"]
    if experiment == "relu_phase":
        n = max(grid["n"])
        need = relu_bytes(
            d=config.d,
            m=config.m,
            k=config.k,
            instances=config.n_instances,
            n=n,
            n_test=config.n_test,
        )
        keys = [f"fixed.{key} = {getattr(config, key)}" for key in ("d", "m", "n_instances")]
        return need, [*keys, f"grid.n up to {n:g}"]
    return 0.0, []
