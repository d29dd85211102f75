"""Sweeps: config validation, per-cell seeds, the store's contract and the driver's reporting.

These tests run in-process with a thread pool and a stand-in for ``run_one`` (no JAX), so they
are fast; the real executors (spawned processes, a Dask cluster) and an interrupted sweep are
tested end to end in ``test_sweep_end_to_end.py``.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from featurefate import sweep
from featurefate.cli import main
from featurefate.reproduce import SCALES, bundled_config, scale_configs
from featurefate.sweep import runner

TINY = """
experiment = "linear_phase"
seed = 7
[fixed]
dim = 10
n_instances = 3
[fixed.training]
max_steps = 500
[grid]
alpha = [0.5, 1.5]
theta = { start = 0.5, stop = 1.0, num = 3, scale = "pi/2" }
sigma = [0.0, 0.2]
lam = [0.0, 0.1]
"""


def _config(tmp_path, text=TINY, name="tiny.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- config


def test_bundled_configs_are_valid_and_match_the_paper():
    for scale in SCALES:
        assert scale_configs(scale), scale
        for path in scale_configs(scale):
            sweep.load_config(path)
    paper = sweep.load_config(bundled_config("paper-linear"))
    assert paper.config.dim == 500 and paper.config.depth == 2
    assert paper.config.init_scale == 1e-5 and paper.config.n_instances == 20
    assert paper.shape == (20, 20, 2)
    np.testing.assert_allclose(paper.grid["alpha"], np.arange(1, 21) / 10)
    np.testing.assert_allclose(paper.grid["theta"], np.arange(1, 21) * 0.05 * np.pi / 2)
    assert paper.grid["sigma"] == (0.0, 0.2)
    np.testing.assert_allclose(paper.config.lam, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    quick = sweep.load_config(bundled_config("quick-linear"))
    for angle in (np.pi / 8, np.pi / 4, 3 * np.pi / 8):  # the slices of Fig. 1
        assert np.isclose(quick.grid["theta"], angle).any()


def test_config_grid_ranges_and_canonical_form(tmp_path):
    cfg = sweep.load_config(_config(tmp_path))
    assert cfg.experiment == "linear_phase" and cfg.seed == 7
    assert cfg.axes == ("alpha", "theta", "sigma")
    np.testing.assert_allclose(cfg.grid["theta"], np.array([0.5, 0.75, 1.0]) * np.pi / 2)
    assert cfg.config.lam == (0.0, 0.1)  # an inner axis goes to the experiment's config
    assert cfg.config.training.max_steps == 500
    assert cfg.shape == (2, 3, 2) and len(cfg.cells()) == 12
    assert cfg.cells()[1] == {"alpha": 0.5, "theta": cfg.grid["theta"][0], "sigma": 0.2}
    assert cfg.indices()[1] == (0, 0, 1)
    assert json.loads(cfg.to_json())["config"]["dim"] == 10
    assert cfg == sweep.load_config(_config(tmp_path, TINY.replace("seed = 7", "seed = 7 ")))
    assert cfg != sweep.load_config(_config(tmp_path, TINY.replace("seed = 7", "seed = 8")))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"start": 0.1, "stop": 0.5, "step": 0.1}, [0.1, 0.2, 0.3, 0.4, 0.5]),
        ({"start": 0, "stop": 1, "num": 3, "scale": "pi"}, [0.0, math.pi / 2, math.pi]),
        ({"start": 2, "stop": 2, "num": 1}, [2.0]),
        ([0.3, 0.1], [0.3, 0.1]),
        (0.25, [0.25]),
    ],
)
def test_grid_values(spec, expected):
    np.testing.assert_allclose(sweep.config.grid_values("x", spec), expected)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("seed = 7", "seed = 7\nsed = 1"), "unknown key 'sed'"),
        (("dim = 10", "dmi = 10"), "fixed.dmi: unknown parameter"),
        (("max_steps = 500", "max_step = 500"), "fixed.training.max_step: unknown parameter"),
        (("dim = 10", "dim = -3"), "dim must be an integer >= 3; got -3"),
        (("dim = 10", 'dim = "ten"'), "dim must be an integer"),
        (
            ("sigma = [0.0, 0.2]", "sigma = [0.0, -0.2]"),
            "sigma must be a finite number in [0, inf)",
        ),
        (("sigma = [0.0, 0.2]", ""), "grid.sigma is missing"),
        (("sigma = [0.0, 0.2]", "sigma = [0.2, 0.2]"), "grid.sigma repeats a value"),
        (("sigma = [0.0, 0.2]", "sigma = []"), "grid.sigma must not be an empty list"),
        (("sigma = [0.0, 0.2]", "sigma = [0.2]\nrho = [1.0]"), "grid.rho: not an axis"),
        (("num = 3,", "num = 0,"), "grid.theta.num must be an integer in [1, 100000]"),
        (("num = 3,", "count = 3,"), "grid.theta: unknown range key 'count'"),
        (('scale = "pi/2"', 'scale = "tau"'), "grid.theta.scale must be"),
        (('"linear_phase"', '"linear"'), "experiment must be one of"),
        (("n_instances = 3", "n_instances = 3\nlam = [0.5]"), "lam is given in both"),
        (("alpha = [0.5, 1.5]", "alpha = [0.01, 1.5]"), "alpha * dim must round to at least 1"),
        (("[grid]", "[grid"), "not valid TOML"),
    ],
)
def test_config_errors_are_one_line_naming_the_key(tmp_path, change, message):
    old, new = change
    assert old in TINY
    path = _config(tmp_path, TINY.replace(old, new, 1))
    with pytest.raises(sweep.ConfigError) as info:
        sweep.load_config(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(path)) and message in text


def test_missing_config_file(tmp_path):
    with pytest.raises(sweep.ConfigError, match=r"^no such config file: .*absent\.toml$"):
        sweep.load_config(tmp_path / "absent.toml")


# ----------------------------------------------------------------------------- seeding


def test_cell_seeds_depend_on_root_and_coordinates_only():
    cell = {"alpha": 0.5, "theta": 0.3, "sigma": 0.2}
    a = sweep.cell_seed(3, cell).generate_state(4)
    b = sweep.cell_seed(3, dict(reversed(list(cell.items())))).generate_state(4)
    np.testing.assert_array_equal(a, b)  # order of keys does not matter
    assert not np.array_equal(a, sweep.cell_seed(4, cell).generate_state(4))
    other = {**cell, "theta": np.nextafter(0.3, 1.0)}  # one ulp apart is another cell
    assert not np.array_equal(a, sweep.cell_seed(3, other).generate_state(4))
    swapped = {"alpha": 0.3, "theta": 0.5, "sigma": 0.2}  # the names count, not just values
    assert not np.array_equal(a, sweep.cell_seed(3, swapped).generate_state(4))
    np.testing.assert_array_equal(
        sweep.cell_seed(0, {"sigma": 0.0}).generate_state(2),
        sweep.cell_seed(0, {"sigma": -0.0}).generate_state(2),
    )


def test_cell_seeds_are_pinned():
    """The seeds of two cells, written down: a change to the derivation (a shifted root seed, a
    reordered key) changes every result of every store, and must be a deliberate one."""
    first = sweep.cell_seed(0, {"alpha": 0.5, "theta": 0.3, "sigma": 0.2})
    assert first.entropy == 0
    assert first.spawn_key == (
        3504355690, 1071644672, 0, 2566933514, 1070176665, 2576980378, 186157577, 1070805811,
        858993459,
    )  # fmt: skip
    np.testing.assert_array_equal(
        first.generate_state(4), [1119056161, 806645506, 1407943362, 2729533920]
    )
    second = sweep.cell_seed(7, {"alpha": 1.5, "theta": np.pi / 2, "sigma": 0.0, "rho": 0.25})
    np.testing.assert_array_equal(
        second.generate_state(4), [3739894468, 2608850518, 3782417900, 217043357]
    )
    np.testing.assert_allclose(
        np.random.default_rng(second).standard_normal(2),
        [1.911809277110666, -0.23604091667084812],
        rtol=1e-15,
    )


# ----------------------------------------------------------------------------- store + driver


def _fake_cell(experiment, config, cell, root_seed):
    """A stand-in for run_one: deterministic in the cell's seed, with every kind of variable."""
    rng = np.random.default_rng(sweep.cell_seed(root_seed, cell))
    if cell["alpha"] == 1.5 and cell["sigma"] == 0.2 and math.isclose(cell["theta"], np.pi / 2):
        raise FloatingPointError("diverged at step size 0.3")
    k = config.n_instances
    return xr.Dataset(
        {
            "error_scratch": (("instance",), rng.random(k)),
            "error_ridge": (("lam", "instance"), rng.random((len(config.lam), k))),
            "steps_scratch": (("instance",), rng.integers(1, 100, k)),
            "converged_scratch": (("instance",), rng.random(k) < 0.5),
            "transferability_linear": ((), rng.random()),
        },
        coords={
            "instance": np.arange(k),
            "lam": np.asarray(config.lam),
            "n": round(cell["alpha"] * config.dim),
            **cell,
        },
        attrs={"dim": config.dim, "seed": "per cell", "experiment": "linear_phase"},
    )


@pytest.fixture
def fake_runner(monkeypatch):
    monkeypatch.setattr(runner, "run_one", _fake_cell)


def test_sweep_writes_every_cell_and_reports_a_failure(tmp_path, fake_runner):
    cfg = sweep.load_config(_config(tmp_path))
    seen = []
    with ThreadPoolExecutor(2) as pool:
        report = sweep.run_sweep(
            cfg, tmp_path / "s.zarr", executor=pool, progress=lambda d, t: seen.append((d, t))
        )
    assert report.total == 12 and report.completed == 11 and report.skipped == 0
    assert not report.ok and not report.interrupted
    (failure,) = report.failed
    assert failure.error == "FloatingPointError: diverged at step size 0.3"
    assert "alpha=1.5" in failure.describe() and "sigma=0.2" in failure.describe()
    assert seen[0] == (0, 12) and seen[-1] == (12, 12)

    ds = sweep.open_results(tmp_path / "s.zarr")
    assert ds.attrs["experiment"] == "linear_phase" and ds.attrs["root_seed"] == 7
    assert ds.attrs["dim"] == 10  # the cells' attrs, except their own seed
    assert json.loads(ds.attrs["featurefate_sweep"]) == json.loads(cfg.to_json())
    assert dict(ds.sizes) == {"alpha": 2, "theta": 3, "sigma": 2, "instance": 3, "lam": 2}
    assert int(ds.done.sum()) == 11
    failed = {"alpha": 1.5, "theta": cfg.grid["theta"][-1], "sigma": 0.2}
    assert np.isnan(ds.error_scratch.sel(failed)).all()
    assert np.isnan(ds.steps_scratch.sel(failed)).all()  # masked, not a fake 0
    for index, cell in zip(cfg.indices(), cfg.cells(), strict=True):
        if cell == failed:
            continue
        expected = _fake_cell("linear_phase", cfg.config, cell, cfg.seed)
        got = ds.isel(dict(zip(cfg.axes, index, strict=True)))
        np.testing.assert_array_equal(got.error_ridge, expected.error_ridge)
        np.testing.assert_array_equal(got.steps_scratch, expected.steps_scratch)
        np.testing.assert_array_equal(
            got.converged_scratch.astype(bool), expected.converged_scratch
        )
        assert int(got.n) == int(expected.n)

    # resume computes only the missing cell (it fails again: reported again)
    with ThreadPoolExecutor(2) as pool:
        again = sweep.run_sweep(cfg, tmp_path / "s.zarr", executor=pool, resume=True)
    assert again.skipped == 11 and again.completed == 0 and len(again.failed) == 1


def test_store_round_trip_keeps_every_variable_of_every_cell(tmp_path, fake_runner):
    """Every variable and coordinate of every cell comes back from the store and from its NetCDF
    export, values and dtypes, exactly as run_cell returned them."""
    text = TINY.replace("stop = 1.0, num = 3", "stop = 0.75, num = 2")  # no failing cell
    cfg = sweep.load_config(_config(tmp_path, text))
    with ThreadPoolExecutor(2) as pool:
        report = sweep.run_sweep(cfg, tmp_path / "s.zarr", executor=pool)
    assert report.ok and report.completed == 8
    stored = sweep.open_results(tmp_path / "s.zarr")
    path = sweep.export_netcdf(tmp_path / "s.zarr", tmp_path / "s.nc")
    with xr.open_dataset(path) as exported:
        exported = exported.load()
    for ds in (stored, exported):
        assert bool(ds.done.all())
        for index, cell in zip(cfg.indices(), cfg.cells(), strict=True):
            expected = _fake_cell("linear_phase", cfg.config, cell, cfg.seed)
            got = ds.isel(dict(zip(cfg.axes, index, strict=True)))
            for name, var in expected.data_vars.items():
                assert got[name].dtype == var.dtype, name
                assert got[name].dims == var.dims, name
                np.testing.assert_array_equal(got[name].values, var.values, err_msg=name)
            for name in ("instance", "lam", "n", *cfg.axes):
                np.testing.assert_array_equal(got[name].values, expected[name].values)


def test_store_refuses_to_overwrite_and_other_configs(tmp_path, fake_runner):
    cfg = sweep.load_config(_config(tmp_path))
    store = tmp_path / "s.zarr"
    with ThreadPoolExecutor(1) as pool:
        sweep.run_sweep(cfg, store, executor=pool)
        with pytest.raises(sweep.StoreError, match="already exists; pass --resume"):
            sweep.run_sweep(cfg, store, executor=pool)
        other = sweep.load_config(_config(tmp_path, TINY.replace("dim = 10", "dim = 11"), "b.toml"))
        with pytest.raises(
            sweep.StoreError, match=r"different config \(config.dim: the store has 10"
        ):
            sweep.run_sweep(other, store, executor=pool, resume=True)
        grid = sweep.load_config(_config(tmp_path, TINY.replace("[0.0, 0.2]", "[0.2]"), "c.toml"))
        with pytest.raises(sweep.StoreError, match=r"grid\.sigma"):
            sweep.run_sweep(grid, store, executor=pool, resume=True)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file").write_text("x")
    with pytest.raises(sweep.StoreError, match="not a featurefate result store"):
        sweep.open_results(tmp_path / "junk")


def test_resume_of_an_absent_store_starts_it(tmp_path, fake_runner):
    cfg = sweep.load_config(_config(tmp_path))
    with ThreadPoolExecutor(1) as pool:
        report = sweep.run_sweep(cfg, tmp_path / "new.zarr", executor=pool, resume=True)
    assert report.completed == 11


def test_a_store_killed_while_being_created_is_started_again(tmp_path, fake_runner):
    cfg = sweep.load_config(_config(tmp_path))
    store = tmp_path / "s.zarr"
    sweep.ResultStore._create(store, cfg)
    # simulate a kill before the done array existed: remove it
    import shutil

    shutil.rmtree(store / "done")
    with ThreadPoolExecutor(1) as pool:
        report = sweep.run_sweep(cfg, store, executor=pool, resume=True)
    assert report.completed == 11


def test_export_netcdf_round_trip(tmp_path, fake_runner):
    cfg = sweep.load_config(_config(tmp_path))
    with ThreadPoolExecutor(2) as pool:
        sweep.run_sweep(cfg, tmp_path / "s.zarr", executor=pool)
    path = sweep.export_netcdf(tmp_path / "s.zarr", tmp_path / "out" / "s.nc")
    zarr_ds = sweep.open_results(tmp_path / "s.zarr")
    with xr.open_dataset(path) as nc:
        xr.testing.assert_allclose(nc.error_ridge, zarr_ds.error_ridge)
        assert nc.attrs["featurefate_sweep"] == zarr_ds.attrs["featurefate_sweep"]


def test_cli_sweep_reports_failed_cells_and_exits_1(tmp_path, fake_runner, monkeypatch, capsys):
    from contextlib import contextmanager

    @contextmanager
    def threads(**_):
        with ThreadPoolExecutor(2) as pool:
            yield pool

    monkeypatch.setattr(sweep, "executor", threads)
    path = _config(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["sweep", str(path), "--out", str(tmp_path / "s.zarr")])
    assert info.value.code == 1
    captured = capsys.readouterr()
    assert "11 cells computed, 0 already done, 1 failed, of 12" in captured.out
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "FloatingPointError: diverged" in errors[0]

    with pytest.raises(SystemExit) as info:  # an existing store without --resume
        main(["sweep", str(path), "--out", str(tmp_path / "s.zarr")])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sweep", "absent.toml", "--out", "x"], "error: no such config file: absent.toml"),
        (["export", "absent.zarr", "--netcdf", "x.nc"], "error: no such store: absent.zarr"),
        (["figure", "fig9", "--data", "absent.zarr"], "error: figure must be one of"),
        (["reproduce", "--scale", "huge"], "error: --scale must be one of 'quick', 'paper'"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)


def test_scheduler_errors(tmp_path):
    with (
        pytest.raises(ValueError, match="either workers or scheduler"),
        sweep.executor(workers=1, scheduler="tcp://127.0.0.1:1"),
    ):
        pass
    with pytest.raises(ValueError, match="tcp://HOST:PORT"), sweep.executor(scheduler="localhost"):
        pass
    with (
        pytest.raises(
            sweep.SchedulerUnreachable,
            match=r"cannot reach scheduler tcp://127.0.0.1:9: .*\(after 1 s\)$",
        ),
        sweep.executor(scheduler="tcp://127.0.0.1:9", timeout=1),
    ):
        pass


def test_bundled_config_lookup():
    assert bundled_config("quick-linear").name == "quick-linear.toml"
    assert isinstance(bundled_config("paper-linear"), Path)
    with pytest.raises(ValueError, match="no bundled config"):
        bundled_config("nope")


def test_the_read_cache_follows_the_store(tmp_path, fake_runner, monkeypatch):
    cfg = sweep.load_config(_config(tmp_path))
    store = tmp_path / "s.zarr"
    with ThreadPoolExecutor(2) as pool:
        sweep.run_sweep(cfg, store, executor=pool)
    first = sweep.open_results(store)  # builds the cache
    assert (store / "merged").is_dir()
    cached = sweep.open_results(store)
    xr.testing.assert_identical(first, cached)
    assert int(cached.done.sum()) == 11

    # the failed cell succeeds on resume: the cache must not serve the old mask
    def fixed(experiment, config, cell, root_seed):
        return _fake_cell(experiment, config, {**cell, "alpha": 1.4}, root_seed).assign_coords(
            alpha=cell["alpha"]
        )

    monkeypatch.setattr(runner, "run_one", fixed)
    with ThreadPoolExecutor(1) as pool:
        report = sweep.run_sweep(cfg, store, executor=pool, resume=True)
    assert report.completed == 1
    after = sweep.open_results(store)
    assert bool(after.done.all())
    assert after.steps_scratch.dtype.kind == "i"  # complete: nothing masked, dtypes kept
    assert np.isfinite(after.error_scratch).all()
    was_done = first.done.values
    np.testing.assert_array_equal(
        after.error_ridge.values[was_done], first.error_ridge.values[was_done]
    )


def test_every_scale_resolves_every_family_with_its_figures_and_report():
    """``reproduce --scale S`` runs these configs (without running them here): each loads, and
    each family it runs has figures and report numbers."""
    from featurefate.reproduce import FIGURES, KEY_NUMBERS

    families = {}
    for scale in SCALES:
        configs = [sweep.load_config(path) for path in scale_configs(scale)]
        families[scale] = {config.experiment for config in configs}
        for config in configs:
            assert any(spec.experiment == config.experiment for spec in FIGURES.values())
            assert config.experiment in KEY_NUMBERS
    assert families["paper"] == families["quick"]
    assert {"linear_phase", "discrepancy", "relu_phase"} <= families["paper"]


@pytest.mark.parametrize(
    ("training", "instead"),
    [
        ("eta = 0.9", "eta_pretrain, eta_scratch and eta_finetune"),
        ("max_move = 0.1", "finetune_max"),
    ],
)
def test_a_training_option_set_per_stage_is_refused_not_overwritten(tmp_path, training, instead):
    text = TINY.replace("[fixed.training]", f"[fixed.training]\n{training}")
    with pytest.raises(sweep.ConfigError, match=f"training.{training.split()[0]} is set per stage"):
        sweep.load_config(_config(tmp_path, text))
    with pytest.raises(sweep.ConfigError, match=instead):
        sweep.load_config(_config(tmp_path, text))
