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
from featurefate.sweep.executors import (
    ExecutorLost,
    SchedulerUnreachable,
    default_workers,
    executor,
    local_executor,
)
from featurefate.sweep.lock import StoreLock, StoreLocked
from featurefate.sweep.runner import CellFailure, SweepReport, check_sweep, run_one, run_sweep
from featurefate.sweep.seeding import cell_seed
from featurefate.sweep.store import (
    ResultStore,
    StoreError,
    cell_counts,
    export_netcdf,
    open_results,
    partial_note,
    read_sweep_config,
    require_cells,
)
from featurefate.sweep.tls import cluster_security
from featurefate.sweep.verify import StoreCheck, verify_store

__all__ = [
    "CellFailure",
    "ConfigError",
    "ExecutorLost",
    "ResultStore",
    "SchedulerUnreachable",
    "StoreCheck",
    "StoreError",
    "StoreLock",
    "StoreLocked",
    "SweepConfig",
    "SweepReport",
    "bundled_configs",
    "cell_counts",
    "cell_seed",
    "check_sweep",
    "cluster_security",
    "default_workers",
    "executor",
    "export_netcdf",
    "from_dict",
    "load_config",
    "local_executor",
    "open_results",
    "partial_note",
    "read_sweep_config",
    "require_cells",
    "resolve_config",
    "run_one",
    "run_sweep",
    "verify_store",
]
