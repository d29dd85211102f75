"""The result store of a sweep: one Zarr group, written by the driver only, one cell at a time.

Layout (docs/sweeps.md, "The store")::

    STORE/                    a Zarr group; attrs: the sweep config (JSON), version, root seed
      <axis>                  one coordinate per cell axis (alpha, theta, sigma, ...)
      done                    bool over the cell axes: the cell's values are complete
      <variable>              every variable of a cell, with the cell axes prepended

Every array is chunked one cell per chunk, so writing a cell touches only that cell's files. A
cell's values are written first and its ``done`` flag after them: a sweep killed at any moment
leaves every other cell intact and the interrupted one marked not done, to be recomputed on
``--resume``. The data variables are created when the first cell arrives (their shapes come from
``run_cell``); scalar coordinates of a cell that are not axes (``n``) become variables.

While a sweep writes a store it holds ``STORE.lock`` beside it (:mod:`featurefate.sweep.lock`);
:mod:`featurefate.sweep.verify` checks a store's integrity.

:func:`open_results` reads a store back as an :class:`xarray.Dataset` with the cells that are not
done masked to NaN; :func:`export_netcdf` writes that dataset to one NetCDF file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
import zarr

import featurefate
from featurefate.sweep.config import SweepConfig

_SWEEP_ATTR = "featurefate_sweep"
_SOURCE_ATTR = "config_source"
CHUNKS_ATTR = "every_cell_chunk_written"
"""Set in a store whose every finished cell has a chunk file in every variable."""
_CELL_ATTRS_DROPPED = ("seed",)
_VARIABLES_ATTR = "result_variables"
"""The data variables the first cell created (JSON), to tell a deleted one."""


class StoreError(ValueError):
    """A store that cannot be used as asked (exists, belongs to another config, is damaged)."""


def _diff(stored: dict, wanted: dict, prefix: str = "") -> str:
    """The first key at which two config dicts differ, as ``key: store has X, config has Y``."""
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key, "<absent>"), wanted.get(key, "<absent>")
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            return _diff(a, b, f"{prefix}{key}.")
        return f"{prefix}{key}: the store has {json.dumps(a)}, the config has {json.dumps(b)}"
    return ""


def read_sweep_config(path) -> dict:
    """The sweep configuration (canonical dict) a store was made with.

    Raises
    ------
    StoreError
        If ``path`` is not a featurefate store.
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no such store: {path}")
    try:
        group = zarr.open_group(str(path), mode="r")
        return json.loads(group.attrs[_SWEEP_ATTR])
    except (FileNotFoundError, KeyError, ValueError, TypeError, zarr.errors.BaseZarrError):
        raise StoreError(f"{path} is not a featurefate result store") from None


def resume_hint(path) -> str:
    """The command that finishes the store at ``path``: ``featurefate sweep CONFIG --out PATH
    --resume``, with the config the store was made from where it recorded it."""
    return f"featurefate sweep {_stored_source(path) or 'CONFIG'} --out {path} --resume"


def _stored_source(path) -> str:
    """The config a store was made from, as recorded in it (``""`` when not recorded)."""
    with contextlib.suppress(OSError, KeyError, ValueError, zarr.errors.BaseZarrError):
        return str(zarr.open_group(str(path), mode="r").attrs.get(_SOURCE_ATTR, ""))
    return ""


def read_done(path) -> np.ndarray:
    """The ``done`` array of the store at ``path``: which cells are complete.

    Zarr reads one chunk per cell, about 80 us each even where the chunk file is absent (16 s
    for 200 000 cells); a store's ``done`` is uncompressed, one byte per chunk, and a chunk
    file is written only for a finished cell, so the folder's listing and those files give the
    array at once. Any other layout is read through Zarr.

    Raises
    ------
    KeyError, OSError, ValueError, zarr.errors.BaseZarrError
        When the store has no readable ``done`` array.
    """
    path = Path(path)
    array = zarr.open_group(str(path), mode="r")["done"]
    meta = array.metadata
    plain = (
        getattr(meta, "zarr_format", None) == 2
        and array.dtype == np.dtype(bool)
        and array.chunks == (1,) * array.ndim
        and array.ndim > 0
        and getattr(meta, "compressor", 1) is None
        and not getattr(meta, "filters", None)
        and getattr(meta, "dimension_separator", None) == "."
        and array.fill_value in (None, False, 0)
    )
    if not plain:
        return np.asarray(array[...], dtype=bool)
    done = np.zeros(array.shape, dtype=bool)
    with os.scandir(path / "done") as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                index = tuple(int(part) for part in entry.name.split("."))
                with open(entry.path, "rb") as chunk:
                    byte = chunk.read(2)
            except (ValueError, OSError):
                return np.asarray(array[...], dtype=bool)  # not a chunk of this layout
            if len(index) != done.ndim or len(byte) != 1:
                return np.asarray(array[...], dtype=bool)
            done[index] = byte != b"\x00"
    return done


def cell_counts(path) -> tuple[int, int]:
    """``(finished, total)`` cells of the store at ``path``.

    Raises
    ------
    StoreError
        If ``path`` is not a featurefate store.
    """
    read_sweep_config(path)
    try:
        done = read_done(path)
    except (KeyError, OSError, ValueError, IndexError, zarr.errors.BaseZarrError):
        raise StoreError(f"{path} is a damaged store: it has no readable done array") from None
    return int(done.sum()), int(done.size)


def require_cells(path, *, what: str = "") -> tuple[int, int]:
    """``(finished, total)`` of the store at ``path``, which must have a finished cell.

    Raises
    ------
    StoreError
        ``store PATH has 0 of N cells finished; run `featurefate sweep ... --resume```.
    """
    finished, total = cell_counts(path)
    if finished == 0:
        purpose = f" to {what}" if what else ""
        raise StoreError(
            f"store {path} has 0 of {total} cells finished, nothing{purpose}; run "
            f"`{resume_hint(path)}`"
        )
    return finished, total


def partial_note(path, finished: int, total: int) -> str:
    """One line saying what a partial store lacks (empty when every cell is finished)."""
    if finished == total:
        return ""
    return (
        f"store {path} has {finished} of {total} cells finished (the others are NaN); "
        f"finish it with `{resume_hint(path)}`"
    )


class ResultStore:
    """A sweep's store, open for writing by the driver. Use :meth:`open`."""

    def __init__(self, path: Path, sweep: SweepConfig):
        self.path = Path(path)
        self.sweep = sweep
        self._group = zarr.open_group(str(self.path), mode="r+")
        self._arrays: dict = {}  # open array handles: metadata is read once, not per cell

    @classmethod
    def open(
        cls, path, sweep: SweepConfig, *, resume: bool = False, overwrite: bool = False
    ) -> ResultStore:
        """Create the store of ``sweep`` at ``path``, or with ``resume`` reopen it.

        The caller holds the store's lock (:class:`featurefate.sweep.lock.StoreLock`).

        Parameters
        ----------
        overwrite : bool
            Remove a featurefate store (or an empty folder) at ``path`` first and start afresh;
            not with ``resume``.

        Raises
        ------
        StoreError
            ``path`` exists and neither ``resume`` nor ``overwrite`` is given; or it is a
            store of a different config (``resume``); or it exists and is not a featurefate
            store (``resume``, ``overwrite``); or both ``resume`` and ``overwrite``.
        """
        path = Path(path)
        action = cls.check(path, sweep, resume=resume, overwrite=overwrite)
        # killed while being created: nothing in it yet, create it again
        if action != "resume" or "done" not in zarr.open_group(str(path), mode="r").array_keys():
            cls._create(path, sweep)  # removes what is at path first (overwrite)
        return cls(path, sweep)

    @staticmethod
    def check(path, sweep: SweepConfig, *, resume: bool = False, overwrite: bool = False) -> str:
        """What :meth:`open` would do at ``path``, without doing it: ``"create"``,
        ``"resume"`` or ``"overwrite"`` (so a sweep can refuse before it starts anything).

        Raises
        ------
        StoreError
            As :meth:`open`.
        """
        path = Path(path)
        if resume and overwrite:
            raise StoreError("give either --resume or --overwrite, not both")
        exists = path.exists() and (not path.is_dir() or any(path.iterdir()))
        if not exists:
            return "create"
        if overwrite:
            try:  # removes nothing but a featurefate store
                read_sweep_config(path)
            except StoreError:
                raise StoreError(
                    f"{path} is not a featurefate result store, and --overwrite removes only "
                    "one; choose another --out"
                ) from None
            return "overwrite"
        if not resume:
            raise StoreError(
                f"{path} already exists; pass --resume to finish that sweep, --overwrite to "
                "start it afresh, or choose another --out"
            )
        stored = read_sweep_config(path)
        wanted = json.loads(sweep.to_json())
        if stored.get("experiment") != wanted["experiment"]:
            source = _stored_source(path)
            made = f" (made from {source})" if source else ""
            raise StoreError(
                f"{path} holds a {stored.get('experiment')} sweep{made} and the config is a "
                f"{wanted['experiment']} sweep; resume a store with the config it was made "
                "from, start it afresh with --overwrite, or choose another --out"
            )
        if stored != wanted:
            raise StoreError(
                f"{path} was written by a different config ({_diff(stored, wanted)}); "
                "resume it with its own config, start it afresh with --overwrite, or "
                "choose another --out"
            )
        return "resume"

    @staticmethod
    def _create(path: Path, sweep: SweepConfig) -> None:
        if path.is_dir() and not any(path.iterdir()):
            pass  # an empty folder (made for the store, or the working directory): fill it
        elif path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        coords = {axis: np.asarray(values) for axis, values in sweep.grid.items()}
        ds = xr.Dataset(coords=coords)
        ds.attrs.update(
            {
                "featurefate_version": featurefate.__version__,
                "experiment": sweep.experiment,
                "root_seed": sweep.seed,
                "description": sweep.description,
                "config": json.dumps(sweep.to_dict()["config"]),
                "seeding": "each cell's seed: featurefate.sweep.cell_seed(root_seed, cell)",
            }
        )
        ds.to_zarr(str(path), mode="w-", consolidated=False, zarr_format=2)
        group = zarr.open_group(str(path), mode="r+")
        # ``done`` is created empty (no chunk file: every cell not done), one chunk per cell;
        # through xarray this took 28 s for 200 000 cells, one write per chunk
        group.create_array(
            "done",
            shape=sweep.shape,
            chunks=(1,) * len(sweep.axes),
            dtype=bool,
            fill_value=None,
            compressors=None,
            chunk_key_encoding={"name": "v2", "separator": "."},
            attributes={"_ARRAY_DIMENSIONS": list(sweep.axes)},
        )
        group.attrs[_SOURCE_ATTR] = sweep.source
        group.attrs[CHUNKS_ATTR] = 1  # an int: NetCDF has no boolean attributes
        # the identity goes last: a store without it is not a store (killed while creating)
        group.attrs[_SWEEP_ATTR] = sweep.to_json()

    def done(self) -> np.ndarray:
        """Boolean array over the grid: which cells are complete."""
        return read_done(self.path)

    def _create_variables(self, cell: xr.Dataset) -> None:
        axes, shape = self.sweep.axes, self.sweep.shape
        cell = cell.reset_coords([c for c in cell.coords if c not in cell.dims and c not in axes])
        variables = {}
        # one lazy dask chunk per variable, never computed (compute=False writes the metadata
        # only), stored one chunk per cell: a dask chunk per cell made a graph of cells x
        # variables tasks, minutes before the first cell of a 100 000-cell sweep was written
        for name, var in cell.data_vars.items():
            full_shape = shape + var.shape
            fill = np.nan if var.dtype.kind == "f" else 0
            values = da.full(full_shape, fill, dtype=var.dtype, chunks=full_shape)
            variables[name] = xr.Variable(axes + var.dims, values, var.attrs)
        coords = {d: cell[d] for d in cell.dims if d in cell.coords}
        # xarray replaces the group's attrs on append: keep the store's, add the cell's others
        attrs = {k: val for k, val in cell.attrs.items() if k not in _CELL_ATTRS_DROPPED}
        attrs = {
            k: (val.item() if isinstance(val, np.generic) else val) for k, val in attrs.items()
        }
        attrs.update(dict(self._group.attrs))
        attrs[_VARIABLES_ATTR] = json.dumps(sorted(variables))
        template = xr.Dataset(variables, coords=coords, attrs=attrs)
        # a chunk is one cell's few numbers: compressing them costs time and saves nothing
        encoding = {
            name: {"compressors": None, "chunks": (1,) * len(axes) + cell[name].shape}
            for name in variables
        }
        template.to_zarr(
            str(self.path),
            mode="a",
            compute=False,
            consolidated=False,
            encoding=encoding,
            safe_chunks=False,
        )
        self._group = zarr.open_group(str(self.path), mode="r+")

    def write_cell(self, index: tuple[int, ...], cell: xr.Dataset) -> None:
        """Write one finished cell's variables at grid position ``index``, then mark it done."""
        axes = self.sweep.axes
        cell = cell.reset_coords([c for c in cell.coords if c not in cell.dims and c not in axes])
        cell = cell.drop_vars([a for a in axes if a in cell.variables])
        names = list(cell.data_vars)
        if not set(names) <= set(self._arrays):
            if not set(names) <= set(self._group.array_keys()):
                self._create_variables(cell)
            # every cell's chunk is written, also one equal to the fill value (zarr skips
            # those by default), so that `featurefate verify` can tell a missing cell
            with zarr.config.set({"array.write_empty_chunks": True}):
                self._arrays = {name: self._group[name] for name in self._group.array_keys()}
        writes = []
        for name in names:
            target = self._arrays[name]
            values = np.asarray(cell[name].values)
            if values.shape != target.shape[len(axes) :]:
                raise StoreError(
                    f"cell variable {name} has shape {values.shape}, the store expects "
                    f"{target.shape[len(axes) :]}"
                )
            writes.append((target, values.astype(target.dtype, copy=False)))
        for target, values in writes:
            target[index] = values
        self._arrays["done"][index] = True


_MERGED = "merged"
_READ_CONCURRENCY = 64


def _write_netcdf(ds: xr.Dataset, path: Path) -> None:
    """``ds`` as compressed NetCDF, booleans as int8 marked ``dtype = bool`` (decoded back)."""
    ds = ds.copy()
    for name in ds.variables:
        ds[name].encoding = {}
    for name in ds.data_vars:
        if ds[name].dtype == bool:
            ds[name] = ds[name].astype("i1")
            ds[name].attrs["dtype"] = "bool"
    encoding = {name: {"zlib": True} for name in ds.data_vars if ds[name].dtype.kind in "fiu"}
    ds.to_netcdf(path, encoding=encoding)


def _digest(done: np.ndarray) -> str:
    return hashlib.sha1(np.packbits(done.astype(bool)).tobytes()).hexdigest()


def _read_raw(path: Path, done: np.ndarray) -> xr.Dataset:
    """Every array of the store, unmasked, through a cache: the subgroup ``merged``.

    Reading one file per cell and variable is slow (about 1 ms each), so the first read writes
    the whole store once more as the Zarr group ``STORE/merged``, one chunk per variable, keyed
    by a digest of the ``done`` mask: cells never change once done, so the cache is valid
    exactly while the mask is the same. It is written under a temporary name and renamed, so a
    reader never sees half of it; a read-only store is simply read without the cache.
    """
    digest = _digest(done)
    merged = path / _MERGED
    if merged.is_dir():
        try:
            cached = xr.open_zarr(str(path), group=_MERGED, consolidated=False, chunks=None)
            if cached.attrs.get("done_digest") == digest:
                return cached.load()
        except (OSError, ValueError, KeyError, zarr.errors.BaseZarrError):
            pass  # unreadable cache: rebuild it
    with zarr.config.set({"async.concurrency": _READ_CONCURRENCY}):
        ds = xr.open_zarr(str(path), consolidated=False, chunks=None).load()
    ds.attrs["done_digest"] = digest
    tmp = f"{_MERGED}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        for name in ds.variables:
            ds[name].encoding = {}
        ds.to_zarr(str(path), group=tmp, mode="w", consolidated=False, zarr_format=2)
        shutil.rmtree(merged, ignore_errors=True)
        os.replace(path / tmp, merged)
    except OSError:
        shutil.rmtree(path / tmp, ignore_errors=True)
    return ds


def _require_variables(path: Path) -> None:
    """Refuse a store that lacks a result variable: one its first cell created (recorded in
    the store), or, in a store that records none, one of :mod:`featurefate.schema`."""
    group = zarr.open_group(str(path), mode="r")
    present = set(group.array_keys())
    recorded = group.attrs.get(_VARIABLES_ATTR)
    if recorded is not None:
        missing = [name for name in json.loads(recorded) if name not in present]
    elif present - {"done", _MERGED} - set(json.loads(group.attrs[_SWEEP_ATTR]).get("grid", {})):
        from featurefate import schema

        experiment = str(group.attrs.get("experiment", ""))
        try:
            wanted = schema.variables(experiment)
        except ValueError:
            return
        missing = [
            name for name, var in wanted.items() if var.only_with is None and name not in present
        ]
    else:
        return  # no cell written yet
    if missing:
        raise StoreError(
            f"the store {path} lacks the variable {missing[0]}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            + f"; `featurefate verify {path}` says what is damaged"
        )


def open_results(path) -> xr.Dataset:
    """Read a store into memory; cells that are not done are NaN.

    The dataset's ``attrs`` hold the sweep config (``featurefate_sweep``), the version and the root
    seed, plus the attrs of the experiment's cells (``dim``, ``depth``, ...). Repeated reads of an
    unchanged store come from a one-file cache inside it.

    Raises
    ------
    StoreError
        If ``path`` is not a featurefate store.
    """
    path = Path(path)
    read_sweep_config(path)
    try:
        # a damaged array (its .zarray removed) is a warning to zarr, an error here: recorded
        # (raising it inside zarr's reads leaves its tasks to complain at exit)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", zarr.errors.ZarrUserWarning)
            done = read_done(path)
            _require_variables(path)
            ds = _read_raw(path, done)
        for warning in caught:
            if issubclass(warning.category, zarr.errors.ZarrUserWarning):
                raise warning.message
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    except StoreError:
        raise
    except (
        zarr.errors.ZarrUserWarning,
        zarr.errors.BaseZarrError,
        OSError,
        KeyError,
        ValueError,
        IndexError,
    ) as err:
        raise StoreError(
            f"cannot read the store {path} ({type(err).__name__}: {' '.join(str(err).split())}); "
            f"`featurefate verify {path}` says what is damaged"
        ) from None
    ds.attrs.pop("done_digest", None)
    ds.attrs.pop(_VARIABLES_ATTR, None)
    if not done.all():
        mask = ds["done"]
        for name in ds.data_vars:
            if name != "done":
                ds[name] = ds[name].where(mask)
    return ds


def export_netcdf(path, netcdf) -> Path:
    """Write a store's results (see :func:`open_results`) to one compressed NetCDF file."""
    ds = open_results(path)
    netcdf = Path(netcdf)
    netcdf.parent.mkdir(parents=True, exist_ok=True)
    _write_netcdf(ds, netcdf)
    return netcdf
