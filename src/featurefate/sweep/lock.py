"""One writer per store: the lock file ``STORE.lock`` beside a store while a sweep writes it.

A sweep holds an exclusive ``flock`` on ``<STORE>.lock`` (the file names the holder: pid, host,
start time and command) from before the store is created or opened until the sweep ends; a
second sweep of the same store is refused with :class:`StoreLocked`, which names the holder.
The kernel drops the ``flock`` when its process dies however it dies, so a lock file left by a
killed sweep is free: the next sweep takes it over and says whose it was. Where ``flock`` is
not available (some network file systems, Windows) the lock falls back to the pid in the file:
a lock of a process on this host that no longer runs is stale and taken over; one of another
host is honoured until its file is removed.

The lock sits beside the store, not in it, so that starting a store afresh (``--overwrite``)
can remove the whole store while holding it.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import socket
import sys
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class StoreLocked(ValueError):
    """Another sweep writes this store now."""


def lock_path(store) -> Path:
    """The lock file of ``store``: ``<store>.lock`` beside it (``.``, ``..`` resolved)."""
    store = Path(store)
    if store.name in ("", ".", ".."):
        store = Path(os.path.abspath(store))
    if not store.name:
        raise ValueError(f"{store} cannot be a store: it has no folder to hold its lock file")
    return store.with_name(store.name + ".lock")


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a reused
    pid from the lock's holder; ``None`` where unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    """Whether process ``pid`` runs on this host and, when ``start`` is known, is the same."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it runs
        pass
    return start is None or _process_start(pid) in (None, start)


def describe(holder: dict) -> str:
    """``pid 123 on host h since 2026-12-02 20:37:02 UTC`` for a lock file's contents."""
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
        f"since {holder.get('started', '?')}"
    )


def read_holder(store) -> dict | None:
    """The contents of ``store``'s lock file (``None`` without one, ``{}`` when unreadable)."""
    try:
        text = lock_path(store).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def holder_if_locked(store) -> dict | None:
    """The holder of ``store``'s lock if a sweep writes it now, else ``None`` (for readers)."""
    path = lock_path(store)
    holder = read_holder(store)
    if holder is None:
        return None
    if fcntl is not None:
        try:
            with open(path, "rb") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return holder
                except OSError:
                    pass  # no flock here: judge by the pid below
                else:
                    return None
        except FileNotFoundError:
            return None
    same_host = holder.get("host") == socket.gethostname()
    pid = holder.get("pid")
    if same_host and isinstance(pid, int) and not _alive(pid, holder.get("process_start")):
        return None
    return holder


class StoreLock:
    """The exclusive lock of one store, held by this process. Use :meth:`acquire`.

    Attributes
    ----------
    path : pathlib.Path
        The lock file.
    taken_over : dict or None
        The holder of a stale lock this one replaced (its process had ended), else ``None``.
    """

    def __init__(self, path: Path, handle, taken_over: dict | None):
        self.path = path
        self._handle = handle
        self.taken_over = taken_over

    @classmethod
    def acquire(cls, store) -> StoreLock:
        """Lock ``store`` for writing (its folder need not exist yet).

        Raises
        ------
        StoreLocked
            Another live process holds the lock; the message names it and the lock file.
        OSError
            The lock file cannot be written (e.g. the folder is read-only).
        """
        path = lock_path(store)
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(path, "a+b")  # noqa: SIM115 - held open for the sweep's duration
            try:
                taken_over = cls._lock(handle, path, store)
                # the file may have been removed (released) between open and lock: retry
                if os.path.exists(path) and os.path.samestat(
                    os.fstat(handle.fileno()), os.stat(path)
                ):
                    break
            except BaseException:
                handle.close()
                raise
            handle.close()
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "process_start": _process_start(os.getpid()),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(me).encode())
        handle.flush()
        return cls(path, handle, taken_over)

    @staticmethod
    def _lock(handle, path: Path, store) -> dict | None:
        """Take the lock on the open file; return the stale holder it replaces, if any."""
        handle.seek(0)
        try:
            previous = json.loads(handle.read().decode() or "null")
        except ValueError:
            previous = {}
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = read_holder(store) or previous or {}
                raise StoreLocked(locked_message(store, holder)) from None
            except OSError as err:
                if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
            else:
                return previous or None  # a file without a lock: its writer has ended
        # no flock: the pid decides
        if previous:
            same_host = previous.get("host") == socket.gethostname()
            pid = previous.get("pid")
            live = isinstance(pid, int) and _alive(pid, previous.get("process_start"))
            if not same_host or live:
                raise StoreLocked(locked_message(store, previous))
        return previous or None

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def locked_message(store, holder: dict) -> str:
    """``STORE is being written by another sweep: pid ... (`command`); wait ... or remove ...``."""
    path = lock_path(store)
    command = holder.get("command")
    running = f" (`{command}`)" if command else ""
    return (
        f"{store} is being written by another sweep: {describe(holder)}{running}; wait for "
        f"it to finish, or if no such sweep runs, remove {path}"
    )
