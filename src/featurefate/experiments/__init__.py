"""Experiments: one module per family, each turning a configuration into a labelled dataset.

Every family module defines a frozen config dataclass (validated on construction), a tuple
``CELL_AXES`` naming the coordinates of one cell, and
``run_cell(config, cell, seed) -> xarray.Dataset`` whose result carries each cell axis as a
scalar coordinate. :func:`get` finds a family by name; the sweep machinery knows nothing else
about experiments. Modules are imported on first use, so naming a family costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from types import ModuleType

from featurefate import _validation as v

_FAMILIES = {
    "linear_phase": ("featurefate.experiments.linear_phase", "LinearPhaseConfig"),
    "discrepancy": ("featurefate.experiments.discrepancy", "DiscrepancyConfig"),
    "relu_phase": ("featurefate.experiments.relu_phase", "ReluPhaseConfig"),
    "mechanism": ("featurefate.experiments.mechanism", "MechanismConfig"),
    "init_scale": ("featurefate.experiments.init_scale", "InitScaleConfig"),
}
FAMILIES = tuple(_FAMILIES)
"""Names of the experiment families, as a config's ``experiment`` key spells them."""


@dataclass(frozen=True)
class Experiment:
    """An experiment family: its config class, its cell axes and its ``run_cell``."""

    name: str
    module: ModuleType
    config_class: type

    @property
    def cell_axes(self) -> tuple[str, ...]:
        return tuple(self.module.CELL_AXES)

    def run_cell(self, config, cell: dict, seed):
        return self.module.run_cell(config, cell, seed)


def get(name: str) -> Experiment:
    """The experiment family called ``name`` (one of :data:`FAMILIES`)."""
    name = v.choice("experiment", name, FAMILIES)
    module_name, class_name = _FAMILIES[name]
    module = import_module(module_name)
    return Experiment(name, module, getattr(module, class_name))
