"""The command line: files written, JSON output, one-line errors with status 2."""

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import featurefate
from featurefate.cli import app, main
from featurefate.experiments.theory_phase import grid
from featurefate.reproduce import PAPER_FIGURES
from featurefate.theory import (
    finetune_break_even_angle,
    negative_transfer_regions,
    ridge_transfer_error,
    scratch_error,
    transferability,
)

runner = CliRunner()
SMALL = ["--num-alpha", "20", "--num-theta", "11"]


def _invoke(*args):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_version():
    assert featurefate.__version__ in _invoke("--version").stdout


@pytest.mark.parametrize(
    ("options", "stem", "kwargs"),
    [
        (["--method", "linear", "--sigma", "0.2"], "phase_linear_sigma0.2", {}),
        (
            ["--method", "ridge", "--sigma", "0.2", "--lam", "0.1"],
            "phase_ridge_sigma0.2_lam0.1",
            {"lam": 0.1},
        ),
        (
            ["--method", "finetune", "--sigma", "0.2", "--variant", "exact"],
            "phase_finetune-exact_sigma0.2",
            {"variant": "exact"},
        ),
        (["--method", "linear", "--sigma", "0", "--dim", "50"], "phase_linear_sigma0_dim50", {}),
    ],
)
def test_phase_diagram_writes_dataset_and_figures(tmp_path, options, stem, kwargs):
    out = tmp_path / "new"
    result = _invoke("theory", "phase-diagram", *options, *SMALL, "--out", str(out))
    expected = [out / f"{stem}{ext}" for ext in (".nc", ".png", ".pdf")]
    assert result.stdout.split() == [str(p) for p in expected]
    assert all(p.stat().st_size > 0 for p in expected)
    with xr.open_dataset(expected[0]) as ds:
        ds = ds.load()
    assert ds["theory_transferability"].dims == ("alpha", "theta")
    assert ds.sizes == {"alpha": 20, "theta": 11}
    alpha, theta = grid(2.0, 20, 11)
    np.testing.assert_array_equal(ds["alpha"], alpha)
    np.testing.assert_array_equal(ds["theta"], theta)
    method, sigma = ds.attrs["method"], ds.attrs["sigma"]
    dim = ds.attrs.get("dim")
    expected_t = transferability(method, alpha[:, None], theta[None, :], sigma, dim=dim, **kwargs)
    np.testing.assert_array_equal(ds["theory_transferability"], expected_t)
    assert ds.attrs["featurefate_version"] == featurefate.__version__
    assert ds.attrs["limit"] == ("finite D" if dim else "D -> infinity")
    assert ds.attrs.get("variant") == kwargs.get("variant")
    assert ds.attrs.get("lam") == kwargs.get("lam")


def test_phase_diagram_keeps_infinite_values(tmp_path):
    _invoke(
        "theory",
        "phase-diagram",
        "--method",
        "linear",
        "--sigma",
        "0.2",
        "--out",
        str(tmp_path),
        *SMALL,
    )
    with xr.open_dataset(tmp_path / "phase_linear_sigma0.2.nc") as ds:
        assert np.isposinf(ds["theory_transferability"].sel(alpha=1.0)).all()


def test_point_json_matches_the_api():
    args = ["--alpha", "0.7", "--theta", "0.5", "--sigma", "0.2", "--json"]
    ridge = json.loads(
        _invoke("theory", "point", "--method", "ridge", "--lam", "0.1", *args).stdout
    )
    assert ridge["transferability"] == transferability("ridge", 0.7, 0.5, 0.2, lam=0.1)
    assert ridge["scratch_error"] == scratch_error(0.7, 0.2)
    assert ridge["transfer_error"] == ridge_transfer_error(0.7, 0.5, 0.2, 0.1)
    assert ridge["lam"] == 0.1 and ridge["dim"] is None

    linear = json.loads(_invoke("theory", "point", "--method", "linear", *args).stdout)
    regions = negative_transfer_regions(0.5, 0.2)
    assert linear["negative_transfer"]["alpha_threshold"] == regions.alpha_threshold

    finetune = json.loads(
        _invoke("theory", "point", "--method", "finetune", "--variant", "exact", *args).stdout
    )
    assert finetune["break_even_angle"] == finetune_break_even_angle(0.7, 0.2, variant="exact")


def test_point_json_writes_inf_and_nan_as_strings():
    out = _invoke(
        "theory",
        "point",
        "--method",
        "finetune",
        "--alpha",
        "1",
        "--theta",
        "1",
        "--sigma",
        "0.2",
        "--json",
    ).stdout
    result = json.loads(out)  # strict JSON: no bare Infinity or NaN
    assert result["scratch_error"] == "inf" and float(result["scratch_error"]) == np.inf
    assert result["transferability"] == 0.0
    assert result["break_even_angle"] == "nan"


def test_point_table():
    out = _invoke(
        "theory",
        "point",
        "--method",
        "linear",
        "--alpha",
        "0.7",
        "--theta",
        "0.7854",
        "--sigma",
        "0.2",
    ).stdout
    assert "transferability" in out and "negative" in out and "1.08" in out


def test_bad_value_through_a_real_process(tmp_path):
    command = [sys.executable, "-m", "featurefate", "theory", "phase-diagram"]
    command += ["--method", "linear", "--sigma", "-1", "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: --sigma must be a finite number in [0, inf); got -1"
    ]
    assert done.stdout == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--alpha", "0"], "error: --alpha must be a finite number in (0, inf); got 0"),
        (["--theta", "4"], "error: --theta must be a finite number in [0, pi]; got 4"),
        (["--sigma", "-1"], "error: --sigma must be a finite number in [0, inf); got -1"),
        (
            ["--method", "foo"],
            "error: --method must be one of 'linear', 'ridge', 'finetune'; got 'foo'",
        ),
        (
            ["--variant", "foo"],
            "error: --variant applies to --method 'finetune' only; got --method 'linear'",
        ),
        (["--lam", "0.1"], "error: --lam applies to --method 'ridge' only; got --method 'linear'"),
        (["--dim", "0"], "error: --dim must be an integer >= 1; got 0"),
    ],
)
def test_bad_values_give_one_line_and_status_2(capsys, change, message):
    options = {"--method": "linear", "--alpha": "0.5", "--theta": "1", "--sigma": "0.2"}
    options |= dict(zip(change[::2], change[1::2], strict=True))
    argv = ["theory", "point", *(item for pair in options.items() for item in pair)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [message]
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_bad_variant_for_finetune(capsys):
    argv = ["theory", "point", "--method", "finetune", "--variant", "foo"]
    argv += ["--alpha", "0.5", "--theta", "1", "--sigma", "0"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --variant must be one of 'paper', 'exact'; got 'foo'"
    ]


def test_bad_grid_size(capsys, tmp_path):
    argv = ["theory", "phase-diagram", "--method", "linear", "--sigma", "0.2"]
    argv += ["--num-alpha", "0", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --num-alpha must be an integer in [1, 20000]; got 0"
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["theory", "point", "--method", "linear"], "error: Missing option '--alpha'."),
        (
            ["theory", "point", "--method", "linear", "--alpha", "abc"],
            "error: --alpha must be a real number; got abc",
        ),
        (["theory", "pointx"], "error: No such command 'pointx'"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message)


def test_no_arguments_prints_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 0
    assert "Usage" in capsys.readouterr().out


def _help(argv, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    "command", [["sweep"], ["verify"], ["configs"], ["cluster-certs"], ["simulate", "point"], []]
)
def test_help_reads_well_at_80_columns(command, capsys, monkeypatch):
    """Paragraphs rewrapped, not broken at the docstring's line ends; flags show no type."""
    text = _help(command, capsys, monkeypatch)
    assert "<bool>" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    description = text.split("╭")[0].splitlines()[3:]  # after the usage line
    for line, after in zip(description, [*description[1:], ""], strict=True):
        if line.strip() and after.strip():  # not a paragraph's last line: a full one
            assert len(line.rstrip()) > 60, line


def test_help_lists_every_figure_and_the_lam_default(capsys, monkeypatch):
    import featurefate.cli as cli
    from featurefate.reproduce import FIGURES

    assert sorted(cli.FIGURE_NAMES) == sorted(FIGURES)
    assert "finite_source" in " ".join(_help(["figure"], capsys, monkeypatch).split())
    text = _help(["simulate", "point"], capsys, monkeypatch)
    assert "--lam" in text and "LAM" in text and "(default: 0.1)" in text
    assert "list[float]" not in text


TINY_SWEEP = """
experiment = "linear_phase"
seed = 1
[fixed]
dim = 8
n_instances = 3
lam = [0.0, 0.1, 0.5]
[fixed.training]
max_steps = 300
[grid]
alpha = [0.5, 1.5]
theta = [0.3927, 0.7854, 1.1781]
sigma = [0.0, 0.2]
"""


def test_reproduce_runs_the_sweeps_and_writes_every_figure_and_the_report(tmp_path):
    config = tmp_path / "tiny-linear.toml"
    config.write_text(TINY_SWEEP)
    out = tmp_path / "out"
    args = ["reproduce", "--out", str(out), "--config", str(config), "--workers", "1", *SMALL]
    result = _invoke(*args)
    report = out / "report.md"
    assert result.stdout.split() == [str(report)]
    theory = {f"{spec.stem}{ext}" for spec in PAPER_FIGURES for ext in (".nc", ".png", ".pdf")}
    assert {p.name for p in (out / "figures" / "theory").iterdir()} == theory
    simulated = {p.name for p in (out / "figures").glob("*.png")}
    assert simulated == {
        "fig1_linear_sigma0.2.png",
        "fig2_ridge_sigma0.2.png",
        "fig3_finetune_sigma0.2.png",
        "fig6_linear_sigma0.png",
        "fig7_finetune_sigma0.png",
    }
    with xr.open_dataset(
        out / "figures" / "theory" / "fig3_phase_finetune-exact_sigma0.2.nc"
    ) as ds:
        assert ds.attrs["variant"] == "exact"
    text = report.read_text()
    for name in simulated:
        assert f"(figures/{name})" in text
    assert "α with negative linear transfer" in text and "break-even angle" in text
    assert "(0.549, 0.911)" in text  # the predicted interval at theta = pi/4, sigma = 0.2
    assert "s1 = \\|β_s\\|" in text  # pipes inside table cells are escaped
    assert "The Dudley" not in text and "finite-D forms" in text  # the family's notes only
    assert (out / "data" / "tiny-linear.zarr" / "done").exists()
    explorer = (out / "explorer" / "index.html").read_text()  # with the store's signs
    assert '"points":{"linear":[' in explorer and "explorer/index.html" in text


def test_configs_lists_every_bundled_config():
    from featurefate.sweep import bundled_configs

    result = runner.invoke(app, ["configs"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    names = list(bundled_configs())
    assert {"quick-linear", "paper-linear", "paper-relu"} <= set(names)
    for name in names:
        assert name in result.stdout


def test_a_bundled_config_is_named_from_any_directory(tmp_path, monkeypatch):
    from featurefate.sweep import ConfigError, bundled_configs, load_config, resolve_config

    monkeypatch.chdir(tmp_path)
    bundled = bundled_configs()["tiny-linear"]
    assert resolve_config("tiny-linear") == bundled
    assert resolve_config("tiny-linear.toml") == bundled
    assert load_config("tiny-linear").experiment == "linear_phase"
    # a file of that name in the working directory wins over the bundled one
    (tmp_path / "tiny-linear.toml").write_text(bundled.read_text().replace("seed = 0", "seed = 9"))
    assert resolve_config("tiny-linear.toml").resolve() == tmp_path / "tiny-linear.toml"
    assert load_config("tiny-linear.toml").seed == 9
    with pytest.raises(ConfigError, match=r"no bundled config of that name.*quick-linear"):
        resolve_config("quick-lienar")
    with pytest.raises(ConfigError, match="no such config file"):
        resolve_config("some/dir/quick-linear.toml")


def test_sweep_names_an_unknown_config_in_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "quick-lienar", "--out", str(tmp_path / "s.zarr")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "quick-lienar" in err[0] and "bundled" in err[0]
    assert not (tmp_path / "s.zarr").exists()
