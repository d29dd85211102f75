"""``featurefate verify STORE``: is a result store whole, and how far has its sweep got?

:func:`verify_store` reads a store as the sweep left it and checks that

- it is a featurefate store whose identity (the sweep config it records) is consistent with
  the attributes it carries (experiment, root seed, config) and names a known experiment;
- its ``done`` array and its axis coordinates match the recorded grid;
- every array is readable, and every result variable spans the grid;
- every finished cell is complete: its wall time is recorded, and (in stores that write every
  cell's chunk, :data:`featurefate.sweep.store.CHUNKS_ATTR`) each variable has its chunk.

It counts the finished cells and the half-written ones (values written, not marked done: a
sweep stopped while writing them; ``--resume`` computes them again), and names the sweep that
writes the store now, if any (:mod:`featurefate.sweep.lock`).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from featurefate import experiments, schema
from featurefate._text import count
from featurefate.sweep.lock import describe, holder_if_locked
from featurefate.sweep.runner import WALL_TIME
from featurefate.sweep.store import (
    _MERGED,
    CHUNKS_ATTR,
    partial_note,
    read_done,
    read_sweep_config,
)

_READ_ERRORS = (
    OSError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    zarr.errors.BaseZarrError,
)


@dataclass
class StoreCheck:
    """What :func:`verify_store` found."""

    path: Path
    experiment: str = ""
    total: int = 0
    """Cells in the grid."""
    finished: int = 0
    """Cells marked done."""
    half_written: int = 0
    """Cells with values but not marked done (recomputed by ``--resume``)."""
    variables: int = 0
    """Result variables."""
    problems: list[str] = field(default_factory=list)
    writer: dict | None = None
    """The holder of the store's lock when a sweep writes it now."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """The report: one line of counts, then one per problem or note."""
        out = [
            f"{self.path}: {self.experiment or 'unknown experiment'}, {self.finished} of "
            f"{self.total} cells finished, {self.half_written} half-written, "
            f"{self.variables} result variables, "
            + ("no problems" if self.ok else count(len(self.problems), "problem"))
        ]
        out += [f"problem: {problem}" for problem in self.problems]
        if self.writer is not None:
            out.append(f"note: a sweep writes it now ({describe(self.writer)}); counts may move")
        if self.half_written:
            out.append(
                f"note: {count(self.half_written, 'cell')} were being written when a sweep stopped; "
                "--resume computes them again"
            )
        if self.ok and self.finished < self.total:
            out.append(f"note: {partial_note(self.path, self.finished, self.total)}")
        return out


def _scan_chunks(folder: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The chunk files of a variable's folder (keys ``i.j.k[.0...]``) over the grid ``shape``:
    ``(present, size)``, a boolean mask and each file's size in bytes (-1 where absent).

    One listing of the folder (no chunk is decoded): 200 000 cells in well under a second.
    """
    present = np.zeros(shape, dtype=bool)
    size = np.full(shape, -1, dtype=np.int64)
    naxes = len(shape)
    if not folder.is_dir():
        return present, size
    with os.scandir(folder) as entries:
        for entry in entries:
            parts = entry.name.split(".")
            if entry.name.startswith(".") or len(parts) < naxes:
                continue
            try:
                index = tuple(int(p) for p in parts[:naxes])
                present[index] = True
                size[index] = entry.stat().st_size
            except (ValueError, IndexError, OSError):
                continue
    return present, size


def _plain_chunk_bytes(array) -> int | None:
    """The size of every chunk file of ``array`` when it is stored uncompressed one cell per
    chunk (as a store writes its variables), else ``None``."""
    meta = array.metadata
    if getattr(meta, "zarr_format", None) != 2 or getattr(meta, "compressor", 1) is not None:
        return None
    if getattr(meta, "filters", None) or array.dtype.kind not in "fiub":
        return None
    return int(np.prod(array.chunks, dtype=np.int64)) * array.dtype.itemsize


def _read_cells(array, cells: np.ndarray) -> np.ndarray:
    """The values of ``array`` at the grid indices ``cells`` (rows), reading only their chunks."""
    if not len(cells):
        return np.empty((0, *array.shape[cells.shape[1] :]), dtype=array.dtype)
    return np.asarray(array.vindex[tuple(cells.T)])


def _schema_problems(path: Path, experiment: str) -> list[str]:
    """The store's variables against :mod:`featurefate.schema`: missing, extra, wrong dims."""
    try:
        ds = xr.open_zarr(str(path), consolidated=False, chunks=None)
    except _READ_ERRORS as err:
        return [f"the store cannot be opened as a dataset ({type(err).__name__}: {err})"]
    try:
        schema.check(experiment, ds)
    except schema.SchemaError as err:
        items = str(err).split(": ", 1)[-1].split("; ")
        missing = [i.removeprefix("missing ") for i in items if i.startswith("missing ")]
        lines = [f"featurefate.schema: {i}" for i in items if not i.startswith("missing ")]
        if missing:
            lines.insert(0, f"variables of featurefate.schema missing: {', '.join(missing)}")
        return lines
    return []


def verify_store(path) -> StoreCheck:
    """Check a store's integrity and count its cells (see the module docstring).

    Raises
    ------
    StoreError
        ``no such store: PATH``, or ``PATH is not a featurefate result store``.
    """
    with warnings.catch_warnings():
        # an array whose .zarray is gone is a warning to zarr; verify reports it as missing
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        return _verify(Path(path))


def _verify(path: Path) -> StoreCheck:
    stored = read_sweep_config(path)
    check = StoreCheck(path)
    problems = check.problems
    check.writer = holder_if_locked(path)
    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)

    # identity
    check.experiment = str(stored.get("experiment", ""))
    try:
        experiments.get(check.experiment)
    except ValueError as err:
        problems.append(f"the recorded experiment is unknown ({err})")
    if attrs.get("experiment") != stored.get("experiment"):
        problems.append(
            f"config identity: the store's experiment attribute is {attrs.get('experiment')!r}, "
            f"its sweep config says {stored.get('experiment')!r}"
        )
    if attrs.get("root_seed") != stored.get("seed"):
        problems.append(
            f"config identity: the store's root_seed attribute is {attrs.get('root_seed')!r}, "
            f"its sweep config says {stored.get('seed')!r}"
        )
    try:
        config_attr = json.loads(attrs.get("config", "null"))
    except (TypeError, ValueError):
        config_attr = None
    if config_attr != stored.get("config"):
        problems.append(
            "config identity: the store's config attribute differs from its sweep config"
        )
    grid = stored.get("grid")
    if not isinstance(grid, dict) or not grid:
        problems.append("config identity: the sweep config records no grid")
        return check
    check.total = int(np.prod([len(values) for values in grid.values()]))

    # the done array and the axes (in the done array's order: the identity sorts its keys)
    try:
        done_array = group["done"]
        done = read_done(path)
        axes = tuple(done_array.attrs.get("_ARRAY_DIMENSIONS", ()))
    except _READ_ERRORS as err:
        problems.append(f"the done array is missing or unreadable ({type(err).__name__})")
        return check
    if sorted(axes) != sorted(grid):
        problems.append(f"the done array spans {axes}, the grid {tuple(grid)}")
        return check
    shape = tuple(len(grid[axis]) for axis in axes)
    if done.shape != shape:
        problems.append(f"the done array has shape {done.shape}, the grid {shape}")
        return check
    check.finished = int(done.sum())
    for axis, values in grid.items():
        try:
            coord = np.asarray(group[axis][...])
        except _READ_ERRORS:
            problems.append(f"the coordinate {axis} is missing or unreadable")
            continue
        if coord.shape != (len(values),) or not np.array_equal(coord, np.asarray(values)):
            problems.append(f"the coordinate {axis} differs from the recorded grid")

    # the result variables: over the grid, complete in every finished cell; one listing of
    # each variable's folder, and only finished cells read (a 200 000-cell store in seconds)
    strict = bool(attrs.get(CHUNKS_ATTR, False))
    finished = np.argwhere(done)
    written = np.zeros(shape, dtype=bool)
    names = [n for n in group.array_keys() if n not in (*axes, "done") and n != _MERGED]
    for name in sorted(names):
        try:
            array = group[name]
            dims = tuple(array.attrs.get("_ARRAY_DIMENSIONS", ()))
        except _READ_ERRORS as err:
            problems.append(f"variable {name} is unreadable ({type(err).__name__})")
            continue
        if dims[: len(axes)] != axes:
            continue  # a coordinate of the cells' own dims (instance, lam, ...)
        check.variables += 1
        if tuple(array.shape[: len(axes)]) != shape:
            problems.append(f"variable {name} has shape {array.shape}, not over the grid {shape}")
            continue
        present, size = _scan_chunks(path / name, shape)
        written |= present
        expected = _plain_chunk_bytes(array)
        if expected is not None:
            bad = present & (size != expected)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                problems.append(
                    f"variable {name} is unreadable in {int(bad.sum())} cells (a chunk of "
                    f"{int(size[first])} bytes, not {expected}), the first at "
                    f"({_where(axes, grid, first)})"
                )
                continue
        missing = done & ~present
        if strict and missing.any():
            first = tuple(int(i) for i in np.argwhere(missing)[0])
            problems.append(
                f"variable {name} lacks {count(int(missing.sum()), 'finished cell')}, the first at "
                f"({_where(axes, grid, first)})"
            )
        if expected is not None and name != WALL_TIME:
            continue  # every chunk has its size: readable
        try:
            values = _read_cells(array, finished)
        except _READ_ERRORS as err:
            problems.append(f"variable {name} is unreadable ({type(err).__name__}: {err})")
            continue
        if name == WALL_TIME and len(finished):
            bad_times = int((~np.isfinite(values) | (values <= 0)).sum())
            if bad_times:
                problems.append(f"{count(bad_times, 'finished cell')} without a recorded wall time")
    if check.finished and not check.variables:
        problems.append(f"{count(check.finished, 'cell')} marked finished but no result is stored")
    if check.variables and check.experiment in experiments.FAMILIES:
        problems += _schema_problems(path, check.experiment)
    check.half_written = int((written & ~done).sum())
    return check


def _where(axes, grid, index) -> str:
    return ", ".join(f"{a}={grid[a][i]:g}" for a, i in zip(axes, index, strict=True))
