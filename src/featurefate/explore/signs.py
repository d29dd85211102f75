"""Export the simulated signs of a ``linear_phase`` result store for the explorer page."""

from __future__ import annotations

import json
import math

import numpy as np

SIGN_ATOL = 1e-3
"""|T| below this is not read as a sign (the endpoints' accuracy; as the figures' markers)."""

_STAGES = {"linear": ("scratch",), "ridge": ("scratch",), "finetune": ("scratch", "finetune")}
"""The trained stages whose step limit makes a method's simulated T not its endpoint's."""


def _at_limit(ds, stages):
    names = [f"converged_{stage}" for stage in stages if f"converged_{stage}" in ds]
    if not names:
        return None
    return sum((~ds[name].fillna(True).astype(bool)).any("instance") for name in names) > 0


def store_signs(path) -> dict:
    """The simulated transferabilities of a ``linear_phase`` store, classified by sign.

    A cell is ``-1`` where T < -2 s.e., ``+1`` where T > 2 s.e. (and ``|T| > 1e-3`` for either),
    ``0`` otherwise, and ``"limit"`` where an instance of a trained stage stopped at the step
    limit (its T is not the endpoint's). Cells not done are left out.

    Parameters
    ----------
    path : path
        A result store of the ``linear_phase`` experiment with population pretraining.

    Returns
    -------
    dict
        ``dim``, ``depth``, ``instances``, ``source_norm``, ``target_norm``, the store's ``sigma``
        and ``lam`` values, and ``points``: per method (``linear``, ``ridge``, ``finetune``) a
        list of ``{alpha, theta, sigma[, lam], T, se, sign}``.

    Raises
    ------
    ValueError
        If the store is not a ``linear_phase`` store, or pretrains on finite source data.
    """
    from featurefate.sweep.store import open_results

    ds = open_results(path)
    experiment = ds.attrs.get("experiment")
    if experiment != "linear_phase":
        raise ValueError(f"data must be a linear_phase result store; got experiment {experiment!r}")
    if "alpha_source" in ds.dims:
        raise ValueError(
            "data must pretrain on the source population (the explorer has no finite source "
            f"data); got a store with alpha_source = {ds.alpha_source.values.tolist()}"
        )
    points = {}
    for method, stages in _STAGES.items():
        name = f"transferability_{method}"
        if name not in ds:
            continue
        t, se = ds[name], ds[f"{name}_stderr"]
        limit = _at_limit(ds, stages)
        limit = np.zeros(t.shape, bool) if limit is None else limit.broadcast_like(t).values
        records = []
        for index in np.ndindex(t.shape):
            value, error = float(t.values[index]), float(se.values[index])
            if not math.isfinite(value):
                continue
            coords = {dim: float(t[dim].values[i]) for dim, i in zip(t.dims, index, strict=True)}
            if limit[index]:
                sign = "limit"
            elif abs(value) > SIGN_ATOL and value < -2 * error:
                sign = -1
            elif abs(value) > SIGN_ATOL and value > 2 * error:
                sign = 1
            else:
                sign = 0
            records.append(
                {**coords, "T": value, "se": error if math.isfinite(error) else None, "sign": sign}
            )
        points[method] = records
    config = json.loads(ds.attrs["config"])
    return {
        "dim": int(config["dim"]),
        "depth": int(config["depth"]),
        "source_norm": float(config["source_norm"]),
        "target_norm": float(config["target_norm"]),
        "instances": int(ds.sizes.get("instance", 0)),
        "sigma": [float(x) for x in ds.sigma.values],
        "lam": [float(x) for x in ds.lam.values] if "lam" in ds.coords else [],
        "points": points,
    }
