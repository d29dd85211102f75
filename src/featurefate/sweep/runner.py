"""The sweep driver: cells out to an executor, finished cells into the store, as they arrive.

Only the driver writes the store. Each cell's seed derives from the root seed and its
coordinates (:func:`featurefate.sweep.seeding.cell_seed`), so a sweep gives the same numbers on
any executor and any number of workers. A cell that raises is reported with its parameters and
error and the others go on; an interrupted sweep keeps every cell finished before the interrupt.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, wait
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from featurefate import experiments
from featurefate._text import count
from featurefate.sweep.config import SweepConfig
from featurefate.sweep.executors import ExecutorLost, single_thread_xla
from featurefate.sweep.lock import (
    StoreLock,
    StoreLocked,
    describe,
    holder_if_locked,
    locked_message,
)
from featurefate.sweep.seeding import cell_seed
from featurefate.sweep.store import ResultStore, StoreError

MAX_IN_FLIGHT = 1000
"""Cells submitted ahead by default: enough to keep a large cluster busy, few enough that
waiting on them stays cheap (100 000 submitted at once took 7 minutes to the first cell)."""
WALL_TIME = "cell_wall_time"
WALL_TIME_NOTE = "seconds the worker spent in run_cell (a measurement, not a result)"


def run_one(experiment: str, config, cell: dict, root_seed: int) -> xr.Dataset:
    """Run one cell of ``experiment`` (the task an executor runs; picklable, pure).

    On a worker where JAX has not started yet (a fresh Dask worker), XLA is first limited to one
    thread, as in the local pool, so that results do not depend on the executor.
    """
    single_thread_xla()
    family = experiments.get(experiment)
    start = time.perf_counter()
    ds = family.run_cell(config, dict(cell), cell_seed(root_seed, cell)).load()
    ds[WALL_TIME] = ((), time.perf_counter() - start, {"units": "s", "long_name": WALL_TIME_NOTE})
    return ds


@dataclass(frozen=True)
class CellFailure:
    """A cell that raised: its coordinates and ``ExceptionType: message``."""

    cell: dict
    error: str

    def describe(self) -> str:
        where = ", ".join(f"{k}={val:g}" for k, val in self.cell.items())
        return f"cell ({where}) failed: {self.error}"


@dataclass
class SweepReport:
    """What a run of :func:`run_sweep` did."""

    total: int
    """Cells in the grid."""
    skipped: int = 0
    """Cells already done in the store (``resume``)."""
    completed: int = 0
    """Cells computed and written by this run."""
    failed: list[CellFailure] = field(default_factory=list)
    interrupted: bool = False
    wall_time: float = 0.0
    messages: list[str] = field(default_factory=list)
    """Notes for the user (a stale lock taken over)."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted


def check_sweep(sweep: SweepConfig, store_path, *, resume: bool = False, overwrite: bool = False):
    """Refuse now what :func:`run_sweep` would refuse once started, changing nothing: a store
    another sweep writes, one that exists (without ``resume`` or ``overwrite``) or belongs to
    another config, or an ``--out`` whose folder cannot be written.

    Raises
    ------
    featurefate.sweep.lock.StoreLocked
    featurefate.sweep.store.StoreError
    """
    holder = holder_if_locked(store_path)
    if holder is not None:
        raise StoreLocked(locked_message(store_path, holder))
    ResultStore.check(store_path, sweep, resume=resume, overwrite=overwrite)
    folder = Path(store_path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"cannot create --out {store_path}: {folder} is not a writable folder")


def _lost(error: BaseException, report: SweepReport, store_path) -> ExecutorLost:
    """The executor's failure as one line that says what the store keeps and how to go on."""
    if isinstance(error, ExecutorLost):
        what = str(error)
    else:  # a local pool whose worker process died (killed, e.g. for want of memory)
        what = f"a local worker process died ({error})"
    kept = report.skipped + report.completed
    return ExecutorLost(
        f"{what}; the store {store_path} keeps its {count(kept, 'finished cell')} of "
        f"{report.total}: "
        "resume with --resume"
    )


def run_sweep(
    sweep: SweepConfig,
    store_path,
    *,
    executor: Executor,
    resume: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    max_in_flight: int | None = None,
    log: Callable[[str], None] | None = None,
) -> SweepReport:
    """Run every cell of ``sweep`` that the store at ``store_path`` does not have yet.

    Parameters
    ----------
    sweep : SweepConfig
    store_path : path
        The Zarr store; created unless ``resume``.
    executor : concurrent.futures.Executor
        From :func:`featurefate.sweep.executors.executor` (local processes or Dask).
    resume : bool
        Reopen an existing store of the same config and skip its done cells.
    overwrite : bool
        Remove an existing store at ``store_path`` (a featurefate store only) and start afresh.
    progress : callable, optional
        ``progress(finished, pending)``: called with 0 first, then after each cell.
    max_in_flight : int, optional
        Submit at most this many cells ahead (default :data:`MAX_IN_FLIGHT`: waiting on every
        cell of a big grid at once costs minutes before the first is written).
    log : callable, optional
        ``log(message)`` for notes as they happen (a stale lock taken over); they are also in
        the report's ``messages``.

    Returns
    -------
    SweepReport
        On an interrupt (``KeyboardInterrupt``) the cells not started are cancelled, the report
        says ``interrupted`` and the exception is not re-raised.

    Raises
    ------
    featurefate.sweep.store.StoreError
        A store that exists without ``resume`` or ``overwrite``, or that belongs to another
        config.
    featurefate.sweep.lock.StoreLocked
        Another sweep writes the store now (the message names it). The lock file
        ``<store_path>.lock`` is held from before the store is opened until the sweep ends.
    featurefate.sweep.executors.ExecutorLost
        The executor stopped working mid-sweep (its Dask scheduler lost, a local worker
        process killed). Every cell that finished before is written first; the message says
        so, and how to resume.
    """
    start = time.perf_counter()
    with StoreLock.acquire(store_path) as lock:
        messages = []
        if lock.taken_over is not None:
            messages.append(
                f"took over the lock of {store_path}: its holder, {describe(lock.taken_over)}, "
                "ended without releasing it"
            )
            if log is not None:
                log(messages[-1])
        report = _run_locked(
            sweep,
            store_path,
            executor=executor,
            resume=resume,
            overwrite=overwrite,
            progress=progress,
            max_in_flight=max_in_flight,
        )
        report.messages[:0] = messages
    report.wall_time = time.perf_counter() - start
    return report


def _run_locked(sweep, store_path, *, executor, resume, overwrite, progress, max_in_flight):
    """:func:`run_sweep` once the store's lock is held."""
    store = ResultStore.open(store_path, sweep, resume=resume, overwrite=overwrite)
    done = store.done()
    todo = [
        (index, cell)
        for index, cell in zip(sweep.indices(), sweep.cells(), strict=True)
        if not done[index]
    ]
    report = SweepReport(total=len(done.flat), skipped=int(done.sum()))
    if progress is not None:
        progress(0, len(todo))
    limit = MAX_IN_FLIGHT if max_in_flight is None else max(1, max_in_flight)
    queue = iter(todo)
    running = {}

    def submit_next() -> bool:
        item = next(queue, None)
        if item is None:
            return False
        index, cell = item
        future = executor.submit(run_one, sweep.experiment, sweep.config, cell, sweep.seed)
        running[future] = (index, cell)
        return True

    lost: BaseException | None = None
    try:
        while len(running) < limit and submit_next():
            pass
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:  # write every finished cell, even after a loss
                index, cell = running.pop(future)
                error = future.exception()
                if isinstance(error, ExecutorLost | BrokenExecutor):
                    lost = error
                    continue
                if error is None:
                    store.write_cell(index, future.result())
                    report.completed += 1
                else:
                    report.failed.append(CellFailure(cell, f"{type(error).__name__}: {error}"))
                if progress is not None:
                    progress(report.completed + len(report.failed), len(todo))
            if lost is not None:
                break
            while len(running) < limit and submit_next():
                pass
    except KeyboardInterrupt:
        report.interrupted = True
        for future in running:
            future.cancel()
    except (ExecutorLost, BrokenExecutor) as error:  # refused a new cell
        lost = error
    if lost is not None:
        for future in running:
            future.cancel()
        raise _lost(lost, report, store_path) from None
    return report
