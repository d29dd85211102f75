"""Sweeps on a real Dask cluster on 127.0.0.1: TLS with certificates from ``cluster-certs``,
an unreachable scheduler, a worker killed and the scheduler lost mid-sweep.

The clusters are started with the very command lines that ``featurefate cluster-certs`` prints
(``dask scheduler`` / ``dask worker`` subprocesses) and stopped by each test. Every run is
compared with one local run of the same tiny grid: the numbers must be identical.
"""

from __future__ import annotations

import datetime
import os
import shlex
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from featurefate import sweep
from featurefate.cli import main
from featurefate.sweep import certs as cluster_certs
from featurefate.sweep import executors, runner
from featurefate.sweep.store import ResultStore

CONFIG = """
experiment = "linear_phase"
seed = 5
[fixed]
dim = 6
n_instances = 2
lam = [0.0]
[fixed.training]
max_steps = 300
[grid]
alpha = [0.5, 1.5]
theta = [0.4, 1.2]
sigma = [0.2]
"""
CELLS = 4


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "cluster.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def reference(config_path, tmp_path_factory):
    """The same grid on one local worker process."""
    store = tmp_path_factory.mktemp("ref") / "s.zarr"
    with sweep.executor(workers=1) as pool:
        report = sweep.run_sweep(sweep.load_config(config_path), store, executor=pool)
    assert report.ok and report.completed == CELLS
    return sweep.open_results(store)


def _assert_same_numbers(a: xr.Dataset, b: xr.Dataset):
    assert bool(b.done.all())
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        if name != "cell_wall_time":  # a measurement of the run, not a result
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def _featurefate(*args) -> list[str]:
    return [sys.executable, "-m", "featurefate", *map(str, args)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def certs_output(tmp_path_factory):
    """``featurefate cluster-certs`` for 127.0.0.1: its directory and printed commands."""
    directory = tmp_path_factory.mktemp("certs") / "tls"
    port = _free_port()
    out = subprocess.run(
        [
            *_featurefate(
                "cluster-certs", directory, "--hosts", "127.0.0.1,localhost", "--port", port
            )
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    commands = {}
    for line in out.stdout.splitlines():
        words = shlex.split(line)
        if "scheduler" in words[:2]:
            commands["scheduler"] = words
        elif "worker" in words:
            commands["worker"] = words
        elif words[:2] == ["featurefate", "sweep"]:
            commands["sweep"] = words
    return directory, port, commands, out.stdout


def _with_executables(words: list[str]) -> list[str]:
    """The printed command with this environment's ``dask`` executable."""
    exe = Path(sys.executable).parent / "dask"
    dask = [str(exe)] if exe.exists() else [sys.executable, "-m", "dask"]
    at = words.index("dask")
    return words[:at] + dask + words[at + 1 :]


def _option(words: list[str], flag: str) -> str:
    return words[words.index(flag) + 1]


def _client_tls(commands) -> dict:
    words = commands["sweep"]
    return {
        "ca_file": _option(words, "--tls-ca-file"),
        "cert": _option(words, "--tls-cert"),
        "key": _option(words, "--tls-key"),
    }


class Cluster:
    """A scheduler and workers started as subprocesses, each in its own process group."""

    def __init__(self, commands, *, workers: int, log_dir: Path):
        self.address = _option(commands["sweep"], "--scheduler")
        self.commands = commands
        self.log_dir = log_dir
        self.scheduler = self._start(
            [*_with_executables(commands["scheduler"]), "--no-dashboard"], "scheduler"
        )
        worker = _with_executables(commands["worker"])
        worker[worker.index("--nworkers") + 1] = "1"
        self.workers = {
            f"w{i}": self._start([*worker, "--no-dashboard", "--name", f"w{i}"], f"w{i}")
            for i in range(workers)
        }
        self.security = sweep.cluster_security(self.address, **_client_tls(commands))

    def _start(self, argv, name):
        with open(self.log_dir / f"{name}.log", "w") as log:  # the child keeps its own copy
            return subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.log_dir
            )

    def wait(self, workers: int):
        from distributed import Client

        executors.reach_scheduler(self.address, security=self.security, timeout=60)
        with Client(
            self.address, security=self.security, timeout=60, set_as_default=False
        ) as client:
            client.wait_for_workers(workers, timeout=120)

    @staticmethod
    def kill(proc, sig=signal.SIGKILL):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def stop(self):
        for proc in [*self.workers.values(), self.scheduler]:
            self.kill(proc, signal.SIGTERM)
        for proc in [*self.workers.values(), self.scheduler]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(proc)
                proc.wait()


@contextmanager
def tls_cluster(certs_output, tmp_path, *, workers: int):
    _, _, commands, _ = certs_output
    cluster = Cluster(commands, workers=workers, log_dir=tmp_path)
    try:
        cluster.wait(workers)
        yield cluster
    finally:
        cluster.stop()


# ------------------------------------------------------------------ cluster-certs (no cluster)


def test_cluster_certs_writes_a_ca_and_one_certificate_per_role(certs_output):
    from cryptography import x509

    directory, port, commands, _ = certs_output
    made = cluster_certs.ClusterCerts(directory, ("127.0.0.1", "localhost"))
    assert sorted(p.name for p in directory.iterdir()) == sorted(p.name for p in made.files())
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    ca = x509.load_pem_x509_certificate(made.ca.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for role in cluster_certs.ROLES:
        assert stat.S_IMODE(made.key(role).stat().st_mode) == 0o600
        assert stat.S_IMODE(made.cert(role).stat().st_mode) == 0o644
        cert = x509.load_pem_x509_certificate(made.cert(role).read_bytes())
        cert.verify_directly_issued_by(ca)  # raises if not signed by the CA
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == ["localhost"]
        assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        days = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert abs(days - datetime.timedelta(days=365, minutes=5)) < datetime.timedelta(seconds=5)
    assert stat.S_IMODE(made.ca_key.stat().st_mode) == 0o600
    # the printed commands use exactly these files and this address
    address = f"tls://127.0.0.1:{port}"
    assert _option(commands["worker"], "worker") == address
    assert _option(commands["sweep"], "--scheduler") == address
    assert _option(commands["scheduler"], "--protocol") == "tls"
    for role, words in (("scheduler", commands["scheduler"]), ("worker", commands["worker"])):
        assert _option(words, "--tls-cert") == str(made.cert(role))
        assert _option(words, "--tls-key") == str(made.key(role))
        assert _option(words, "--tls-ca-file") == str(made.ca)
    assert _client_tls(commands) == {
        "ca_file": str(made.ca),
        "cert": str(made.cert("client")),
        "key": str(made.key("client")),
    }
    assert "OPENBLAS_NUM_THREADS=1" in commands["worker"]
    assert "--nthreads" in commands["worker"] and _option(commands["worker"], "--nthreads") == "1"


def test_cluster_certs_refuses_to_overwrite_unless_forced(tmp_path, capsys):
    directory = tmp_path / "c"
    assert _exit(["cluster-certs", str(directory), "--hosts", "node1", "--days", "3"]) == 0
    first = (directory / "ca.pem").read_bytes()
    (directory / "worker-key.pem").chmod(0o644)
    capsys.readouterr()
    assert _exit(["cluster-certs", str(directory)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {directory / 'ca.pem'} exists")
    assert "--force" in err[0] and (directory / "ca.pem").read_bytes() == first
    assert _exit(["cluster-certs", str(directory), "--hosts", "node1", "--force"]) == 0
    assert (directory / "ca.pem").read_bytes() != first  # a new CA
    assert stat.S_IMODE((directory / "worker-key.pem").stat().st_mode) == 0o600
    out = capsys.readouterr().out
    assert "dask scheduler --protocol tls --host node1 --port 8786" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hosts", "bad host"], "--hosts must be host names or IP addresses; got 'bad host'"),
        (["--hosts", "tls://x"], "--hosts must be host names or IP addresses; got 'tls://x'"),
        (["--days", "0"], "--days must be an integer >= 1; got 0"),
        (["--port", "70000"], "--port must be an integer in [1, 65535]; got 70000"),
    ],
)
def test_cluster_certs_bad_values(tmp_path, capsys, argv, message):
    assert _exit(["cluster-certs", str(tmp_path / "c"), *argv]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


@pytest.mark.parametrize("argv", [["--port", "0"], ["--port", "99999"], ["--days", "-1"]])
def test_cluster_certs_checks_everything_before_writing(tmp_path, capsys, argv):
    """A bad --port (only used in the commands printed) is refused before any file exists."""
    directory = tmp_path / "c"
    assert _exit(["cluster-certs", str(directory), *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {argv[0]} must be an integer ")
    assert captured.err.strip().endswith(f"; got {int(argv[1])}")
    assert not directory.exists()


def _exit(argv) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code


# ------------------------------------------------------------------ TLS settings (no cluster)


def test_tls_settings_are_checked_before_connecting(certs_output, tmp_path, monkeypatch):
    import dask.config

    tls = _client_tls(certs_output[2])
    address = "tls://127.0.0.1:1"
    security = sweep.cluster_security(address, **tls)
    assert security.require_encryption and security.tls_client_cert == tls["cert"]
    assert sweep.cluster_security("tcp://127.0.0.1:1") is None
    assert sweep.cluster_security(None) is None

    def refused(message, scheduler=address, **files):
        with pytest.raises(ValueError, match=message):
            sweep.cluster_security(scheduler, **files)

    refused(
        r"^--tls-ca-file, --tls-cert need --scheduler tls://HOST:PORT; got scheduler tcp:",
        "tcp://h:1",
        ca_file=tls["ca_file"],
        cert=tls["cert"],
    )
    refused(r"^--tls-key needs --scheduler tls://HOST:PORT; got no scheduler", None, key="k")
    refused(
        rf"^--tls-cert {tmp_path}/absent.pem: no such file$",
        ca_file=tls["ca_file"],
        cert=tmp_path / "absent.pem",
    )
    refused(rf"^--tls-ca-file {tmp_path}: is not a file", ca_file=tmp_path, cert=tls["cert"])
    refused(r"^scheduler tls://127.0.0.1:1 needs --tls-cert too$", ca_file=tls["ca_file"])
    refused(
        r"^--tls-ca-file .*client-key.pem: not a PEM CA certificate",
        ca_file=tls["key"],
        cert=tls["cert"],
    )
    worker_key = str(Path(tls["key"]).with_name("worker-key.pem"))
    refused(
        r"^--tls-cert and --tls-key: cannot load a PEM certificate and its private key \(KEY_VALUES_MISMATCH\)",
        ca_file=tls["ca_file"],
        cert=tls["cert"],
        key=worker_key,
    )
    refused(
        r"^scheduler tls://127.0.0.1:1 needs TLS files: give --tls-ca-file, --tls-cert and --tls-key, or set distributed.comm.tls.ca-file"
    )

    # without the options, Dask's own configuration names the files
    keys = {"ca-file": tls["ca_file"], "client.cert": tls["cert"], "client.key": tls["key"]}
    with dask.config.set({f"distributed.comm.tls.{k}": v for k, v in keys.items()}):
        from_config = sweep.cluster_security(address)
        assert (from_config.tls_ca_file, from_config.tls_client_key) == (tls["ca_file"], tls["key"])
    with dask.config.set({"distributed.comm.tls.ca-file": str(tmp_path / "gone.pem")}):
        refused(r"needs Dask config distributed.comm.tls.client.cert too$")
        with dask.config.set({"distributed.comm.tls.client.cert": tls["cert"]}):
            refused(r"^Dask config distributed.comm.tls.ca-file .*gone.pem: no such file$")


def test_tls_options_through_the_cli_are_one_line(certs_output, config_path, tmp_path, capsys):
    tls = _client_tls(certs_output[2])
    argv = ["sweep", str(config_path), "--out", str(tmp_path / "s.zarr")]
    assert _exit([*argv, "--tls-ca-file", tls["ca_file"]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --tls-ca-file needs --scheduler tls://HOST:PORT; got no scheduler (start the "
        "scheduler with --protocol tls and give --scheduler tls://...)"
    ]
    argv += ["--scheduler", "tls://127.0.0.1:1", "--tls-ca-file", tls["ca_file"]]
    assert _exit([*argv, "--tls-cert", "absent.pem"]) == 2
    assert capsys.readouterr().err.strip() == "error: --tls-cert absent.pem: no such file"
    assert _exit(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "error: scheduler tls://127.0.0.1:1 needs --tls-cert too"
    )
    assert _exit([*argv[:4], "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --connect-timeout must be a finite number in (0, inf); got 0"
    )
    assert not (tmp_path / "s.zarr").exists()


# ------------------------------------------------------------------ unreachable schedulers


@pytest.mark.parametrize(
    ("address", "what"),
    [
        (
            "tcp://127.0.0.1:99999",
            "with a port in [1, 65535]; got 'tcp://127.0.0.1:99999' (port 99999)",
        ),
        ("tcp://127.0.0.1:0", "with a port in [1, 65535]; got 'tcp://127.0.0.1:0' (port 0)"),
        ("tcp://:8786", "with a host; got 'tcp://:8786'"),
        ("tcp://host", "with a port in [1, 65535]; got 'tcp://host' (no port)"),
        ("127.0.0.1:8786", "; got '127.0.0.1:8786'"),
    ],
)
def test_a_malformed_scheduler_address_is_refused_up_front(
    config_path, tmp_path, capsys, address, what
):
    """Host and port are checked before the config, the store or a connection: one line
    naming --scheduler, at once (no connect timeout, no TLS hint)."""
    argv = ["sweep", str(config_path), "--out", str(tmp_path / "s.zarr"), "--scheduler", address]
    start = time.monotonic()
    assert _exit([*argv, "--connect-timeout", "30"]) == 2
    assert time.monotonic() - start < 5
    shape = "an address like tcp://HOST:PORT or tls://HOST:PORT"
    assert capsys.readouterr().err.splitlines() == [
        f"error: --scheduler must be {shape} {what}".replace(" ;", ";")
    ]
    assert not (tmp_path / "s.zarr").exists()
    for good in ("tcp://127.0.0.1:8786", "tls://[::1]:1", "tcp://node-1.example.org:65535"):
        assert executors.check_address(good) == good


def test_the_tls_hint_only_after_a_handshake(monkeypatch):
    """A refused connection or an unknown host gets no "(a TLS scheduler? ...)" hint."""
    assert not executors._handshake_failed(ConnectionRefusedError(111, "refused"))
    assert not executors._handshake_failed(socket.gaierror(-2, "Name or service not known"))
    wrapped = OSError("Timed out trying to connect")
    wrapped.__cause__ = ConnectionRefusedError(111, "refused")
    assert not executors._handshake_failed(wrapped)
    assert not executors._handshake_failed(ValueError("missing port number in address 'h'"))
    assert executors._handshake_failed(OSError("connection closed during the handshake"))
    assert executors._handshake_failed(ssl.SSLCertVerificationError("certificate verify failed"))


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_an_unreachable_scheduler_is_one_line_after_the_connect_timeout(
    certs_output, config_path, tmp_path, capsys, kind
):
    """Nothing listening (connection refused), or a port that never answers (the TLS handshake
    waits): either way one line and status 2 after --connect-timeout, no traceback, no hang."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        if kind == "silent":
            listener.listen()  # accepted by the kernel, never answered
        else:
            listener.close()
        address = f"tls://127.0.0.1:{port}"
        tls = _client_tls(certs_output[2])
        argv = ["sweep", str(config_path), "--out", str(tmp_path / "s.zarr")]
        argv += ["--scheduler", address, "--connect-timeout", "1.5"]
        argv += ["--tls-ca-file", tls["ca_file"], "--tls-cert", tls["cert"]]
        argv += ["--tls-key", tls["key"]]
        start = time.monotonic()
        assert _exit(argv) == 2
        elapsed = time.monotonic() - start
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"error: cannot reach scheduler {address}: ")
    assert lines[0].endswith("(after 1.5 s)")
    assert ("Connection refused" in lines[0]) == (kind == "refused")
    assert 1.4 < elapsed < 6
    assert not (tmp_path / "s.zarr").exists()


def test_an_unreachable_scheduler_in_a_real_process_exits_promptly(config_path, tmp_path):
    """The whole process: no traceback from the Dask client's clean-up, and no 60 s wait."""
    start = time.monotonic()
    done = subprocess.run(
        _featurefate(
            *("sweep", config_path, "--out", tmp_path / "s.zarr", "--connect-timeout", 1),
            *("--scheduler", f"tcp://127.0.0.1:{_free_port()}"),
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: cannot reach scheduler")
    assert "(after 1 s)" in done.stderr and done.stdout == ""
    assert elapsed < 30  # imports on a loaded machine; the old clean-up alone took 60 s


# ------------------------------------------------------------------ a lost executor (no cluster)


def _fake_cell(experiment, config, cell, root_seed):
    rng = np.random.default_rng(sweep.cell_seed(root_seed, cell))
    return xr.Dataset(
        {"error_scratch": (("instance",), rng.random(config.n_instances))},
        coords={"instance": np.arange(config.n_instances), "lam": list(config.lam), **cell},
    )


class _LosingPool(ThreadPoolExecutor):
    """Runs the first ``good`` cells; then its futures fail as a lost executor's do."""

    def __init__(self, good: int, error: BaseException):
        super().__init__(1)
        self.good, self.error, self.submitted = good, error, 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        if self.submitted <= self.good:
            return super().submit(fn, *args, **kwargs)
        future = Future()
        future.set_exception(self.error)
        return future


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            executors.ExecutorLost("lost the Dask scheduler tcp://h:1: gone"),
            "lost the Dask scheduler tcp://h:1: gone; the store",
        ),
        (BrokenExecutor("pool broke"), "a local worker process died (pool broke); the store"),
    ],
)
def test_a_lost_executor_stops_the_sweep_and_keeps_the_finished_cells(
    config_path, tmp_path, monkeypatch, error, message
):
    monkeypatch.setattr(runner, "run_one", _fake_cell)
    cfg = sweep.load_config(config_path)
    store = tmp_path / "s.zarr"
    with _LosingPool(2, error) as pool, pytest.raises(sweep.ExecutorLost) as info:
        sweep.run_sweep(cfg, store, executor=pool, max_in_flight=1)
    kept = "keeps its 2 finished cells of 4: resume with --resume"
    assert str(info.value) == f"{message} {store} {kept}"
    assert isinstance(info.value, OSError)  # the CLI: one line, status 1
    assert int(ResultStore.open(store, cfg, resume=True).done().sum()) == 2
    with ThreadPoolExecutor(1) as pool:
        report = sweep.run_sweep(cfg, store, executor=pool, resume=True)
    assert (report.skipped, report.completed, report.failed) == (2, 2, [])


# ------------------------------------------------------------------ real clusters


def test_tls_cluster_round_trip(reference, certs_output, config_path, tmp_path, capsys):
    """The commands cluster-certs prints start a TLS cluster; a sweep through it gives the local
    run's numbers; a plain tcp:// connection, or one with another CA, is refused."""
    other = tmp_path / "other"
    cluster_certs.make_cluster_certs(other, hosts=["127.0.0.1"])
    with tls_cluster(certs_output, tmp_path, workers=1) as cluster:
        argv = [w if w != "CONFIG" else str(config_path) for w in certs_output[2]["sweep"][2:]]
        argv[argv.index("STORE")] = str(tmp_path / "s.zarr")
        assert _exit(["sweep", *argv]) == 0
        assert f"{CELLS} cells computed, 0 already done, 0 failed" in capsys.readouterr().out
        _assert_same_numbers(reference, sweep.open_results(tmp_path / "s.zarr"))

        plain = cluster.address.replace("tls://", "tcp://")
        with pytest.raises(sweep.SchedulerUnreachable) as info:
            executors.reach_scheduler(plain, timeout=3)
        assert str(info.value).startswith(f"cannot reach scheduler {plain}: ")
        assert "(a TLS scheduler? then give --scheduler tls://...)" in str(info.value)
        stranger = sweep.cluster_security(
            cluster.address,
            ca_file=other / "ca.pem",
            cert=other / "client.pem",
            key=other / "client-key.pem",
        )
        with pytest.raises(sweep.SchedulerUnreachable) as info:
            executors.reach_scheduler(cluster.address, security=stranger, timeout=3)
        assert str(info.value).startswith(f"cannot reach scheduler {cluster.address}: ")
        assert "certificates of another cluster's CA?" in str(info.value)


def _kill_the_first_busy_worker(cluster, victims: list, stop: threading.Event) -> None:
    """Watch the scheduler; kill the first worker that is given a cell (it is then busy with
    it: a fresh worker spends seconds starting JAX for its first cell)."""
    from distributed import Client

    with Client(
        cluster.address, security=cluster.security, timeout=30, set_as_default=False
    ) as client:
        while not stop.is_set():
            busy = [address for address, keys in client.processing().items() if keys]
            if busy:
                name = client.scheduler_info()["workers"][busy[0]]["name"]
                Cluster.kill(cluster.workers[name])
                victims.append(name)
                return
            time.sleep(0.02)


@pytest.mark.slow
def test_a_worker_killed_mid_sweep(reference, certs_output, config_path, tmp_path):
    """Dask runs the killed worker's cell again on the other: each cell is written once."""
    cfg = sweep.load_config(config_path)
    with tls_cluster(certs_output, tmp_path, workers=2) as cluster:
        victims, stop = [], threading.Event()
        watch = threading.Thread(target=_kill_the_first_busy_worker, args=(cluster, victims, stop))
        watch.start()
        seen = []
        try:
            with sweep.executor(scheduler=cluster.address, security=cluster.security) as pool:
                report = sweep.run_sweep(
                    cfg, tmp_path / "s.zarr", executor=pool, progress=lambda d, t: seen.append(d)
                )
        finally:
            stop.set()
            watch.join()
        assert len(victims) == 1, "no worker was killed"
        assert cluster.workers[victims[0]].poll() is not None
    assert report.ok and report.completed == CELLS
    assert seen == list(range(CELLS + 1))  # every cell written exactly once
    _assert_same_numbers(reference, sweep.open_results(tmp_path / "s.zarr"))


@pytest.mark.slow
def test_the_scheduler_lost_mid_sweep_then_resumed(
    reference, certs_output, config_path, tmp_path, capsys, monkeypatch
):
    """One line and status 1; the store keeps the finished cells; --resume (here on local
    processes) completes it to the local run's numbers."""
    with tls_cluster(certs_output, tmp_path, workers=1) as cluster:
        write_cell = ResultStore.write_cell
        written = []

        def write_then_kill(self, index, ds):
            write_cell(self, index, ds)
            written.append(index)
            if len(written) == 1:
                Cluster.kill(cluster.scheduler)
                cluster.scheduler.wait()

        monkeypatch.setattr(ResultStore, "write_cell", write_then_kill)
        argv = [w if w != "CONFIG" else str(config_path) for w in certs_output[2]["sweep"][2:]]
        argv[argv.index("STORE")] = str(tmp_path / "s.zarr")
        start = time.monotonic()
        assert _exit(["sweep", *argv]) == 1
        assert time.monotonic() - start < 60
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert "Traceback" not in err
        (line,) = [line for line in lines if line.startswith("error:")]
        assert line.startswith(f"error: lost the Dask scheduler {cluster.address}")
        kept = len(written)
        cells = "finished cell" if kept == 1 else "finished cells"
        assert line.endswith(f"keeps its {kept} {cells} of {CELLS}: resume with --resume")
        assert 1 <= kept < CELLS
        assert int(sweep.open_results(tmp_path / "s.zarr").done.sum()) == kept
        monkeypatch.setattr(ResultStore, "write_cell", write_cell)
        # Dask's workers end with their scheduler: a new cluster needs new workers too
        cluster.workers["w0"].wait(timeout=60)

    assert _exit(["sweep", str(config_path), "--out", str(tmp_path / "s.zarr")]) == 2
    assert "--resume" in capsys.readouterr().err  # the store exists: only --resume goes on
    argv = ["sweep", str(config_path), "--out", str(tmp_path / "s.zarr"), "--workers", "1"]
    assert _exit([*argv, "--resume"]) == 0
    out = capsys.readouterr().out
    assert f"{CELLS - kept} cells computed, {kept} already done, 0 failed" in out
    _assert_same_numbers(reference, sweep.open_results(tmp_path / "s.zarr"))
