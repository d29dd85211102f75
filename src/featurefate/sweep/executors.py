"""Where cells run: a local process pool (the embedded default) or a Dask distributed cluster.

Both are :class:`concurrent.futures.Executor` objects, so the sweep driver sees one interface.
The local pool spawns fresh processes (never forks a process that has started JAX); each holds
its own JAX and compiles each shape once.

Every cell runs with XLA limited to one thread (:func:`single_thread_xla`, applied before JAX
starts in a worker): workers then do not compete for cores, and a cell's floating-point results
do not depend on how many threads its worker had, so 1 worker, N workers and a Dask cluster give
bit-identical numbers. Parallelism comes from running cells side by side.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager

from featurefate import _validation as v

_SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


MAX_WORKERS_PER_CORE = 4
"""Local worker processes allowed per usable core."""

_BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _single_thread_environment(environ) -> None:
    flags = environ.get("XLA_FLAGS", "")
    if _SINGLE_THREAD_XLA not in flags:
        environ["XLA_FLAGS"] = f"{flags} {_SINGLE_THREAD_XLA}".strip()
    for name in _BLAS_THREADS:
        environ.setdefault(name, "1")


def single_thread_xla() -> bool:
    """Limit XLA (and BLAS) to one thread in this process, if JAX has not started yet.

    Returns whether the setting could still take effect. BLAS reads its variable when NumPy is
    first imported, so for BLAS this is only effective in a process that has not imported NumPy;
    :func:`local_executor` therefore also hands the settings to its workers' environment.
    """
    if "jax" in sys.modules:
        return False
    _single_thread_environment(os.environ)
    return True


def _exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """Watch the driver from a daemon thread; end this worker as soon as the driver is gone.

    A process pool's workers otherwise outlive a killed driver and finish their cells (minutes
    at paper scale) for nobody.
    """

    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="featurefate-parent-watch").start()


def _init_worker(parent: int) -> None:
    single_thread_xla()
    _exit_with_parent(parent)


def local_executor(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes, each ending when the driver process ends.

    The workers start with XLA and BLAS limited to one thread: the driver sets the variables of
    :func:`single_thread_xla` in its own environment (where unset), which spawned processes
    inherit. Setting them in the worker is too late for BLAS: unpickling the worker's
    initializer imports NumPy, and with it OpenBLAS, which would then start one thread per
    core in every worker (oversubscribed, its spinning threads made cells up to 10x slower).
    """
    # more processes than cores only slow single-threaded cells down (and each holds a JAX)
    workers = v.integer("workers", workers, low=1, high=MAX_WORKERS_PER_CORE * default_workers())
    _single_thread_environment(os.environ)
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(os.getpid(),),
    )


def default_workers() -> int:
    """The number of usable cores (the local default)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


@contextmanager
def executor(
    *, workers: int | None = None, scheduler: str | None = None, timeout: float = 30.0
) -> Iterator[Executor]:
    """An executor for a sweep, shut down on exit.

    Parameters
    ----------
    workers : int, optional
        Local processes (default: the usable cores). Ignored with ``scheduler``.
    scheduler : str, optional
        Address of a running Dask scheduler, ``tcp://HOST:PORT``: cells run on its workers,
        which must be able to import featurefate.
    timeout : float
        Seconds to wait for the scheduler.

    Raises
    ------
    ValueError
        Both ``workers`` and ``scheduler`` given, or a malformed address.
    OSError
        The scheduler cannot be reached within ``timeout``.
    """
    if scheduler is not None:
        if workers is not None:
            raise ValueError("give either workers or scheduler, not both")
        if "://" not in scheduler:
            raise ValueError(
                f"scheduler must be an address like tcp://HOST:PORT; got {scheduler!r}"
            )
        from distributed import Client

        try:
            client = Client(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise OSError(f"cannot reach the Dask scheduler at {scheduler} ({err})") from None
        try:
            with client.get_executor(pure=False) as pool:
                yield pool
        finally:
            client.close()
        return
    pool = local_executor(default_workers() if workers is None else workers)
    try:
        yield pool
    except BaseException:
        # interrupted or failed: stop the cells in flight rather than wait for them (minutes at
        # paper scale); their results would be lost anyway. (Python >= 3.14 has
        # terminate_workers; before it, the pool's process table is the only handle.)
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        raise
    pool.shutdown(wait=True, cancel_futures=True)
