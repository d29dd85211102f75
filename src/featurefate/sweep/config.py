"""Sweep configurations: a TOML file naming an experiment, its fixed parameters and its grid.

A configuration file has four keys::

    experiment = "linear_phase"     # a family of featurefate.experiments
    seed = 0                        # the root seed; each cell's seed derives from it
    [fixed]                         # fields of the family's config dataclass
    dim = 100
    lam = [0.0, 0.1, 0.5]
    [fixed.training]                # a nested dataclass field is a table
    max_steps = 20000
    [grid]                          # one entry per cell axis: a list or a range
    alpha = { start = 0.1, stop = 2.0, num = 20 }
    theta = { start = 0.05, stop = 1.0, step = 0.05, scale = "pi/2" }
    sigma = [0.0, 0.2]

A range is ``{start, stop, num}`` (``num`` points, both ends included) or ``{start, stop,
step}`` (stop included when it falls on the step), optionally multiplied by ``scale`` (a number,
``"pi"`` or ``"pi/2"``). A grid key that is not a cell axis but a field of the family's config
(``lam`` of ``linear_phase``) is passed to the config: the family computes it inside each cell.
An optional ``description`` string is kept with the results.

Every mistake (an unknown key, a missing axis, a bad value) raises :class:`ConfigError` with one
line that names the file, the key and what is valid.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featurefate import _memory, _usage, experiments
from featurefate import _validation as v

_TOP_KEYS = ("experiment", "seed", "description", "fixed", "grid")
_SCALES = {"pi": math.pi, "pi/2": math.pi / 2}
MAX_CELLS = 100_000
"""The most cells a sweep may have: 100 000 are checked, stored and started in about 2.5 s."""


class ConfigError(ValueError):
    """A configuration that cannot run; the message is one line naming the key."""


@dataclass(frozen=True, eq=False)
class SweepConfig:
    """A validated sweep: the experiment family, its config object, the root seed and the grid.

    Attributes
    ----------
    experiment : str
        Family name (:data:`featurefate.experiments.FAMILIES`).
    config : dataclass
        The family's config object, every fixed parameter resolved (defaults included).
    seed : int
        Root seed of the sweep.
    grid : dict of str to tuple of float
        Values of each cell axis, in the family's axis order.
    description : str
    source : str
        Where the config came from (a bundled config's name or a file's absolute path), to
        name in messages; not part of the sweep's identity.
    """

    experiment: str
    config: object
    seed: int
    grid: dict[str, tuple[float, ...]]
    description: str = ""
    source: str = ""

    @property
    def axes(self) -> tuple[str, ...]:
        return tuple(self.grid)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(values) for values in self.grid.values())

    def cells(self) -> list[dict[str, float]]:
        """Every cell, the last axis varying fastest (C order of :attr:`shape`)."""
        return [
            dict(zip(self.axes, values, strict=True))
            for values in itertools.product(*self.grid.values())
        ]

    def indices(self) -> list[tuple[int, ...]]:
        """The grid index of each cell of :meth:`cells`, in the same order."""
        return list(itertools.product(*(range(n) for n in self.shape)))

    def to_dict(self) -> dict:
        """JSON-ready canonical form: two configs run the same cells iff these are equal."""
        return {
            "experiment": self.experiment,
            "seed": self.seed,
            "config": dataclasses.asdict(self.config),
            "grid": {axis: list(values) for axis, values in self.grid.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def __eq__(self, other):
        return isinstance(other, SweepConfig) and self.to_json() == other.to_json()

    def __hash__(self):
        return hash(self.to_json())


def _fail(source: str, message: str):
    raise ConfigError(f"{source}: {message}" if source else message)


def _real(source, key, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(source, f"{key} must be a finite number; got {value!r}")
    return float(value)


def grid_values(key: str, spec, *, source: str = "") -> tuple[float, ...]:
    """Expand a grid entry (a number, a list, or a range table) into its values.

    Raises
    ------
    ConfigError
        For a malformed range, a non-finite or repeated value, or an empty list.
    """
    if isinstance(spec, dict):
        known = {"start", "stop", "num", "step", "scale"}
        unknown = sorted(set(spec) - known)
        if unknown:
            _fail(
                source,
                f"{key}: unknown range key {unknown[0]!r} (valid: start, stop, num, step, scale)",
            )
        if "start" not in spec or "stop" not in spec or ("num" in spec) == ("step" in spec):
            _fail(source, f"{key}: a range needs start, stop and exactly one of num or step")
        start = _real(source, f"{key}.start", spec["start"])
        stop = _real(source, f"{key}.stop", spec["stop"])
        scale = spec.get("scale", 1.0)
        if isinstance(scale, str):
            if scale not in _SCALES:
                _fail(source, f"{key}.scale must be a number, 'pi' or 'pi/2'; got {scale!r}")
            scale = _SCALES[scale]
        scale = _real(source, f"{key}.scale", scale)
        if "num" in spec:
            num = spec["num"]
            if isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= MAX_CELLS:
                _fail(source, f"{key}.num must be an integer in [1, {MAX_CELLS}]; got {num!r}")
            values = np.linspace(start, stop, num) if num > 1 else np.array([start])
        else:
            step = _real(source, f"{key}.step", spec["step"])
            if step <= 0 or stop < start:
                _fail(source, f"{key}: a stepped range needs step > 0 and stop >= start")
            count = math.floor((stop - start) / step + 1e-9) + 1
            if count > MAX_CELLS:
                _fail(
                    source,
                    f"{key}: the range has {count} values; at most {MAX_CELLS} are allowed "
                    "(take a larger step)",
                )
            values = start + step * np.arange(count)
        values = (values * scale).tolist()
    elif isinstance(spec, list):
        if not spec:
            _fail(source, f"{key} must not be an empty list")
        values = [_real(source, f"{key}[{i}]", item) for i, item in enumerate(spec)]
    else:
        values = [_real(source, key, spec)]
    values = tuple(float(x) for x in values)
    if len(set(values)) != len(values):
        _fail(source, f"{key} repeats a value; every grid value must be distinct")
    return values


def build_dataclass(cls, table: dict, *, source: str = "", prefix: str = ""):
    """``cls(**table)`` with nested tables for dataclass-valued fields and lists as tuples."""
    defaults = cls()
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in table.items():
        if key not in fields:
            valid = ", ".join(fields)
            _fail(source, f"{prefix}{key}: unknown parameter (valid: {valid})")
        default = getattr(defaults, key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                _fail(
                    source,
                    f"{prefix}{key} must be a table of {', '.join(f.name for f in dataclasses.fields(default))}",
                )
            value = build_dataclass(type(default), value, source=source, prefix=f"{prefix}{key}.")
        elif isinstance(default, tuple):
            value = tuple(value) if isinstance(value, list) else (value,)
        elif isinstance(value, list | dict):
            _fail(source, f"{prefix}{key} must be a single value; got {value!r}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        _fail(source, _keyed(prefix, str(err), fields))


def _keyed(prefix: str, message: str, fields) -> str:
    """A dataclass's message in the config's spelling: ``tol must be ...`` of the table
    ``fixed.training.`` reads ``fixed.training.tol must be ...``."""
    head = message.split(" ", 1)[0].rstrip(":;,")
    if head.split(".", 1)[0] in fields:
        return f"{prefix}{message}"
    return f"{prefix.rstrip('.') or 'fixed'}: {message}"


def from_dict(data: dict, *, source: str = "") -> SweepConfig:
    """Validate a parsed configuration (see the module docstring) into a :class:`SweepConfig`."""
    if not isinstance(data, dict):
        _fail(source, "a configuration is a table of experiment, seed, fixed and grid")
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        _fail(source, f"unknown key {unknown[0]!r} (valid: {', '.join(_TOP_KEYS)})")
    for key in ("experiment", "seed", "grid"):
        if key not in data:
            _fail(source, f"missing key {key!r}")
    try:
        family = experiments.get(data["experiment"])
        seed = v.integer("seed", data["seed"], low=0)
    except ValueError as err:
        _fail(source, str(err))
    description = data.get("description", "")
    if not isinstance(description, str):
        _fail(source, f"description must be a string; got {description!r}")
    fixed = dict(data.get("fixed", {}))
    grid_table = data["grid"]
    if not isinstance(fixed, dict) or not isinstance(grid_table, dict):
        _fail(source, "fixed and grid must be tables")

    axes = family.cell_axes
    grid = {}
    for key, spec in grid_table.items():
        values = grid_values(f"grid.{key}", spec, source=source)
        if key in axes:
            grid[key] = values
        elif key in {f.name for f in dataclasses.fields(family.config_class)}:
            if key in fixed:
                _fail(source, f"{key} is given in both fixed and grid; keep one")
            fixed[key] = list(values)
        else:
            _fail(source, f"grid.{key}: not an axis of {family.name} (axes: {', '.join(axes)})")
    missing = [axis for axis in axes if axis not in grid]
    if missing:
        _fail(source, f"grid.{missing[0]} is missing; {family.name} needs {', '.join(axes)}")
    grid = {axis: grid[axis] for axis in axes}
    config = build_dataclass(family.config_class, fixed, source=source, prefix="fixed.")
    sweep = SweepConfig(family.name, config, seed, grid, description, source)
    cells = math.prod(sweep.shape)
    if cells > MAX_CELLS:
        counts = " x ".join(f"grid.{axis} {len(values)}" for axis, values in grid.items())
        _fail(
            source,
            f"the grid has {cells} cells ({counts}); at most {MAX_CELLS} are allowed: "
            "take fewer values, or split the sweep into several configs",
        )
    check = getattr(family.module, "check_cell", None)
    if check is not None:
        for cell in _cross(grid):
            try:
                check(config, cell)
            except ValueError as err:
                _fail(source, _keyed("grid.", str(err), axes))
    _check_memory(sweep, source)
    return sweep


def _check_memory(sweep: SweepConfig, source: str) -> None:
    """Refuse a sweep whose largest cell cannot fit in this machine's memory (the estimate of
    ``featurefate simulate point``), naming the config keys that size it."""
    total = _usage.physical_memory()
    need, keys = _memory.sweep_cell_bytes(sweep.experiment, sweep.config, sweep.grid)
    if total is None or need <= total:
        return
    _fail(
        source,
        f"{', '.join(keys)}: a cell needs at least {need / 2**30:.3g} GiB, more than this "
        f"machine's {total / 2**30:.3g} GiB; choose smaller sizes",
    )


def _cross(grid: dict[str, tuple[float, ...]]):
    """Cells that hold every value of every axis, the other axes at their first value.

    A family's ``check_cell`` tests each axis's value on its own (against the config), so
    these ``sum(len)`` cells check the grid's ``prod(len)`` ones: 200 000 cells were checked
    one by one in 7 s.
    """
    first = {axis: values[0] for axis, values in grid.items()}
    yield dict(first)
    for axis, values in grid.items():
        for value in values[1:]:
            yield first | {axis: value}


def bundled_configs() -> dict[str, Path]:
    """The sweep configs shipped with featurefate, by name (``quick-linear``, ``paper-relu``, ...)."""
    from importlib import resources

    folder = Path(str(resources.files("featurefate") / "configs"))
    return {path.stem: path for path in sorted(folder.glob("*.toml"))}


def resolve_config(spec) -> Path:
    """The config file ``spec`` names: an existing file, else a bundled config's name.

    A bundled config can be named with or without ``.toml`` from any directory
    (``featurefate sweep quick-linear ...``); an existing file of that name wins.

    Raises
    ------
    ConfigError
        When ``spec`` is neither a file nor the name of a bundled config.
    """
    path = Path(spec)
    if path.is_file():
        return path
    bundled = bundled_configs()
    name = path.name.removesuffix(".toml")
    if path.parent == Path(".") and name in bundled:
        return bundled[name]
    if "/" in str(spec) or os.sep in str(spec) or str(spec).endswith(".toml"):
        raise ConfigError(f"no such config file: {spec}")  # a path, not a bundled config's name
    raise ConfigError(
        f"{spec}: no such config file, and no bundled config of that name "
        f"(bundled: {', '.join(bundled)}; `featurefate configs` describes them)"
    )


def load_config(path) -> SweepConfig:
    """Read and validate a TOML sweep configuration: a file, or a bundled config's name.

    Raises
    ------
    ConfigError
        One line naming the file and the offending key; also for a missing or unparsable file.
    """
    path = resolve_config(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config ({err.strerror or err})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    sweep = from_dict(data, source=str(path))
    bundled = bundled_configs()
    name = path.stem if bundled.get(path.stem) == path else str(path.resolve())
    return dataclasses.replace(sweep, source=name)
