"""Pretraining on finite source samples in the linear_phase simulation, and its CLI flags."""

import json

import pytest
from numpy.testing import assert_allclose
from typer.testing import CliRunner

from featurefate import theory as th
from featurefate.cli import app
from featurefate.experiments.linear_phase import LinearPhaseConfig, run_cell, summarize

CELL = {"alpha": 0.5, "theta": 0.5, "sigma": 0.2}


def test_finite_source_cell_contract():
    config = LinearPhaseConfig(
        dim=20, n_instances=4, lam=(0.1,), alpha_source=(0.5, 2.0), sigma_source=0.3
    )
    ds = run_cell(config, CELL, seed=1)
    assert list(ds.alpha_source.values) == [0.5, 2.0]
    assert list(ds.n_source.values) == [10, 40]
    assert ds.error_scratch.dims == ("instance",)
    assert ds.error_linear.dims == ("alpha_source", "instance")
    assert ds.error_ridge.dims == ("alpha_source", "lam", "instance")
    assert ds.theory_transferability_finetune_exact.dims == ("alpha_source",)
    # pretraining from small init on the source sample ends at its min-norm fit (Theorem 3.5)
    assert float(ds.endpoint_gap_pretrain.max()) < 1e-2
    assert float(ds.endpoint_gap_linear.max()) < 1e-2
    # the theory columns are the finite-source closed forms at the simulated D
    for i, a_s in enumerate(config.alpha_source):
        kw = {"alpha_source": a_s, "sigma_source": 0.3, "dim": 20}
        assert_allclose(
            ds.theory_transferability_linear[i],
            th.transferability("linear", 0.5, 0.5, 0.2, **kw),
            rtol=1e-12,
        )
        assert_allclose(
            ds.theory_error_finetune_paper[i],
            th.finetune_error(0.5, 0.5, 0.2, variant="paper", **kw),
            rtol=1e-12,
        )
    # a smaller, noisier source is worse for linear transfer, in theory and here
    t = ds.theory_transferability_linear.values
    assert t[0] < t[1]
    rows = summarize(ds)
    assert [r["method"] for r in rows].count("linear (α_s=0.5)") == 1
    assert len(rows) == 1 + 2 * 4


def test_population_cell_has_no_source_dim():
    ds = run_cell(LinearPhaseConfig(dim=12, n_instances=3), CELL, seed=3)
    assert "alpha_source" not in ds.dims and "n_source" not in ds.coords
    assert ds.attrs["pretraining"] == "source population"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha_source": (0.0,)}, r"alpha_source must be a finite number in \(0, inf\); got 0"),
        ({"alpha_source": (0.01,)}, "alpha_source \\* dim must round to at least 1 sample"),
        ({"sigma_source": 0.5}, "sigma_source applies with alpha_source only"),
        ({"alpha_source": (0.5,), "sigma_source": -1.0}, "sigma_source .* got -1"),
        (
            {"alpha_source": (1.0,), "sigma_source": 0.1},
            "alpha_source must keep n_s .* more than 1 from dim .* got alpha_source = 1",
        ),
    ],
)
def test_config_rejects_bad_source(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LinearPhaseConfig(dim=20, **kwargs)


def test_config_normalises_alpha_source():
    assert LinearPhaseConfig(alpha_source=None).alpha_source == ()
    assert LinearPhaseConfig(alpha_source=0.5).alpha_source == (0.5,)
    assert LinearPhaseConfig(alpha_source=[0.5, 2]).alpha_source == (0.5, 2.0)


def test_cli_simulate_point_alpha_source():
    args = ["simulate", "point", "--alpha", "0.5", "--theta", "0.5", "--sigma", "0.2"]
    args += ["--dim", "12", "--instances", "3", "--json"]
    result = CliRunner().invoke(app, [*args, "--alpha-source", "2.0", "--sigma-source", "0.5"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["alpha_source"] == 2.0 and out["sigma_source"] == 0.5
    linear = next(r for r in out["methods"] if r["method"] == "linear (α_s=2)")
    expected = th.transferability(
        "linear", 0.5, 0.5, 0.2, alpha_source=2.0, sigma_source=0.5, dim=12
    )
    assert linear["theory_transferability"] == pytest.approx(float(expected))
    bad = CliRunner().invoke(app, [*args, "--sigma-source", "0.5"])
    assert bad.exit_code != 0  # main() prints the ValueError's one line
    assert "sigma_source applies with alpha_source only" in str(bad.exception)


TINY_FINITE_SOURCE = """
experiment = "linear_phase"
seed = 0
[fixed]
dim = 10
n_instances = 3
lam = [0.1]
sigma_source = 0.5
[fixed.training]
max_steps = 500
[grid]
alpha = [0.4, 1.6]
theta = [0.7854]
sigma = [0.2]
alpha_source = [0.5, 2.0]
"""


def test_finite_source_figure_and_key_numbers_from_a_tiny_store(tmp_path):
    from featurefate.reproduce import FIGURES, linear_key_numbers
    from featurefate.sweep import open_results

    config = tmp_path / "tiny-finite-source.toml"
    config.write_text(TINY_FINITE_SOURCE)
    store, figures = tmp_path / "fs.zarr", tmp_path / "figures"
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", str(config), "--out", str(store), "--workers", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["figure", "finite_source", "--data", str(store), "--out", str(figures)]
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in figures.glob("*.png")} == {"finite_source_theta0.25pi_sigma0.2.png"}
    ds = open_results(store)
    assert ds.error_linear.dims[-2:] == ("alpha_source", "instance")
    # the population figures skip a finite-source store, and the finite-source one a population store
    assert FIGURES["fig1"].draw(ds) == []
    assert FIGURES["finite_source"].draw(ds.drop_dims("alpha_source")) == []
    numbers = linear_key_numbers(ds)
    assert len(numbers) == 3
    assert all(n.quantity.startswith("finite source: cells where simulated T") for n in numbers)
    assert all(" / " in n.simulated and "sign agrees in" in n.simulated for n in numbers)
