"""A real sweep, end to end: the same numbers on 1 worker, 2 workers and a Dask cluster, and a
sweep killed mid-run then resumed equal to one that was never interrupted.

The Dask test starts ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 and stops
them. Each run spawns fresh processes that import JAX and compile, so the grid is tiny.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from featurefate import sweep
from featurefate.sweep.executors import local_executor

CONFIG = """
experiment = "linear_phase"
seed = 11
[fixed]
dim = 8
n_instances = 2
lam = [0.0, 0.2]
[fixed.training]
max_steps = 400
[grid]
alpha = [0.5, 0.75, 1.25, 1.5]
theta = [0.4, 1.2]
sigma = [0.2]
"""


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "e2e.toml"
    path.write_text(CONFIG)
    return path


def _run(config_path, store, **executor):
    cfg = sweep.load_config(config_path)
    with sweep.executor(**executor) as pool:
        report = sweep.run_sweep(cfg, store, executor=pool)
    assert report.ok and report.completed == 8, report.failed
    return sweep.open_results(store)


@pytest.fixture(scope="module")
def reference_store(config_path, tmp_path_factory):
    store = tmp_path_factory.mktemp("ref") / "s.zarr"
    _run(config_path, store, workers=1)
    return store


@pytest.fixture(scope="module")
def reference(reference_store):
    return sweep.open_results(reference_store)


def _assert_same_numbers(a: xr.Dataset, b: xr.Dataset):
    assert set(a.data_vars) == set(b.data_vars)
    assert (a.cell_wall_time > 0).all() and (b.cell_wall_time > 0).all()
    for name in a.data_vars:
        if name != "cell_wall_time":  # a measurement of the run, not a result
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_reference_is_complete_and_sensible(reference):
    assert bool(reference.done.all())
    assert reference.sizes["instance"] == 2 and reference.sizes["lam"] == 2
    assert np.isfinite(reference.error_scratch).all()
    # the two instances of a cell differ, and cells differ from each other
    assert (reference.error_scratch.diff("instance") != 0).all()
    assert len(np.unique(reference.error_linear.values)) == reference.error_linear.size


def test_two_local_workers_give_identical_numbers(reference, config_path, tmp_path):
    _assert_same_numbers(reference, _run(config_path, tmp_path / "s.zarr", workers=2))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_command(*args) -> list[str]:
    exe = Path(sys.executable).parent / "dask"
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "dask", *args]


@pytest.fixture
def dask_cluster(tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = [open(tmp_path / f"dask{i}.log", "w") for i in range(3)]  # noqa: SIM115
    common = {"cwd": tmp_path, "stderr": subprocess.STDOUT, "start_new_session": True}
    procs = [
        subprocess.Popen(
            _dask_command(
                "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"
            ),
            stdout=logs[0],
            **common,
        )
    ]
    procs += [
        subprocess.Popen(
            _dask_command(
                "worker", address, "--nthreads", "1", "--no-dashboard", "--name", f"w{i}"
            ),
            stdout=logs[1 + i],
            **common,
        )
        for i in range(2)
    ]
    try:
        from distributed import Client

        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in procs[::-1]:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for log in logs:
            log.close()


def test_dask_cluster_gives_identical_numbers(reference, config_path, tmp_path, dask_cluster):
    _assert_same_numbers(reference, _run(config_path, tmp_path / "s.zarr", scheduler=dask_cluster))


def _done_count(store: Path) -> int:
    try:
        return int(np.sum(zarr.open_group(str(store), mode="r")["done"][...]))
    except Exception:  # not created yet
        return 0


def _worker_pids(pid: int) -> list[int]:
    """The pool workers among a process's children (Linux /proc)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if "spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace")
        and "resource_tracker" not in Path(f"/proc/{child}/cmdline").read_text(errors="replace")
    ]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_killed_sweep_resumes_to_the_uninterrupted_result(reference, config_path, tmp_path):
    store = tmp_path / "s.zarr"
    command = [sys.executable, "-m", "featurefate", "sweep", str(config_path), "--out", str(store)]
    proc = subprocess.Popen(
        [*command, "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    try:
        while _done_count(store) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        workers = _worker_pids(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, no chance to clean up
        proc.wait()
        done_at_kill = _done_count(store)
        # its worker notices and ends instead of finishing its cell for nobody
        end = time.monotonic() + 5
        while any(_alive(pid) for pid in workers) and time.monotonic() < end:
            time.sleep(0.1)
        assert workers and not any(_alive(pid) for pid in workers)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
    assert 1 <= done_at_kill < 8, f"the kill came too late to test anything ({done_at_kill} done)"
    lock_file = store.with_name("s.zarr.lock")
    assert json.loads(lock_file.read_text())["pid"] == proc.pid  # left behind by the kill

    resumed = subprocess.run(
        [*command, "--resume", "--workers", "1"], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"took over the lock of {store}: its holder, pid {proc.pid} on host" in resumed.stderr
    assert not lock_file.exists()
    assert f"{8 - done_at_kill} cells computed, {done_at_kill} already done" in resumed.stdout
    result = sweep.open_results(store)
    assert int(result.done.sum()) == 8  # every cell once: one grid position per cell
    _assert_same_numbers(reference, result)


def test_cli_figure_and_export_from_a_store(reference_store, tmp_path, capsys):
    from featurefate.cli import main

    for name in ("fig1", "fig3"):
        with pytest.raises(SystemExit) as info:
            main(["figure", name, "--data", str(reference_store), "--out", str(tmp_path)])
        assert info.value.code == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == [
        "fig1_linear_sigma0.2.pdf",
        "fig1_linear_sigma0.2.png",
        "fig3_finetune_sigma0.2.pdf",
        "fig3_finetune_sigma0.2.png",
    ]
    with pytest.raises(SystemExit) as info:  # no sigma = 0 in this store
        main(["figure", "fig6", "--data", str(reference_store), "--out", str(tmp_path)])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: the store {reference_store} cannot make figure fig6: it needs sigma = 0 in "
        "the store; the store's sigma: 0.2"
    ]
    with pytest.raises(SystemExit) as info:  # a figure of another experiment
        main(["figure", "fig5", "--data", str(reference_store), "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "needs a discrepancy store" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # Theorem 3.4 is drawn from its own experiment
        main(["figure", "mechanism", "--data", str(reference_store), "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "needs a mechanism store" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # the article before a vowel
        main(["figure", "init_scale", "--data", str(reference_store), "--out", str(tmp_path)])
    assert "needs an init_scale store; got a linear_phase store" in capsys.readouterr().err

    with pytest.raises(SystemExit) as info:
        main(["export", str(reference_store), "--netcdf", str(tmp_path / "r.nc")])
    assert info.value.code == 0
    with xr.open_dataset(tmp_path / "r.nc") as nc:
        np.testing.assert_array_equal(
            nc.error_linear, sweep.open_results(reference_store).error_linear
        )


def _worker_threading():
    environ = {name: os.environ.get(name) for name in ("OPENBLAS_NUM_THREADS", "XLA_FLAGS")}
    return environ, len(os.listdir("/proc/self/task"))


def test_local_workers_start_with_single_threaded_blas_and_xla():
    """Set in the driver's environment: in the worker it would come after NumPy loaded BLAS."""
    with local_executor(1) as pool:
        environ, threads = pool.submit(_worker_threading).result(timeout=120)
    assert environ["OPENBLAS_NUM_THREADS"] == "1"
    assert "intra_op_parallelism_threads=1" in environ["XLA_FLAGS"]
    if sys.platform.startswith("linux"):
        # the main thread and the parent watch; OpenBLAS started too early would add its own
        # (4 threads in all on the 2-core development machine, before this was fixed)
        assert threads == 2
