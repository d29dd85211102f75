"""Sweeps over parameter grids: configs, per-cell seeds, executors, the driver and the store.

Data flows one way (docs/sweeps.md): ``config -> grid -> cells -> executor -> run_cell -> store``.
The sweep knows nothing about an experiment beyond its ``CELL_AXES`` and ``run_cell``.
"""

from featurefate.sweep.config import (
    ConfigError,
    SweepConfig,
    bundled_configs,
    from_dict,
    load_config,
    resolve_config,
)
from featurefate.sweep.executors import default_workers, executor, local_executor
from featurefate.sweep.runner import CellFailure, SweepReport, run_one, run_sweep
from featurefate.sweep.seeding import cell_seed
from featurefate.sweep.store import (
    ResultStore,
    StoreError,
    export_netcdf,
    open_results,
    read_sweep_config,
)

__all__ = [
    "CellFailure",
    "ConfigError",
    "ResultStore",
    "StoreError",
    "SweepConfig",
    "SweepReport",
    "bundled_configs",
    "cell_seed",
    "default_workers",
    "executor",
    "export_netcdf",
    "from_dict",
    "load_config",
    "local_executor",
    "open_results",
    "read_sweep_config",
    "resolve_config",
    "run_one",
    "run_sweep",
]
