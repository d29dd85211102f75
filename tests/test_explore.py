"""The explorer: theory.mjs against the Python closed forms (Node's test runner), the built page,
the store export, ``featurefate explore`` and its ``--serve``.

The browser test is in test_explore_browser.py.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from featurefate import explore
from featurefate.cli import app, main
from featurefate.explore.page import render_page
from featurefate.theory import linear as theory

ROOT = Path(__file__).resolve().parents[1]
NODE_TESTS = ROOT / "tests" / "js" / "theory.test.mjs"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed (Node's test runner)")


def _json_number(x: float):
    x = float(x)
    return x if math.isfinite(x) else str(x)  # "inf", "-inf", "nan"


def _python_values(method, alpha, theta, sigma, options) -> dict:
    name, _, variant = method.partition("-")
    norms = {"source_norm": options["source_norm"], "target_norm": options["target_norm"]}
    dim, depth = options["dim"], options["depth"]
    scratch = theory.scratch_error(alpha, sigma, target_norm=norms["target_norm"], dim=dim)
    if name == "linear":
        transfer = theory.linear_transfer_error(
            alpha, theta, sigma, target_norm=norms["target_norm"], dim=dim
        )
        t = theory.transferability("linear", alpha, theta, sigma, depth=depth, dim=dim, **norms)
    elif name == "ridge":
        kw = {"depth": depth, "dim": dim, **norms}
        transfer = theory.ridge_transfer_error(alpha, theta, sigma, options["lam"], **kw)
        t = theory.transferability("ridge", alpha, theta, sigma, lam=options["lam"], **kw)
    else:
        kw = {"variant": variant, "depth": depth, "dim": dim, **norms}
        transfer = theory.finetune_error(alpha, theta, sigma, **kw)
        t = theory.transferability("finetune", alpha, theta, sigma, **kw)
    return {"scratch": scratch, "transfer": transfer, "transferability": t}


def _random_cases(seed=20261202, count=600, exact_finite=20) -> list[dict]:
    """A random grid over every method and option, plus the edges (alpha = 1, n within 1 of D,
    n <= 2, theta = 0 and pi/2, sigma = 0, a grid's alpha one rounding off 1)."""
    rng = np.random.default_rng(seed)
    settings = []
    methods = ["linear", "ridge", "finetune-paper", "finetune-exact"]
    for k in range(count + exact_finite):
        exact = k >= count
        method = "finetune-exact" if exact else methods[k % 4]
        dim = None
        if exact:  # one quadrature per value (tens of ms, more for L > 2): a few, at small D
            dim = int(rng.integers(6, 45))
        elif rng.random() < 0.6 and method != "finetune-exact":
            dim = int(rng.integers(3, 800))
        options = {
            "dim": dim,
            "depth": int(rng.choice([2, 2, 3, 4] if not exact else [2, 2, 2, 3])),
            "source_norm": 1.0 if rng.random() < 0.3 else float(rng.uniform(0.3, 2.5)),
            "target_norm": 1.0 if rng.random() < 0.3 else float(rng.uniform(0.3, 2.5)),
            "lam": 0.0 if rng.random() < 0.15 else float(rng.uniform(0.0, 2.0)),
        }
        alpha = float(rng.uniform(0.02, 1.0 if exact else 2.5))
        theta = float(rng.uniform(0.0, np.pi))
        sigma = 0.0 if rng.random() < 0.2 else float(rng.uniform(0.0, 1.5))
        settings.append((method, alpha, theta, sigma, options))
    base = {"depth": 2, "source_norm": 1.0, "target_norm": 1.0, "lam": 0.3}
    for method in methods[:3]:
        for dim, alpha in [
            (None, 1.0),
            (50, 0.98),
            (50, 1.0),
            (50, 1.02),
            (50, 0.04),
            (10, 0.3),
            (500, 0.9999999999999999),
            (500, 1.0000000000000002),
        ]:
            for sigma in (0.0, 0.4):
                for theta in (0.0, np.pi / 2):
                    settings.append((method, alpha, theta, sigma, {**base, "dim": dim}))
    settings.append(("finetune-exact", 0.999, 0.7, 0.3, {**base, "dim": 1000}))  # D-1 <= n < D
    settings.append(("finetune-exact", 0.5, 0.0, 0.0, {**base, "dim": 20}))
    cases = []
    for method, alpha, theta, sigma, options in settings:
        values = _python_values(method, alpha, theta, sigma, options)
        cases.append(
            {
                "method": method,
                "alpha": alpha,
                "theta": theta,
                "sigma": sigma,
                **options,
                **{k: _json_number(v) for k, v in values.items()},
            }
        )
    return cases


@needs_node
def test_theory_mjs_agrees_with_python(tmp_path):
    cases = _random_cases()
    assert any(not math.isfinite(float(c["transferability"])) for c in cases)
    path, report = tmp_path / "cases.json", tmp_path / "report.json"
    path.write_text(json.dumps(cases))
    env = {"PATH": str(Path(NODE).parent), "FEATUREFATE_THEORY_CASES": str(path)}
    env["FEATUREFATE_THEORY_REPORT"] = str(report)
    run = subprocess.run(
        [NODE, "--test", str(NODE_TESTS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert re.search(r"^# pass 5$", run.stdout, re.MULTILINE), run.stdout[-2000:]
    worst = json.loads(report.read_text())
    print(f"theory.mjs vs Python, {worst['count']} cases, max relative deviation: {worst}")
    assert worst["count"] == len(cases)
    assert worst["errors"] <= 1e-9 and worst["transferability"] <= 1e-9


def test_page_is_self_contained(tmp_path):
    paths = explore.write_explorer(tmp_path)
    assert [p.name for p in paths] == ["index.html", "theory.mjs"]
    html = paths[0].read_text()
    module = (ROOT / "src" / "featurefate" / "explore" / "theory.mjs").read_text()
    assert paths[1].read_text() == module
    # nothing from the network: no URL in a src or href, no import, no module script
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"^\s*import\b|\bimport\(", html, re.MULTILINE)
    assert 'type="module"' not in html
    # the module and the contour code are inlined, without their exports
    assert "function transferabilityGrid(" in html and "function contourSegments(" in html
    assert not re.search(r"^export ", html, re.MULTILINE)
    assert "/*@" not in html and "@DATA@" not in html
    assert re.search(r'<script id="featurefate-data" type="application/json">null</script>', html)


def test_data_is_escaped_inside_the_page():
    html = render_page({"points": {}, "note": "</script><script>alert(1)</script>"})
    data = re.search(r'type="application/json">(.*?)</script>', html, re.DOTALL).group(1)
    assert json.loads(data)["note"] == "</script><script>alert(1)</script>"
    with pytest.raises(ValueError):
        render_page({"x": float("nan")})


def test_the_wheel_ships_the_page():
    config = (ROOT / "pyproject.toml").read_text()
    shipped = re.search(r"\[tool\.setuptools\.package-data\]\s*\nfeaturefate = (\[.*?\])", config)
    patterns = json.loads(shipped.group(1))
    for name in ("index.html", "theory.mjs", "contour.mjs"):
        assert any(Path("explore", name).match(p) for p in patterns), name


# ------------------------------------------------------------------------------------------
# simulated signs from a store

STORE_CONFIG = """
experiment = "linear_phase"
seed = 0
[fixed]
dim = 30
depth = 3
n_instances = 2
source_norm = 1.5
[grid]
alpha = [0.5, 1.5]
theta = [0.4, 1.2]
sigma = [0.2]
lam = [0.0, 0.1]
"""


def _synthetic_store(tmp_path) -> Path:
    """A linear_phase store with chosen values: every sign class, one cell not done."""
    from featurefate.sweep import load_config
    from featurefate.sweep.store import ResultStore

    path = tmp_path / "config.toml"
    path.write_text(STORE_CONFIG)
    sweep = load_config(path)
    store = ResultStore.open(tmp_path / "s.zarr", sweep)
    # (alpha index, theta index): T, se, scratch converged; cell (1, 1) is left not done
    cells = {
        (0, 0): (0.3, 0.05, True),  # +1
        (0, 1): (-0.3, 0.05, True),  # -1
        (1, 0): (-0.3, 0.2, True),  # 0: within 2 s.e.
    }
    for (i, j), (t, se, converged) in cells.items():
        inst = ("instance",)
        cell = xr.Dataset(
            {
                "transferability_linear": ((), t),
                "transferability_linear_stderr": ((), se),
                "transferability_ridge": (("lam",), [t, -t]),
                "transferability_ridge_stderr": (("lam",), [se, se]),
                "transferability_finetune": ((), 0.0005),
                "transferability_finetune_stderr": ((), 0.0),
                "converged_scratch": (inst, [converged, True]),
                "converged_finetune": (inst, [True, True]),
            },
            coords={"lam": [0.0, 0.1]},
            attrs={"dim": 30, "depth": 3},
        )
        store.write_cell((i, j, 0), cell)
    return store.path


def test_store_signs(tmp_path):
    signs = explore.store_signs(_synthetic_store(tmp_path))
    assert (signs["dim"], signs["depth"], signs["instances"]) == (30, 3, 2)
    assert signs["source_norm"] == 1.5 and signs["target_norm"] == 1.0
    assert signs["sigma"] == [0.2] and signs["lam"] == [0.0, 0.1]
    linear = {(p["alpha"], p["theta"]): p["sign"] for p in signs["points"]["linear"]}
    assert linear == {(0.5, 0.4): 1, (0.5, 1.2): -1, (1.5, 0.4): 0}
    ridge = {(p["alpha"], p["theta"], p["lam"]): p["sign"] for p in signs["points"]["ridge"]}
    assert ridge[(0.5, 0.4, 0.0)] == 1 and ridge[(0.5, 0.4, 0.1)] == -1
    # |T| < 1e-3 is not a sign even with a zero standard error
    assert {p["sign"] for p in signs["points"]["finetune"]} == {0}
    page = render_page(signs)
    assert json.loads(re.search(r'json">(.*?)</script>', page, re.DOTALL).group(1)) == signs


def test_store_signs_marks_the_step_limit(tmp_path):
    from featurefate.sweep import load_config
    from featurefate.sweep.store import ResultStore

    path = tmp_path / "config.toml"
    path.write_text(STORE_CONFIG)
    store = ResultStore.open(tmp_path / "s.zarr", load_config(path))
    cell = xr.Dataset(
        {
            "transferability_linear": ((), -0.4),
            "transferability_linear_stderr": ((), 0.01),
            "converged_scratch": (("instance",), [True, False]),
        },
        attrs={"dim": 30, "depth": 3},
    )
    store.write_cell((0, 0, 0), cell)
    signs = explore.store_signs(store.path)
    assert [p["sign"] for p in signs["points"]["linear"]] == ["limit"]


def test_store_signs_refuses_other_stores(tmp_path):
    with pytest.raises(ValueError, match="not a featurefate result store"):
        explore.store_signs(tmp_path)


# ------------------------------------------------------------------------------------------
# the command

runner = CliRunner()


def test_explore_command_writes_the_page(tmp_path):
    store = _synthetic_store(tmp_path)
    out = tmp_path / "page"
    result = runner.invoke(app, ["explore", "--out", str(out), "--data", str(store)])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(out / "index.html"), str(out / "theory.mjs")]
    assert '"dim":30' in (out / "index.html").read_text()


def test_explore_serve(tmp_path, monkeypatch):
    """--serve: the folder on 127.0.0.1 at a free port, opened in the browser; here the
    'browser' fetches the page and stops the server as Ctrl-C would."""
    import webbrowser

    seen = {}

    def browse(url, *args, **kwargs):
        seen["url"] = url
        with urllib.request.urlopen(url, timeout=10) as response:
            seen["page"] = response.read().decode()
        with urllib.request.urlopen(url.replace("index.html", "theory.mjs"), timeout=10) as r:
            seen["type"] = r.headers["Content-Type"]
        raise KeyboardInterrupt

    monkeypatch.setattr(webbrowser, "open", browse)
    out = tmp_path / "page"
    result = runner.invoke(app, ["explore", "--out", str(out), "--serve"])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/index\.html", seen["url"])
    assert seen["page"] == (out / "index.html").read_text()
    assert "javascript" in seen["type"]
    # the server is stopped: the port refuses connections
    with pytest.raises(OSError):
        urllib.request.urlopen(seen["url"], timeout=2)


def test_serve_in_a_thread(tmp_path):
    explore.write_explorer(tmp_path)
    server = explore.serve(tmp_path, port=0, background=True)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as r:
            assert r.status == 200 and b"phase-diagram explorer" in r.read()
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ValueError, match=r"directory must hold index\.html"):
        explore.serve(tmp_path / "nowhere", background=True)


def test_store_signs_refuses_finite_source_stores(tmp_path, capsys):
    from featurefate.sweep import load_config
    from featurefate.sweep.store import ResultStore

    path = tmp_path / "config.toml"
    path.write_text(STORE_CONFIG.replace("source_norm = 1.5", "alpha_source = [0.5, 2.0]"))
    store = ResultStore.open(tmp_path / "s.zarr", load_config(path))
    cell = xr.Dataset(
        {"transferability_linear": (("alpha_source",), [0.1, 0.2])},
        coords={"alpha_source": [0.5, 2.0]},
        attrs={"dim": 30, "depth": 3},
    )
    store.write_cell((0, 0, 0), cell)
    with pytest.raises(ValueError, match=r"source population .* alpha_source = \[0\.5, 2\.0\]"):
        explore.store_signs(store.path)
    result = runner.invoke(
        app, ["explore", "--out", str(tmp_path / "x"), "--data", str(store.path)]
    )
    assert result.exit_code != 0 and not (tmp_path / "x").exists()
    with pytest.raises(SystemExit) as info:  # the message names the flag typed
        main(["explore", "--out", str(tmp_path / "x"), "--data", str(store.path)])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error: --data must pretrain on the source")
