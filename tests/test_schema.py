"""The result schema: every family's run_cell writes exactly the variables it documents.

Each family runs one tiny cell (a few seconds, most of it JAX compiling) and the dataset must
match its schema exactly, attrs included; the check itself is shown to fail on every kind of
difference; a real sweep store passes it; docs/results.md is the generated reference.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from featurefate import schema, sweep
from featurefate.experiments import (
    discrepancy,
    init_scale,
    linear_phase,
    mechanism,
    relu_phase,
    theory_phase,
)
from featurefate.sweep import runner
from featurefate.transfer import TrainingOptions

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "results.md"
LINEAR_CELL = {"alpha": 0.5, "theta": 0.5, "sigma": 0.2}
SHORT = TrainingOptions(max_steps=200)


def _linear(**kw):
    return linear_phase.run_cell(
        linear_phase.LinearPhaseConfig(dim=6, n_instances=2, training=SHORT, **kw), LINEAR_CELL, 0
    )


def _init_scale(**kw):
    config = init_scale.InitScaleConfig(
        dim=6, n_instances=2, init_scale=(1e-3, 1e-1), training=SHORT, **kw
    )
    return init_scale.run_cell(config, LINEAR_CELL, 0)


def _relu():
    config = relu_phase.ReluPhaseConfig(
        d=4, m=8, k=4, n_instances=2, max_steps_pretrain=100, max_steps_scratch=100,
        check_every=50, n_test=3,
    )  # fmt: skip
    return relu_phase.run_cell(config, {"rho": 0.5, "n": 5}, 0)


def _discrepancy(family_k):
    config = discrepancy.DiscrepancyConfig(dim=6, n_instances=2, n_samples=8, family_k=family_k)
    cell = {"alpha": 0.5, "theta": 0.5, "target_norm": 1.0, "sigma": 0.2}
    return discrepancy.run_cell(config, cell, 0)


def _mechanism():
    config = mechanism.MechanismConfig(dim=6, n_instances=2, per_decade=1, max_steps=200)
    return mechanism.run_cell(config, {"depth": 2}, 0)


CASES = {
    "linear_phase": ("linear_phase", lambda: _linear(lam=(0.1, 0.3))),
    "linear_phase-finite-source": ("linear_phase", lambda: _linear(alpha_source=(0.5, 2.0))),
    "relu_phase": ("relu_phase", _relu),
    "discrepancy": ("discrepancy", lambda: _discrepancy((1.0, 10.0))),
    "discrepancy-no-family": ("discrepancy", lambda: _discrepancy(())),
    "mechanism": ("mechanism", _mechanism),
    "init_scale": ("init_scale", _init_scale),
    "init_scale-ridge": ("init_scale", lambda: _init_scale(lam=(0.1,))),
    "init_scale-finite-source": ("init_scale", lambda: _init_scale(alpha_source=(0.5,))),
    "theory_phase": (
        "theory_phase",
        lambda: theory_phase.phase_diagram("ridge", 0.2, lam=0.1, alpha=[0.5, 1.5], theta=[0.1]),
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    family, make = CASES[request.param]
    return request.param, family, make()


def test_run_cell_writes_exactly_the_documented_variables(case):
    label, family, ds = case
    schema.check(family, ds)
    documented = {**schema.coordinates(family), **schema.variables(family)}
    # conditional variables appear in the case that makes their dim, and only there
    for var in documented.values():
        if var.only_with is not None:
            assert (var.name in ds.variables) == (var.only_with in ds.dims), (label, var.name)
    assert set(ds.variables) <= set(documented)


def test_every_conditional_variable_is_exercised():
    dims = {
        "linear_phase": {"alpha_source"},
        "init_scale": {"alpha_source", "lam"},
        "discrepancy": {"k"},
    }
    for family in schema.FAMILIES:
        fam = schema.family(family)
        conditional = {
            var.only_with
            for var in (*fam.coords.values(), *fam.variables.values())
            if var.only_with is not None
        } | {d for var in fam.variables.values() for d in var.optional_dims}
        assert conditional == dims.get(family, set()), family
        assert set(fam.optional) == conditional, family


def test_run_cell_labels_its_variables_from_the_schema(case):
    label, family, ds = case
    if family == "theory_phase":  # phase_diagram writes its own method-specific labels
        return
    for var in (*schema.coordinates(family).values(), *schema.variables(family).values()):
        if var.name in ds.variables:
            assert ds[var.name].attrs.get("long_name") == var.meaning, (label, var.name)
            assert ds[var.name].attrs.get("units") == var.units, (label, var.name)


def test_families_are_the_experiments_and_the_theory():
    from featurefate.experiments import FAMILIES

    assert set(schema.FAMILIES) == {*FAMILIES, "theory_phase"}
    for family in FAMILIES:
        from featurefate import experiments

        assert schema.family(family).cell_axes == experiments.get(family).cell_axes


def _broken(ds):
    name = schema.error_name("scratch")
    yield "undocumented variable 'bogus'", ds.assign(bogus=ds[name])
    yield "missing 'error_scratch'", ds.drop_vars(name)
    yield "'error_scratch' has dims", ds.assign({name: ds[name].expand_dims(extra=2)})
    yield "'error_ridge' has dims", ds.assign(error_ridge=ds.error_ridge.transpose())
    yield (
        "'converged_scratch' has dtype float64",
        ds.assign(converged_scratch=ds.converged_scratch.astype(float)),
    )
    yield "'n_source' is there without a 'alpha_source' dim", ds.assign_coords(n_source=3)


def test_check_names_every_difference():
    ds = _linear(lam=(0.1, 0.3))
    for message, bad in _broken(ds):
        with pytest.raises(schema.SchemaError, match=message):
            schema.check("linear_phase", bad)
    with pytest.raises(schema.SchemaError, match=r"'bogus'.*missing 'error_scratch'"):
        schema.check("linear_phase", ds.drop_vars("error_scratch").assign(bogus=ds.error_linear))
    with pytest.raises(ValueError, match="family must be one of"):
        schema.check("nonsense", ds)


def test_a_sweep_store_matches_the_schema(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(
        'experiment = "discrepancy"\nseed = 1\n[fixed]\ndim = 6\nn_instances = 2\n'
        "n_samples = 8\nfamily_k = [1.0]\n[grid]\nalpha = [0.5, 2.0]\ntheta = [0.3, 0.6]\n"
        "target_norm = [1.0]\nsigma = [0.2]\n"
    )
    with ThreadPoolExecutor(1) as pool:
        report = sweep.run_sweep(sweep.load_config(path), tmp_path / "s.zarr", executor=pool)
    assert report.ok
    ds = sweep.open_results(tmp_path / "s.zarr")
    assert {"done", runner.WALL_TIME} <= set(ds.variables)
    schema.check("discrepancy", ds)
    # an unfinished cell reads back as NaN, also in integer variables
    masked = ds.assign(n=ds.n.where(ds.alpha < 1))
    schema.check("discrepancy", masked)
    with pytest.raises(schema.SchemaError, match="'n' has dtype float64"):
        schema.check("discrepancy", ds.assign(n=ds.n.astype(float)))


def test_a_grid_axis_of_integral_floats_is_an_integer_axis():
    cell = _mechanism()
    store = xr.concat(
        [cell.assign_coords(depth=float(depth)) for depth in (2, 3)], dim="depth"
    )  # what a store of a depth grid reads back: the axis holds the config's floats
    schema.check("mechanism", store)
    with pytest.raises(schema.SchemaError, match="'depth' has dtype float64"):
        schema.check("mechanism", store.assign_coords(depth=[2.0, 2.5]))


def test_store_variables_are_the_runners():
    assert runner.WALL_TIME in schema.STORE_VARIABLES
    assert schema.STORE_VARIABLES[runner.WALL_TIME].meaning == runner.WALL_TIME_NOTE


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (schema.error_name("finetune_exact"), "error_finetune_exact"),
        (schema.theory_error_name("ridge"), "theory_error_ridge"),
        (schema.transferability_name("linear"), "transferability_linear"),
        (
            schema.transferability_name("finetune_paper", theory=True),
            "theory_transferability_finetune_paper",
        ),
        (schema.stderr_name(schema.transferability_name("ridge")), "transferability_ridge_stderr"),
        (schema.endpoint_gap_name("pretrain"), "endpoint_gap_pretrain"),
        (schema.converged_name("finetune"), "converged_finetune"),
        (schema.steps_name("scratch"), "steps_scratch"),
        (schema.diagnostic_name("sphere_error", "pretrain"), "sphere_error_pretrain"),
        (schema.sample_distance_name("dudley_max", subspace=True), "sample_dudley_max_subspace"),
        (schema.family_dudley_name("max", "floor"), "family_dudley_max_floor"),
        (schema.family_dudley_name(), "family_dudley"),
    ],
)
def test_name_helpers_spell_the_stored_names(name, expected):
    assert name == expected


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: schema.error_name("finetuning"), "method must be one of"),
        (lambda: schema.converged_name("train"), "stage must be one of"),
        (lambda: schema.diagnostic_name("loss_value", "scratch"), "quantity must be one of"),
        (lambda: schema.sample_distance_name("w2"), "distance must be one of"),
        (lambda: schema.family_dudley_name("min"), "norm must be one of"),
    ],
)
def test_name_helpers_refuse_unknown_tokens(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_every_documented_variable_has_a_meaning_and_units():
    for family in schema.FAMILIES:
        for var in (*schema.coordinates(family).values(), *schema.variables(family).values()):
            assert var.meaning and "\n" not in var.meaning, (family, var.name)
            assert var.units, (family, var.name)
            assert "SPEC" not in var.meaning


def test_reference_is_up_to_date():
    assert REFERENCE.read_text(encoding="utf-8") == schema.reference_markdown(), (
        "docs/results.md is stale: rewrite it with python -m featurefate.schema docs/results.md"
    )


def test_reference_lists_every_variable_once_per_family():
    text = schema.reference_markdown()
    for family in schema.FAMILIES:
        section = text.split(f"\n## {family}\n", 1)[1].split("\n## ", 1)[0]
        for name in (*schema.coordinates(family), *schema.variables(family)):
            assert section.count(f"| `{name}` |") == 1, (family, name)
    assert np.all([line.count(" | ") >= 4 for line in text.splitlines() if line.startswith("| `")])
