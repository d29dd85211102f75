"""Every way a user can hold it wrong: one line naming what they typed, before any work starts.

Validation first (flags and config keys as written, size caps, ``--debug``), and the stores: the
writer's lock, ``--overwrite``, ``featurefate verify``, and empty or partial stores. Sweeps run
in-process with a thread pool and a stand-in for ``run_one`` (no JAX), so these tests are fast.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import tomllib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
import xarray as xr
import zarr

from featurefate import _usage, schema, sweep
from featurefate.cli import main
from featurefate.experiments.theory_phase import grid, theory_point
from featurefate.sweep import lock, runner
from featurefate.transfer import TrainingOptions

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
theta = [0.4, 0.8]
sigma = [0.0, 0.2]
"""


def _run(argv, capsys) -> tuple[int, list[str], list[str]]:
    """``main(argv)``: exit status, stdout lines and stderr lines."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    return info.value.code, captured.out.splitlines(), captured.err.splitlines()


def _one_error(argv, capsys, code=2) -> str:
    status, _, err = _run(argv, capsys)
    assert status == code, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _fake_cell(experiment, config, cell, root_seed):
    """A stand-in for run_one: every variable of featurefate.schema's linear_phase, random
    numbers deterministic in the cell's seed (``converged_scratch`` all False, the fill value)."""
    rng = np.random.default_rng(sweep.cell_seed(root_seed, cell))
    sizes = {"instance": config.n_instances, "lam": len(config.lam), "rank": 2}
    data = {}
    for var in schema.variables("linear_phase").values():
        if var.only_with is not None and var.only_with not in sizes:
            continue
        dims = var.expected_dims(sizes)
        shape = tuple(sizes[d] for d in dims)
        kind = {"f": rng.random(shape), "i": rng.integers(1, 9, shape), "b": np.zeros(shape, bool)}
        data[var.name] = (dims, kind[var.kind])
    data[runner.WALL_TIME] = ((), 0.01)
    coords = {
        "instance": np.arange(config.n_instances),
        "lam": np.asarray(config.lam, dtype=float),
        "n": round(cell["alpha"] * config.dim),
        **cell,
    }
    return xr.Dataset(data, coords=coords)


def _failing_cell(experiment, config, cell, root_seed):
    raise FloatingPointError("diverged")


@contextmanager
def _threads(**_):
    with ThreadPoolExecutor(2) as pool:
        yield pool


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture
def fake(monkeypatch):
    """Sweeps run the stand-in cells on threads (also through the CLI)."""
    monkeypatch.setattr(runner, "run_one", _fake_cell)
    monkeypatch.setattr(sweep, "executor", _threads)


def _sweep(config_file, store, **options):
    with ThreadPoolExecutor(2) as pool:
        return sweep.run_sweep(sweep.load_config(config_file), store, executor=pool, **options)


# ----------------------------------------------------------------------------- flags


_SIMULATE = ["simulate", "point", "--alpha", "0.5", "--theta", "0.5", "--sigma", "0"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            [
                "theory",
                "point",
                "--method",
                "linear",
                "--alpha",
                "0.01",
                "--theta",
                "0.7",
                "--sigma",
                "0.2",
                "--dim",
                "10",
            ],
            "error: --alpha * --dim must be at least 1 (one sample) for the finite-size forms; "
            "got --alpha = 0.01 at --dim = 10, n = 0.1",
        ),
        (
            [
                "theory",
                "point",
                "--method",
                "linear",
                "--alpha",
                "-1",
                "--theta",
                "0.7",
                "--sigma",
                "0.2",
            ],
            "error: --alpha must be a finite number in (0, inf); got -1",
        ),
        (
            [
                "theory",
                "phase-diagram",
                "--method",
                "linear",
                "--sigma",
                "0.2",
                "--num-alpha",
                "1000000000000",
                "--out",
                "pd",
            ],
            "error: --num-alpha must be an integer in [1, 20000]; got 1000000000000",
        ),
        (
            [
                "theory",
                "phase-diagram",
                "--method",
                "linear",
                "--sigma",
                "0.2",
                "--num-alpha",
                "10000",
                "--num-theta",
                "10000",
                "--out",
                "pd",
            ],
            "error: --num-alpha * --num-theta must be at most 4,000,000 grid points",
        ),
        (
            [
                "theory",
                "phase-diagram",
                "--method",
                "linear",
                "--sigma",
                "0.2",
                "--dim",
                "10",
                "--out",
                "pd",
            ],
            "error: --dim 10 needs n = alpha * D >= 1 sample at the grid's smallest alpha",
        ),
        (
            [
                "simulate",
                "point",
                "--alpha",
                "0.5",
                "--theta",
                "0.5",
                "--sigma",
                "0",
                "--instances",
                "1",
            ],
            "error: --instances must be an integer >= 2; got 1",
        ),
        (
            [
                "simulate",
                "point",
                "--alpha",
                "0.5",
                "--theta",
                "0.5",
                "--sigma",
                "0",
                "--sigma-source",
                "0.2",
            ],
            "error: --sigma-source applies with --alpha-source only",
        ),
        (
            [
                "sweep",
                "tiny-linear",
                "--out",
                "s.zarr",
                "--workers",
                "2",
                "--scheduler",
                "tcp://127.0.0.1:1",
            ],
            "error: give either --workers or --scheduler, not both",
        ),
        (
            ["sweep", "tiny-linear", "--out", "s.zarr", "--workers", "100000"],
            "error: --workers must be an integer in [1, ",
        ),
        (
            ["reproduce", "--num-theta", "1", "--config", "tiny-linear", "--out", "r"],
            "error: --num-theta must be an integer in [2, 20000]; got 1",
        ),
        (
            [*_SIMULATE, "--seed", "-1"],
            "error: --seed must be an integer >= 0; got -1",
        ),
        (
            [*_SIMULATE, "--alpha", "0.01", "--dim", "10"],
            "error: --alpha * --dim must round to at least 1 sample",
        ),
        ([*_SIMULATE, "--dim", "2.5"], "error: --dim must be an integer; got 2.5"),
        ([*_SIMULATE, "--alpha=x"], "error: --alpha must be a real number; got x"),
        (
            ["sweep", "tiny-linear", "--out", "s.zarr", "--workers", "1.5"],
            "error: --workers must be an integer; got 1.5",
        ),
        (
            ["sweep", "tiny-linear", "--out", "s.zarr", "--connect-timeout", "-1"],
            "error: --connect-timeout must be a finite number in (0, inf); got -1",
        ),
        (
            ["sweep", "/nonexistent/nope.toml", "--out", "s.zarr"],
            "error: no such config file: /nonexistent/nope.toml",
        ),
        (
            ["sweep", "nope", "--out", "s.zarr"],
            "error: nope: no such config file, and no bundled config of that name (bundled: ",
        ),
        (
            ["explore", "--port", "70000"],
            "error: --port must be an integer in [0, 65535]; got 70000",
        ),
        (["reproduce", "--scale", "huge"], "error: --scale must be one of 'quick', 'paper'"),
        (["reproduce", "--workers", "0"], "error: --workers must be an integer in [1, "),
        (
            ["reproduce", "--config", "tiny-linear", "--scheduler", "tcp://host"],
            "error: --scheduler must be an address like tcp://HOST:PORT",
        ),
        (
            ["reproduce", "--config", "/nonexistent.toml"],
            "error: no such config file: /nonexistent.toml",
        ),
    ],
)
def test_errors_name_the_flags_typed_before_any_work(tmp_path, monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(tmp_path)
    assert _one_error(argv, capsys).startswith(expected)
    assert list(tmp_path.iterdir()) == []  # no output folder, store or data written


def test_an_output_folder_that_is_a_file_is_named(tmp_path, capsys):
    """--out names a folder: a file there is refused by name, status 2, before any work."""
    path = tmp_path / "x.py"
    path.write_text("")
    for argv in (
        ["explore"],
        ["figure", "fig1", "--data", str(tmp_path / "s.zarr")],
        ["reproduce", "--config", "tiny-linear"],
        ["theory", "phase-diagram", "--method", "linear", "--sigma", "0"],
    ):
        error = _one_error([*argv, "--out", str(path)], capsys)
        assert error == f"error: --out must be a directory (created if missing); got {path}, a file"
    assert [p.name for p in tmp_path.iterdir()] == ["x.py"]


def test_a_grid_value_out_of_range_is_named_by_its_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(TINY.replace("alpha = [0.5, 1.5]", "alpha = [-0.5, 1.5]"))
    error = _one_error(["sweep", str(path), "--out", str(tmp_path / "s.zarr")], capsys)
    assert error == f"error: {path}: grid.alpha must be a finite number in (0, inf); got -0.5"


def test_counts_and_articles_agree():
    from featurefate._text import article, count

    assert [count(n, "cell") for n in (0, 1, 2)] == ["0 cells", "1 cell", "2 cells"]
    assert count(1, "finished cell") == "1 finished cell"
    assert article("init_scale") == "an init_scale" and article("linear_phase") == "a linear_phase"


def test_flag_names_replace_whole_words_only():
    sim = "simulate point"
    assert (
        _usage.in_flags("n_instances must be >= 2; got 1", sim) == "--instances must be >= 2; got 1"
    )
    # a config key, a longer name, a flag already written and another command stay as they are
    assert _usage.in_flags("fixed.n_instances must be", sim) == "fixed.n_instances must be"
    assert _usage.in_flags("sigma_source needs alpha_source", "theory point") == (
        "sigma_source needs alpha_source"
    )
    assert _usage.in_flags("--dim and dim must", "theory point") == "--dim and --dim must"
    assert _usage.in_flags("workers", "figure") == "workers"
    # prose about the thing, not the parameter, stays
    assert _usage.in_flags("cannot reach the Dask scheduler at tcp://h:1", "sweep") == (
        "cannot reach the Dask scheduler at tcp://h:1"
    )
    assert _usage.in_flags("give either workers or scheduler, not both", "sweep") == (
        "give either --workers or --scheduler, not both"
    )
    assert _usage.command_of(["--debug", "theory", "point", "--alpha", "1"]) == "theory point"
    assert _usage.command_of(["sweep", "x.toml"]) == "sweep"


def test_theory_point_refuses_less_than_one_sample_and_takes_one():
    with pytest.raises(ValueError, match=r"alpha \* dim must be at least 1"):
        theory_point("finetune", 0.09, 0.5, 0.2, dim=10)
    assert theory_point("finetune", 0.1, 0.5, 0.2, dim=10)["dim"] == 10  # n = 1


def test_phase_grid_caps():
    assert grid(2.0, 20_000, 200)[0].size == 20_000
    with pytest.raises(ValueError, match=r"num_theta must be an integer in \[2, 20000\]"):
        grid(2.0, 10, 20_001)
    with pytest.raises(ValueError, match="at most 4,000,000 grid points"):
        grid(2.0, 2001, 2000)


def test_a_simulation_larger_than_memory_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(_usage, "physical_memory", lambda: 2**30)
    argv = ["simulate", "point", "--alpha", "0.5", "--theta", "0.5", "--sigma", "0"]
    message = _one_error([*argv, "--dim", "5000"], capsys)
    assert "--dim 5000 with --instances 20 and --depth 2 needs at least" in message
    assert "more than this machine's 1 GiB" in message


# ----------------------------------------------------------------------------- errors


def test_debug_shows_the_traceback_before_or_after_the_command(capsys):
    argv = ["theory", "point", "--method", "linear", "--alpha", "-1", "--theta", "0.7"]
    argv += ["--sigma", "0.2"]
    for debug in (["--debug", *argv], [*argv, "--debug"]):
        with pytest.raises(ValueError, match="alpha must be"):
            main(debug)


def test_an_unexpected_error_is_one_line_with_status_1(monkeypatch, capsys):
    import featurefate.experiments.theory_phase as theory_phase

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(theory_phase, "theory_point", broken)
    argv = ["theory", "point", "--method", "linear", "--alpha", "1", "--theta", "0.7"]
    argv += ["--sigma", "0.2"]
    message = _one_error(argv, capsys, code=1)
    assert message.startswith("error: unexpected RuntimeError: boom") and "--debug" in message


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("tol = -1", "fixed.training.tol must be a finite number in [0, inf); got -1"),
        ("check_every = 0", "fixed.training.check_every must be an integer >= 1; got 0"),
        ('step_size = "fixed"', "fixed.training.step_size must be 'auto' or a number > 0"),
        ("max_time = -1.0", "fixed.training.max_time must be a finite number in [0, inf)"),
        ("eta = 0.3", "fixed.training.eta is set per stage in this experiment"),
        ('method = "implicit"', "fixed.training.method must be one of"),
    ],
)
def test_bad_training_options_are_refused_before_the_store_exists(tmp_path, capsys, line, message):
    path = tmp_path / "bad.toml"
    path.write_text(TINY.replace("max_steps = 500", f"max_steps = 500\n{line}"))
    store = tmp_path / "s.zarr"
    error = _one_error(["sweep", str(path), "--out", str(store)], capsys)
    assert error.startswith(f"error: {path}: {message}")
    assert not store.exists() and not lock.lock_path(store).exists()


def test_training_options_are_checked_on_construction():
    TrainingOptions(step_size=0.1, max_time=3.0, max_move=1e-3)
    for bad in ({"eta": 2.0}, {"max_steps": 0}, {"max_move": 0.0}, {"step_size": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainingOptions(**bad)
    # the per-stage settings that linear_phase puts into the options are checked with it
    from featurefate.experiments.linear_phase import LinearPhaseConfig

    with pytest.raises(ValueError, match="finetune_max_move must be a finite number in"):
        LinearPhaseConfig(finetune_max_move=-1.0)
    assert LinearPhaseConfig(finetune_max_move=None).stage_options("finetune", 5).max_move is None


# ----------------------------------------------------------------------------- the lock


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, config_file, fake, capsys):
    store = tmp_path / "s.zarr"
    with sweep.StoreLock.acquire(store) as held:
        assert lock.holder_if_locked(store)["pid"] == os.getpid()
        with pytest.raises(sweep.StoreLocked, match=f"pid {os.getpid()} on host"):
            _sweep(config_file, store)
        error = _one_error(["sweep", str(config_file), "--out", str(store)], capsys)
        assert f"pid {os.getpid()} on host {socket.gethostname()} since " in error
        assert f"remove {held.path}" in error
        assert not store.exists()
    assert lock.holder_if_locked(store) is None and not held.path.exists()
    report = _sweep(config_file, store)  # free again
    assert report.ok and report.completed == 8 and not report.messages
    assert not lock.lock_path(store).exists()


def test_a_stale_lock_is_taken_over_with_a_note(tmp_path, config_file, fake, capsys):
    store = tmp_path / "s.zarr"
    # a sweep killed without releasing: its file stays, its flock is gone, its pid ended
    dead = {"pid": 2**22 + 12345, "host": socket.gethostname(), "started": "yesterday"}
    lock.lock_path(store).write_text(json.dumps(dead))
    assert lock.holder_if_locked(store) is None
    status, _, err = _run(["sweep", str(config_file), "--out", str(store)], capsys)
    assert status == 0, err
    notes = [line for line in err if line.startswith("note:")]
    assert len(notes) == 1 and f"pid {dead['pid']} on host" in notes[0]
    assert "ended without releasing it" in notes[0]
    assert not lock.lock_path(store).exists()


def test_without_flock_the_pid_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "fcntl", None)
    store = tmp_path / "s.zarr"
    host = socket.gethostname()
    path = lock.lock_path(store)
    path.write_text(json.dumps({"pid": os.getpid(), "host": host, "started": "now"}))
    with pytest.raises(sweep.StoreLocked, match=f"pid {os.getpid()}"):
        sweep.StoreLock.acquire(store)  # a live process on this host
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "now"}))
    with pytest.raises(sweep.StoreLocked, match="host elsewhere"):
        sweep.StoreLock.acquire(store)  # another host: honoured
    path.write_text(json.dumps({"pid": 2**22 + 12345, "host": host, "started": "then"}))
    with sweep.StoreLock.acquire(store) as taken:  # a dead pid here: stale
        assert taken.taken_over["started"] == "then"


# ----------------------------------------------------------------------------- stores


def test_overwrite_starts_a_store_afresh_and_removes_only_stores(
    tmp_path, config_file, fake, capsys
):
    store = tmp_path / "s.zarr"
    assert _sweep(config_file, store).completed == 8
    error = _one_error(["sweep", str(config_file), "--out", str(store)], capsys)
    assert "--overwrite to start it afresh" in error
    status, out, _ = _run(["sweep", str(config_file), "--out", str(store), "--overwrite"], capsys)
    assert status == 0 and "8 cells computed, 0 already done" in out[-1]
    assert sweep.cell_counts(store) == (8, 8)
    error = _one_error(
        ["sweep", str(config_file), "--out", str(store), "--resume", "--overwrite"], capsys
    )
    assert error == "error: give either --resume or --overwrite, not both"
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "thesis.tex").write_text("x")
    error = _one_error(["sweep", str(config_file), "--out", str(junk), "--overwrite"], capsys)
    assert "is not a featurefate result store, and --overwrite removes only one" in error
    assert (junk / "thesis.tex").exists()


def test_resuming_with_another_experiments_config_names_both(tmp_path, config_file, fake, capsys):
    store = tmp_path / "s.zarr"
    _sweep(config_file, store)
    error = _one_error(["sweep", "quick-relu", "--out", str(store), "--resume"], capsys)
    assert (
        f"{store} holds a linear_phase sweep (made from {config_file}) and the config is a "
        "relu_phase sweep; resume a store with the config it was made from, start it afresh "
        "with --overwrite"
    ) in error


def test_a_store_is_checked_before_the_executor_starts(
    tmp_path, config_file, fake, monkeypatch, capsys
):
    store = tmp_path / "s.zarr"
    _sweep(config_file, store)

    @contextmanager
    def no_executor(**_):
        raise AssertionError("the executor started before the store was checked")
        yield

    monkeypatch.setattr(sweep, "executor", no_executor)
    error = _one_error(["sweep", str(config_file), "--out", str(store)], capsys)
    assert "already exists" in error
    (tmp_path / "ro").mkdir(mode=0o500)
    if not os.access(tmp_path / "ro", os.W_OK):  # root writes anywhere
        error = _one_error(["sweep", str(config_file), "--out", str(tmp_path / "ro" / "s")], capsys)
        assert "is not a writable folder" in error


def test_empty_and_partial_stores_say_what_is_missing(
    tmp_path, config_file, fake, monkeypatch, capsys
):
    store = tmp_path / "s.zarr"
    monkeypatch.setattr(runner, "run_one", _failing_cell)
    status, _, _ = _run(["sweep", str(config_file), "--out", str(store)], capsys)
    assert status == 1
    command = f"featurefate sweep {config_file} --out {store} --resume"
    hint = f"run `{command}`"
    for argv in (
        ["figure", "fig1", "--data", str(store), "--out", str(tmp_path / "f")],
        ["export", str(store), "--netcdf", str(tmp_path / "s.nc")],
    ):
        error = _one_error(argv, capsys)
        assert error.startswith(f"error: store {store} has 0 of 8 cells finished, nothing to ")
        assert error.endswith(hint)
    assert not (tmp_path / "f").exists() and not (tmp_path / "s.nc").exists()

    # half of them done: export writes and says what is missing
    def noisy_only(experiment, config, cell, root_seed):
        run = _fake_cell if cell["sigma"] else _failing_cell
        return run(experiment, config, cell, root_seed)

    monkeypatch.setattr(runner, "run_one", noisy_only)
    _run(["sweep", str(config_file), "--out", str(store), "--resume"], capsys)
    status, out, err = _run(["export", str(store), "--netcdf", str(tmp_path / "s.nc")], capsys)
    assert status == 0 and out == [str(tmp_path / "s.nc")]
    assert err == [
        f"note: store {store} has 4 of 8 cells finished (the others are NaN); finish it with `{command}`"
    ]


def test_verify_an_intact_store(tmp_path, config_file, fake, capsys):
    store = tmp_path / "s.zarr"
    _sweep(config_file, store)
    status, out, _ = _run(["verify", str(store)], capsys)
    assert status == 0
    assert out == [
        f"{store}: linear_phase, 8 of 8 cells finished, 0 half-written, 44 result variables, "
        "no problems"
    ]
    error = _one_error(["verify", str(tmp_path / "absent.zarr")], capsys)
    assert error == f"error: no such store: {tmp_path / 'absent.zarr'}"


def test_verify_finds_missing_corrupt_and_half_written_cells(tmp_path, config_file, fake, capsys):
    store = tmp_path / "s.zarr"
    cfg = sweep.load_config(config_file)
    _sweep(config_file, store)
    # the cell (alpha, theta, sigma) = (1.5, 0.8, 0.2): its converged_scratch is all False,
    # zarr's fill value, and still has its chunk
    assert (store / "converged_scratch" / "1.1.1.0").is_file()
    (store / "error_scratch" / "1.1.1.0").unlink()  # a finished cell loses a variable
    (store / runner.WALL_TIME / "0.0.0").write_bytes(b"xx")  # a chunk of the wrong size
    done = zarr.open_array(str(store / "done"), mode="r+")
    done[0, 1, 0] = False  # values written, not marked done: half-written
    status, out, _ = _run(["verify", str(store)], capsys)
    assert status == 1
    assert out[0] == (
        f"{store}: linear_phase, 7 of 8 cells finished, 1 half-written, 44 result variables, "
        "2 problems"
    )
    assert f"problem: variable {runner.WALL_TIME} is unreadable" in out[1]
    assert out[2] == (
        "problem: variable error_scratch lacks 1 finished cell, the first at "
        f"(alpha=1.5, theta={cfg.grid['theta'][1]:g}, sigma=0.2)"
    )
    assert "--resume computes them again" in out[3]


def test_verify_checks_the_config_identity(tmp_path, config_file, fake, capsys):
    store = tmp_path / "s.zarr"
    _sweep(config_file, store)
    group = zarr.open_group(str(store), mode="r+")
    group.attrs["root_seed"] = 8
    shutil.rmtree(store / "theta")
    check = sweep.verify_store(store)
    assert not check.ok and check.finished == 8 and check.total == 8
    assert check.problems == [
        "config identity: the store's root_seed attribute is 8, its sweep config says 7",
        "the coordinate theta is missing or unreadable",
        "variables of featurefate.schema missing: 'theta'",
    ]
    assert len(check.lines()) == 4


def test_reproduce_checks_every_store_before_its_first_sweep(tmp_path, config_file, fake, capsys):
    out = tmp_path / "out"
    with sweep.StoreLock.acquire(out / "data" / "tiny.zarr"):
        argv = ["reproduce", "--config", str(config_file), "--out", str(out), "--workers", "1"]
        status, _, err = _run(argv, capsys)
    assert status == 2
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and "is being written by another sweep: pid" in errors[0]
    assert sorted(p.name for p in (out / "data").iterdir()) == []  # nothing ran


def test_a_store_fills_an_empty_folder(tmp_path, config_file, fake, monkeypatch, capsys):
    folder = tmp_path / "made-for-it"
    folder.mkdir()
    monkeypatch.chdir(folder)
    status, out, _ = _run(["sweep", str(config_file), "--out", "."], capsys)
    assert status == 0 and "8 cells computed" in out[-1]
    assert sweep.cell_counts(folder) == (8, 8)
    assert not (tmp_path / "made-for-it.lock").exists()
    assert _one_error(["sweep", str(config_file), "--out", "/"], capsys) == (
        "error: / cannot be a store: it has no folder to hold its lock file"
    )


def test_reproduce_reports_a_store_without_a_finished_cell(
    tmp_path, config_file, fake, monkeypatch, capsys
):
    monkeypatch.setattr(runner, "run_one", _failing_cell)
    out = tmp_path / "out"
    argv = ["reproduce", "--config", str(config_file), "--out", str(out)]
    status, stdout, err = _run([*argv, "--num-alpha", "4", "--num-theta", "3"], capsys)
    assert status == 1
    store = out / "data" / "tiny.zarr"
    assert f"error: tiny: store {store} has 0 of 8 cells finished, no figures or numbers" in err
    assert stdout == [str(out / "report.md")]
    report = (out / "report.md").read_text()
    assert "The store has 0 of 8 cells finished, no figures or numbers." in report


# ----------------------------------------------------------------------------- big grids

BIG = TINY.replace(
    "theta = [0.4, 0.8]", 'theta = { start = 0.0, stop = 1.0, num = 25000, scale = "pi/2" }'
)


def test_a_grid_over_the_cell_cap_is_refused_naming_its_keys(tmp_path, capsys):
    path = tmp_path / "big.toml"
    path.write_text(BIG.replace("num = 25000", "num = 100000"))
    line = _one_error(["sweep", str(path), "--out", str(tmp_path / "s.zarr")], capsys)
    assert "the grid has 400000 cells (grid.alpha 2 x grid.theta 100000 x grid.sigma 2)" in line
    assert f"at most {sweep.config.MAX_CELLS}" in line
    assert not (tmp_path / "s.zarr").exists()
    path.write_text(BIG.replace("num = 25000", "num = 10000000000"))
    line = _one_error(["sweep", str(path), "--out", str(tmp_path / "s.zarr")], capsys)
    assert "grid.theta.num must be an integer in [1, 100000]; got 10000000000" in line


def test_a_grid_at_the_cell_cap_is_set_up_in_seconds(tmp_path):
    """100 000 cells: config, store and the first cell's variables (minutes before)."""
    import time

    start = time.perf_counter()
    config = sweep.from_dict(tomllib.loads(BIG))
    assert math.prod(config.shape) == sweep.config.MAX_CELLS
    store = sweep.ResultStore.open(tmp_path / "s.zarr", config)
    assert not store.done().any() and store.done().shape == config.shape
    cells = config.cells()
    store.write_cell(
        (1, 7, 1), _fake_cell("linear_phase", config.config, cells[1 * 50_000 + 7 * 2 + 1], 7)
    )
    elapsed = time.perf_counter() - start
    assert elapsed < 15, elapsed  # about 1 s alone on one core
    done = store.done()
    assert done.sum() == 1 and done[1, 7, 1]
    # the fast read agrees with zarr's own
    zarr_done = zarr.open_group(str(tmp_path / "s.zarr"))["done"][:, :20]
    np.testing.assert_array_equal(done[:, :20], zarr_done)


def test_every_cell_of_a_grid_is_checked_though_checked_by_axis(tmp_path):
    text = TINY.replace("alpha = [0.5, 1.5]", "alpha = [0.5, 0.01]").replace(
        "theta = [0.4, 0.8]", "theta = [0.4, 4.0]"
    )
    with pytest.raises(sweep.ConfigError, match=r"alpha = 0\.01 at dim = 10"):
        sweep.from_dict(tomllib.loads(text))
    text = TINY.replace("theta = [0.4, 0.8]", "theta = [0.4, 4.0]")
    with pytest.raises(sweep.ConfigError, match="theta"):
        sweep.from_dict(tomllib.loads(text))


@pytest.mark.parametrize(
    ("experiment", "fixed", "grid", "keys"),
    [
        (
            "linear_phase",
            "dim = 1200000",
            "alpha = [0.5]\ntheta = [0.4]\nsigma = [0.0]",
            "fixed.dim = 1200000, fixed.n_instances = 20, fixed.depth = 2, grid.alpha up to 0.5",
        ),
        (
            "mechanism",
            "dim = 30000",
            "depth = [2, 3]",
            "fixed.dim = 30000, fixed.n_instances = 5, grid.depth up to 3",
        ),
        (
            "relu_phase",
            "d = 100\nm = 1000000",
            "rho = [0.5]\nn = [100000]",
            "fixed.d = 100, fixed.m = 1000000, fixed.n_instances = 4, grid.n up to 100000",
        ),
        (
            "discrepancy",
            "dim = 50000",
            "alpha = [0.5]\ntheta = [0.4]\ntarget_norm = [1.0]\nsigma = [0.1]",
            "fixed.dim = 50000, fixed.n_instances = 4, fixed.n_samples = 50",
        ),
    ],
)
def test_a_sweep_larger_than_memory_is_refused_naming_its_keys(
    tmp_path, monkeypatch, capsys, experiment, fixed, grid, keys
):
    """The estimate of `simulate point` (one piece of code), before the store exists."""
    monkeypatch.setattr(_usage, "physical_memory", lambda: 2**30)
    path = tmp_path / "big.toml"
    path.write_text(f'experiment = "{experiment}"\nseed = 0\n[fixed]\n{fixed}\n[grid]\n{grid}\n')
    line = _one_error(["sweep", str(path), "--out", str(tmp_path / "s.zarr")], capsys)
    assert keys in line and "a cell needs at least" in line, line
    assert "more than this machine's 1 GiB" in line
    assert not (tmp_path / "s.zarr").exists()


def test_verify_scales_with_the_cells_and_reads_only_finished_ones(tmp_path):
    """A 100 000-cell store, one cell written and not marked done: seconds (was > 10 min)."""
    import time

    config = sweep.from_dict(tomllib.loads(BIG))
    store = sweep.ResultStore.open(tmp_path / "s.zarr", config)
    store.write_cell((0, 3, 1), _fake_cell("linear_phase", config.config, config.cells()[7], 7))
    zarr.open_array(str(tmp_path / "s.zarr" / "done"), mode="r+")[0, 3, 1] = False
    start = time.perf_counter()
    check = sweep.verify_store(tmp_path / "s.zarr")
    elapsed = time.perf_counter() - start
    assert check.ok and check.finished == 0 and check.half_written == 1, check.lines()
    assert check.total == sweep.config.MAX_CELLS
    assert elapsed < 10, elapsed  # about 1 s alone on one core


def test_verify_finds_a_deleted_variable(tmp_path, config_file, fake, capsys):
    store = tmp_path / "s.zarr"
    _sweep(config_file, store)
    shutil.rmtree(store / "error_ridge")
    status, out, _ = _run(["verify", str(store)], capsys)
    assert status == 1
    assert out[1] == "problem: variables of featurefate.schema missing: 'error_ridge'"


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda s: shutil.rmtree(s / "error_ridge"), "lacks the variable error_ridge"),
        (
            lambda s: (s / "error_ridge" / "0.0.0.0.0").write_bytes(b""),
            "(ValueError: cannot reshape array of size 0",
        ),
        (
            lambda s: (s / "alpha" / ".zarray").unlink(),
            "(ZarrUserWarning: Object at alpha is not recognized",
        ),
    ],
    ids=["deleted variable", "emptied chunk", "no .zarray"],
)
def test_figure_and_export_of_a_damaged_store_say_so_in_one_line(
    tmp_path, config_file, fake, capsys, damage, expected
):
    store = tmp_path / "s.zarr"
    _sweep(config_file, store)
    damage(store)
    for argv in (
        ["figure", "fig2", "--data", str(store), "--out", str(tmp_path / "f")],
        ["export", str(store), "--netcdf", str(tmp_path / "s.nc")],
    ):
        line = _one_error(argv, capsys)
        assert line.startswith(f"error: the store {store} lacks") or line.startswith(
            f"error: cannot read the store {store} "
        ), line
        assert expected in line and f"`featurefate verify {store}`" in line, line
    status, out, _ = _run(["verify", str(store)], capsys)  # no raw warning on stderr either
    assert status == 1 and out[1].startswith("problem: ")
