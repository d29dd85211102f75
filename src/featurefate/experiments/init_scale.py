r"""Beyond the paper: how small must the init be for the rank-one theory to hold?

The proofs of Section 3 assume a vanishing init (assumption (22), the feature-learning regime):
pretraining then makes the hidden features rank one (Theorem 3.4) and every transfer endpoint is
a function of :math:`\beta_s` alone. This experiment pretrains from the authors' random Gaussian
init (``init = "random"``, dense engine) at init scales :math:`\gamma` from the paper's 1e-5 up
to order 1 (the lazy regime) and runs the deep linear transfer protocols of
:mod:`featurefate.experiments.linear_phase` unchanged at each, against the rank-one theory
(:func:`featurefate.theory.linear.transferability`, finite-D forms at the simulated D, both
fine-tuning endpoints).

One cell is an (alpha, theta, sigma) point; inside it every init scale trains **the same
instances** (teachers, data) from **the same Gaussian draws** multiplied by :math:`\gamma`, so
the change with :math:`\gamma` is measured paired, free of the instance-to-instance spread
(:func:`departures`).

Choices, stated:

- **Scratch training uses the same init scale as pretraining** (the fair comparison: one
  network, one init, with or without the source). Its error is compared with the theory of
  scratch training, eq. (10), as well: a large init leaves its component outside the data's
  row space, :math:`|w_0|^2 \sim D \gamma^{2L}`, in the scratch endpoint too, so T can stay near
  its theory while both errors leave theirs.
- **Linear transfer** keeps the convention of ``linear_phase``: the refit uses the feature
  directions with singular value above ``rcond`` times the largest. Once :math:`s_2/s_1` passes
  ``rcond`` (at L = 2 from :math:`\gamma \approx` rcond / 2), the init's residual directions
  count as features, and the refit is no longer on one learned feature: the rank-one theory of
  linear transfer stops there, whatever the endpoints of the other protocols do.
- **Fine-tuning** trains every layer from the pretrained weights (the ``linear_phase`` step rule).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass

import numpy as np
import xarray as xr

import featurefate
from featurefate import _validation as v
from featurefate import schema
from featurefate.experiments import linear_phase
from featurefate.experiments._stats import mean_and_stderr
from featurefate.experiments.linear_phase import LinearPhaseConfig

CELL_AXES = linear_phase.CELL_AXES
"""One cell per (alpha, theta, sigma); the init scales are computed inside each cell."""

METHODS = ("linear", "finetune_paper", "finetune_exact")
"""Simulated transferabilities compared with theory: linear transfer, and fine-tuning against
the paper's endpoint (eq. 16) and the corrected one (docs/theory.md)."""

ATOL = 1e-3
"""Agreement allows 3 standard errors plus this (the accuracy of the trained endpoints)."""


@dataclass(frozen=True)
class InitScaleConfig(LinearPhaseConfig):
    """The ``linear_phase`` parameters, with a tuple of init scales and the random init.

    Every field but ``init_scale`` and ``init`` means what it means in
    :class:`~featurefate.experiments.linear_phase.LinearPhaseConfig`; ``lam`` defaults to none
    (ridge is not part of this question).
    """

    init_scale: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    init: str = "random"
    lam: tuple[float, ...] = ()

    def __post_init__(self):
        super().__post_init__()
        scales = v.real_array("init_scale", list(self.init_scale), low=0.0, low_open=True)
        if scales.size < 1 or np.any(np.diff(scales) <= 0):
            raise ValueError(
                f"init_scale must be increasing, at least one value; got {list(self.init_scale)}"
            )
        if self.init == "rank_one":
            raise ValueError(
                "init must be 'random' or 'balanced'; got 'rank_one' (rank one by "
                "construction: s2/s1 = 0 at every scale)"
            )

    def at_scale(self, init_scale: float) -> LinearPhaseConfig:
        """The ``linear_phase`` config of one init scale."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(LinearPhaseConfig)}
        return LinearPhaseConfig(**{**fields, "init_scale": float(init_scale)})


def check_cell(config: InitScaleConfig, cell: dict) -> tuple[float, float, float]:
    """Validate one cell's ``alpha``, ``theta`` and ``sigma`` (as ``linear_phase`` does)."""
    return linear_phase.check_cell(config, cell)


def _same_seed(seq: np.random.SeedSequence) -> np.random.SeedSequence:
    """A fresh copy of ``seq``: spawning from it again gives the same children."""
    return np.random.SeedSequence(seq.entropy, spawn_key=seq.spawn_key, pool_size=seq.pool_size)


def run_cell(config: InitScaleConfig, cell: dict, seed) -> xr.Dataset:
    r"""Every init scale of ``config`` on the same instances of one (alpha, theta, sigma) cell.

    Parameters
    ----------
    config : InitScaleConfig
    cell : dict
        ``alpha``, ``theta``, ``sigma`` as in :func:`featurefate.experiments.linear_phase.run_cell`.
    seed : int or numpy.random.SeedSequence
        The instances and the init draws; the same at every init scale.

    Returns
    -------
    xarray.Dataset
        The variables of :func:`featurefate.experiments.linear_phase.run_cell` with an
        ``init_scale`` dimension (the ``theory_*`` ones, which do not depend on it, without),
        plus ``feature_ratio`` :math:`s_2/s_1` of the pretrained hidden features per instance.
    """
    check_cell(config, cell)
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    cells = [
        linear_phase.run_cell(config.at_scale(scale), cell, _same_seed(seq))
        for scale in config.init_scale
    ]
    ds = xr.concat(
        cells,
        dim=xr.DataArray(np.asarray(config.init_scale, dtype=float), dims="init_scale"),
        data_vars="all",
        coords="minimal",
        compat="override",
        combine_attrs="drop",
    )
    for name in [n for n in ds.data_vars if n.startswith("theory_")]:
        ds[name] = ds[name].isel(init_scale=0, drop=True)
    if not config.lam:  # no ridge penalties: no lam dimension
        ds = ds.drop_vars([n for n in ds.data_vars if "lam" in ds[n].dims]).drop_dims("lam")
    sv = ds.pretrained_singular_values
    ds["feature_ratio"] = sv.isel(rank=1) / sv.isel(rank=0)
    schema.annotate("init_scale", ds)
    ds.attrs.update(
        {
            "featurefate_version": featurefate.__version__,
            "experiment": "init_scale",
            "config": json.dumps(asdict(config)),
            "seed": str(seq.entropy),
            "dim": config.dim,
            "depth": config.depth,
            "init": config.init,
            "rcond": config.rcond,
            "scratch": "trained from the same init scale as pretraining",
            "theory": "rank-one (init -> 0) theory, exact finite-size forms at the simulated dim",
        }
    )
    return ds


def departures(ds: xr.Dataset) -> xr.Dataset:
    r"""Simulation against the rank-one theory at every init scale, per method.

    For each method of :data:`METHODS` (and ``scratch``, as an error): ``diff_<m>`` = simulated
    minus theory (transferability, or scratch error), ``stderr_<m>`` its standard error over the
    instances, ``beyond_<m>`` where :math:`|\mathrm{diff}| > 3\,\mathrm{s.e.} +` :data:`ATOL`;
    and ``shift_<m>``, ``shift_stderr_<m>``: the paired change from the smallest init scale
    (the same instances: its standard error is that of the per-instance changes).
    """
    out = {}
    per_instance = {
        "linear": ds.error_scratch - ds.error_linear,
        "finetune_paper": ds.error_scratch - ds.error_finetune,
        "finetune_exact": ds.error_scratch - ds.error_finetune,
        "scratch": ds.error_scratch,
    }
    theory = {m: ds[schema.transferability_name(m, theory=True)] for m in METHODS}
    theory["scratch"] = ds[schema.theory_error_name("scratch")]
    for name, values in per_instance.items():
        axis = values.get_axis_num("instance")
        mean, se = mean_and_stderr(values.values, axis=axis)
        dims = [d for d in values.dims if d != "instance"]
        diff = xr.DataArray(mean, dims=dims, coords={d: values[d] for d in dims}) - theory[name]
        se = xr.DataArray(se, dims=dims, coords={d: values[d] for d in dims})
        shift_mean, shift_se = mean_and_stderr(
            (values - values.isel(init_scale=0)).values, axis=axis
        )
        out[f"diff_{name}"] = diff
        out[f"stderr_{name}"] = se
        out[f"beyond_{name}"] = np.abs(diff) > 3 * se + ATOL
        out[f"shift_{name}"] = xr.DataArray(shift_mean, dims=dims, coords=diff.coords)
        out[f"shift_stderr_{name}"] = xr.DataArray(shift_se, dims=dims, coords=diff.coords)
    return xr.Dataset(out)


def first_departure(ds: xr.Dataset, name: str, *, paired: bool = False) -> xr.DataArray:
    """Per cell, the smallest init scale at which simulation and theory are apart.

    ``name``: a method of :data:`METHODS` or ``scratch``. Apart: ``beyond_<name>`` of
    :func:`departures` (:math:`|T_{sim} - T_{theory}| > 3` s.e. + :data:`ATOL`); with ``paired``,
    the paired shift from the smallest scale beyond 3 of its s.e. + :data:`ATOL` instead. NaN
    where they are never apart on the grid.
    """
    dep = departures(ds)
    if paired:
        apart = np.abs(dep[f"shift_{name}"]) > 3 * dep[f"shift_stderr_{name}"] + ATOL
    else:
        apart = dep[f"beyond_{name}"]
    apart = apart.transpose(..., "init_scale")
    scales = ds.init_scale.values
    values = np.where(apart.values.any(-1), scales[np.argmax(apart.values, axis=-1)], np.nan)
    dims = apart.dims[:-1]
    return xr.DataArray(values, dims=dims, coords={d: apart[d] for d in dims})
