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

import asyncio
import logging
import multiprocessing
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import (
    CancelledError,
    Executor,
    Future,
    InvalidStateError,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager, suppress

from featurefate import _validation as v
from featurefate.sweep import tls

_SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


MAX_WORKERS_PER_CORE = 4
"""Local worker processes allowed per usable core."""


# Dask's protocols (a typo such as tpc:// is refused at once, not after a time-out)
_PROTOCOLS = ("tcp", "tls", "inproc", "ucx", "ws", "wss")
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


def check_address(address: str) -> str:
    """Return the Dask scheduler address ``address`` if it is ``PROTOCOL://HOST:PORT``.

    ``PROTOCOL`` one of :data:`_PROTOCOLS`; for the network ones a host (a name, an IPv4
    address, or an IPv6 address in brackets) and a port in [1, 65535]. ``inproc://`` addresses
    are left to Dask.

    Raises
    ------
    ValueError
        Naming ``scheduler``, the address and what is wrong with it.
    """
    shape = "an address like tcp://HOST:PORT or tls://HOST:PORT"
    if not isinstance(address, str) or tls.scheme(address) not in _PROTOCOLS:
        raise ValueError(f"scheduler must be {shape}; got {address!r}")
    if tls.scheme(address) == "inproc":
        return address
    location = address.split("://", 1)[1]
    found = re.fullmatch(r"(\[[^\]]*\]|[^:/\[\]]*)(?::([^:/]*))?/?", location)
    if found is None or not found.group(1).strip("[]"):
        raise ValueError(f"scheduler must be {shape} with a host; got {address!r}")
    port = found.group(2)
    if port is None or not port.isdigit() or not 1 <= int(port) <= 65535:
        what = f"port {port}" if port else "no port"
        raise ValueError(
            f"scheduler must be {shape} with a port in [1, 65535]; got {address!r} ({what})"
        )
    return address


def default_workers() -> int:
    """The number of usable cores (the local default)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


class SchedulerUnreachable(ConnectionError):
    """The Dask scheduler did not answer (or refused us) within the connect timeout."""


class ExecutorLost(ConnectionError):
    """The executor stopped mid-sweep: its Dask scheduler is gone, or a local worker process
    died. The cells finished before are kept in the store; the others can be resumed."""


# Dask retries a refused connection until the time-out; what fails at once is the handshake
_HINTS = {
    "tcp": " (a TLS scheduler? then give --scheduler tls://...)",
    "tls": " (a plain tcp:// scheduler, or certificates of another cluster's CA?)",
}


def _reason(err: BaseException) -> str:
    """The first line of the most telling error in ``err``'s chain (Dask wraps the socket's
    error in its own time-out)."""
    while err.__cause__ is not None and str(err).startswith("Timed out trying to connect"):
        err = err.__cause__
    if isinstance(err, TimeoutError | asyncio.TimeoutError) and not str(err):
        return "no answer"
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    # "in <distributed.comm.tcp.TCPConnector object at 0x...>: ConnectionRefusedError: ..."
    text = re.sub(r"^in <[^>]*>: ", "", text)
    return text


def _handshake_failed(err: BaseException) -> bool:
    """Whether ``err`` came from something that listens and answered: not a malformed address,
    an unknown host or a refused connection (where a protocol hint would mislead)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, socket.gaierror | ConnectionRefusedError):
            return False
        if isinstance(err, ValueError | TypeError) and not isinstance(err, OSError):
            return False  # a malformed address (an SSL verification error is both)
        err = err.__cause__ or err.__context__
    return True


async def _probe(address: str, timeout: float, connection_args: dict) -> None:
    from distributed.comm import connect

    comm = await asyncio.wait_for(connect(address, timeout=timeout, **connection_args), timeout)
    await comm.close()


def reach_scheduler(address: str, *, security=None, timeout: float = 10.0) -> None:
    """Open (and close) one connection to the Dask scheduler at ``address``, with Dask's
    handshake, within ``timeout`` seconds.

    Raises
    ------
    SchedulerUnreachable
        ``cannot reach scheduler ADDRESS: REASON (after N s)``: nothing listens there, a
        wrong host, no answer, or a TLS scheduler that refused us (or a plain ``tcp://``
        connection to a TLS scheduler).
    """
    args = {} if security is None else security.get_connection_args("client")
    start = time.monotonic()
    try:
        # in a thread of its own: the caller may be running an event loop (a notebook)
        with ThreadPoolExecutor(1, thread_name_prefix="featurefate-probe") as probe:
            probe.submit(asyncio.run, _probe(address, timeout, args)).result()
    except (TimeoutError, OSError, ValueError, TypeError) as err:
        elapsed = time.monotonic() - start
        after = f"{timeout:g}" if elapsed >= timeout else f"{elapsed:.1f}"
        reason = _reason(err)
        if elapsed < timeout and _handshake_failed(err):  # a wrong protocol?
            reason += _HINTS.get(tls.scheme(address), "")
        raise SchedulerUnreachable(
            f"cannot reach scheduler {address}: {reason} (after {after} s)"
        ) from None


@contextmanager
def _quiet_dask_client() -> Iterator[None]:
    """Silence the Dask client's own log while it runs a sweep: a lost scheduler is reported
    once, as :class:`ExecutorLost`, not as pages of reconnection tracebacks."""
    loggers = [logging.getLogger(name) for name in ("distributed", "distributed.client")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class DaskPool(Executor):
    """A :class:`concurrent.futures.Executor` on a Dask client.

    Unlike Dask's own ``ClientExecutor`` it tells a lost scheduler from a cancelled cell: when
    the client loses its scheduler, Dask cancels every task it had submitted; this pool then
    sets :class:`ExecutorLost` on their futures, and refuses new tasks, so that the sweep stops
    with one clear error. A worker lost mid-cell is Dask's business: the scheduler runs the
    cell again on another worker.
    """

    def __init__(self, client, address: str):
        self._client = client
        self._address = address
        self._pending: dict[Future, object] = {}  # holding a Dask future keeps its task alive
        self._lock = threading.Lock()

    def _lost(self, why: str) -> ExecutorLost:
        return ExecutorLost(f"lost the Dask scheduler {self._address}: {why}")

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if self._client.status != "running":
            raise self._lost(f"the client is {self._client.status}")
        future: Future = Future()
        dask_future = self._client.submit(fn, *args, pure=False, **kwargs)
        with self._lock:
            self._pending[future] = dask_future

        def settle(dask_future) -> None:  # in Dask's callback thread
            with self._lock:
                self._pending.pop(future, None)
            if future.cancelled():
                return
            try:
                outcome, error = dask_future.result(), None
            except CancelledError as err:  # Dask's FutureCancelledError has a reason
                outcome = None
                reason = getattr(err, "reason", None)
                if reason == "scheduler-connection-lost" or self._client.status != "running":
                    error = self._lost("the connection was closed")
                else:
                    error = err
            except Exception as err:
                outcome, error = None, err
            with suppress(InvalidStateError):  # cancelled meanwhile by the driver
                if error is None:
                    future.set_result(outcome)
                else:
                    future.set_exception(error)

        def cancel_task(future: Future) -> None:
            if future.cancelled() and dask_future.status == "pending":
                with suppress(Exception):  # a client already closed has nothing to cancel
                    dask_future.cancel()

        future.add_done_callback(cancel_task)
        dask_future.add_done_callback(settle)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            pending = list(self._pending)
        if cancel_futures:
            for future in pending:
                future.cancel()
        if wait:
            futures_wait(pending)


@contextmanager
def _dask_executor(address: str, *, security, timeout: float) -> Iterator[Executor]:
    from distributed import Client

    reach_scheduler(address, security=security, timeout=timeout)
    with _quiet_dask_client():
        try:
            client = Client(address, security=security, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as err:  # gone between the probe and now
            raise SchedulerUnreachable(
                f"cannot reach scheduler {address}: {_reason(err)} (after {timeout:g} s)"
            ) from None
        pool = DaskPool(client, address)
        try:
            yield pool
            pool.shutdown(wait=True)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            with suppress(Exception):
                client.close(timeout=min(timeout, 5.0))


def check_executor(
    *, workers: int | None = None, scheduler: str | None = None, timeout: float = 10.0
) -> float:
    """Check the arguments of :func:`executor` before anything starts; return the timeout.

    Raises
    ------
    ValueError
        As :func:`executor`.
    """
    timeout = float(v.real_array("connect timeout", timeout, low=0.0, low_open=True))
    if scheduler is not None:
        if workers is not None:
            raise ValueError("give either workers or scheduler, not both")
        check_address(scheduler)
    elif workers is not None:
        v.integer("workers", workers, low=1, high=MAX_WORKERS_PER_CORE * default_workers())
    return timeout


@contextmanager
def executor(
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    security=None,
    timeout: float = 10.0,
) -> Iterator[Executor]:
    """An executor for a sweep, shut down on exit.

    Parameters
    ----------
    workers : int, optional
        Local processes (default: the usable cores). Not with ``scheduler``.
    scheduler : str, optional
        Address of a running Dask scheduler, ``tcp://HOST:PORT`` or ``tls://HOST:PORT``: cells
        run on its workers, which must be able to import featurefate.
    security : distributed.security.Security, optional
        TLS settings for a ``tls://`` scheduler, from
        :func:`featurefate.sweep.tls.cluster_security` (default: from Dask's configuration).
    timeout : float
        Seconds to wait for the scheduler, > 0.

    Raises
    ------
    ValueError
        Both ``workers`` and ``scheduler`` given, a malformed address, or TLS settings that do
        not fit the address.
    SchedulerUnreachable
        The scheduler cannot be reached within ``timeout`` (an ``OSError``).
    """
    timeout = check_executor(workers=workers, scheduler=scheduler, timeout=timeout)
    if scheduler is not None:
        if security is None:
            security = tls.cluster_security(scheduler)
        elif tls.scheme(scheduler) != "tls":
            raise ValueError(f"TLS settings need a tls://HOST:PORT scheduler; got {scheduler!r}")
        with _dask_executor(scheduler, security=security, timeout=timeout) as pool:
            yield pool
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
