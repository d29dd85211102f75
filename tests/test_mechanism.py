"""Theorem 3.4 from the authors' random init: training in segments, the features' path, the figure.

Small D (20) and a few instances; the theorem is checked per instance (s1 against
|beta_s|^((L-1)/L), s2 against the init's scale, alignments), with a control at a large init
where the same checks must fail.
"""

import dataclasses
import itertools

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure
from numpy.testing import assert_allclose

from featurefate import training as tr
from featurefate._jax import jax
from featurefate.experiments import mechanism
from featurefate.experiments.mechanism import MechanismConfig, layer_alignment, run_cell
from featurefate.figures.mechanism import plot_mechanism
from featurefate.nets.linear import init_params
from featurefate.reproduce import bundled_config, make_figure, mechanism_key_numbers
from featurefate.sweep import load_config
from featurefate.theory.linear import feature_scale, init_feature_edge

SOURCE_NORM = 2.0  # |beta_s|^((L-1)/L) is then 1.414 at L = 2 and 1.587 at L = 3
CONFIG = MechanismConfig(dim=20, n_instances=4, source_norm=SOURCE_NORM, per_decade=2)


@pytest.fixture(scope="module")
def cells():
    return {depth: run_cell(CONFIG, {"depth": float(depth)}, depth) for depth in (2, 3)}


@pytest.fixture(scope="module")
def sweep(cells):
    """The two depths combined the way a sweep store combines cells."""
    return xr.combine_by_coords(
        [ds.expand_dims("depth") for ds in cells.values()], combine_attrs="drop_conflicts"
    )


# ---------------------------------------------------------------------------------------------
# training in segments


def _problem(k=4, dim=20, depth=2, init_scale=1e-3):
    """The shapes and step options of CONFIG's depth-2 cells: compiled once for the module."""
    beta = np.random.default_rng(0).standard_normal((k, dim))
    keys = jax.random.split(jax.random.PRNGKey(1), k)
    params = jax.vmap(lambda key: init_params(key, dim, depth, init_scale))(keys)
    return params, tr.population_statistics(beta)


def test_per_instance_time_caps_stop_each_instance_at_its_own_cap():
    params, stats = _problem()
    caps = np.array([0.0, 0.3, 0.6, 1.0])  # it converges at t of about 1.5
    # explicit steps (the mechanism experiment's): flow time is kept step by step
    result = tr.train(params, stats, eta=0.1, tol=1e-12, max_time=caps, method="explicit")
    assert result.steps[0] == 0 and result.time[0] == 0.0
    assert np.all(result.time[1:] >= caps[1:])
    # each stopped at the first step past its cap: one step (< 1 in time here) at most
    assert np.all(result.time[1:] - caps[1:] < 0.2)
    # the semi-implicit default honours the caps too, with its longer steps
    semi = tr.train(params, stats, eta=0.1, tol=1e-12, max_time=caps)
    assert semi.steps[0] == 0 and np.all(semi.time[1:] >= caps[1:])
    assert np.all(semi.steps[1:] <= result.steps[1:])
    with pytest.raises(ValueError, match="one per instance"):
        tr.train(params, stats, eta=0.1, tol=1e-12, max_time=[1.0, 2.0])


def test_segments_follow_the_same_path_as_one_run():
    params, stats = _problem()
    times = [0.0, 0.3, 1.0, 3.0, 10.0, 1e3]
    options = {"eta": 0.1, "tol": 1e-12, "method": "explicit"}
    path = list(tr.train_checkpoints(params, stats, times, **options))
    whole = tr.train(params, stats, **options)
    assert len(path) == len(times)
    assert path[0].steps.sum() == 0 and np.all(path[0].time == 0)
    for earlier, later in itertools.pairwise(path):
        assert np.all(later.steps >= earlier.steps) and np.all(later.time >= earlier.time)
    for target, point in zip(times, path, strict=True):
        assert np.all((point.time >= target) | point.converged)
    last = path[-1]
    assert np.all(last.converged)
    assert np.all(np.abs(last.steps - whole.steps) <= 1)  # the stop may move by a step
    assert_allclose(last.w, whole.w, atol=1e-6)
    assert_allclose(last.drift, whole.drift, rtol=0.5, atol=1e-9)


def test_train_checkpoints_validates_before_training():
    params, stats = _problem()
    with pytest.raises(ValueError, match="non-decreasing"):
        tr.train_checkpoints(params, stats, [1.0, 0.5])
    with pytest.raises(ValueError, match="max_time"):
        tr.train_checkpoints(params, stats, [1.0], max_time=2.0)


def test_step_budget_is_for_the_whole_path():
    params, stats = _problem()
    times = [1.0, 10.0, 100.0]
    path = list(tr.train_checkpoints(params, stats, times, eta=0.1, tol=1e-12, max_steps=15))
    assert int(path[-1].steps.max()) == 15
    assert not path[-1].converged.any()


# ---------------------------------------------------------------------------------------------
# closed forms


def test_feature_scale_and_init_edge_values():
    assert_allclose(feature_scale(2, source_norm=4.0), 2.0)
    assert_allclose(feature_scale(3, source_norm=8.0), 4.0)
    assert_allclose(init_feature_edge(2, 1e-5), 2e-5)
    assert_allclose(init_feature_edge(3, 1.0), 1.5 * np.sqrt(3.0))
    with pytest.raises(ValueError, match="init_scale"):
        init_feature_edge(2, 0.0)


@pytest.mark.parametrize("depth", [2, 3])
def test_init_edge_against_monte_carlo(depth):
    # the largest singular value of the init's features at D = 200 (finite-size fluctuations
    # of the edge are of relative order D^(-2/3), about 3%)
    dim, scale = 200, 0.1
    keys = jax.random.split(jax.random.PRNGKey(depth), 3)
    tops = []
    for key in keys:
        layers = init_params(key, dim, depth, scale)
        features = np.asarray(layers[0])
        for layer in layers[1:-1]:
            features = np.asarray(layer) @ features
        tops.append(np.linalg.svd(features, compute_uv=False)[0])
    assert_allclose(np.mean(tops), init_feature_edge(depth, scale), rtol=0.06)


def test_layer_alignment_is_one_for_a_chain_and_small_for_random_layers():
    rng = np.random.default_rng(3)
    k, dim = 4, 20
    units = rng.standard_normal((4, k, dim))
    units /= np.linalg.norm(units, axis=-1, keepdims=True)
    # W_1 = u_2 s^T, W_2 = a u_3 u_2^T, W_3 = b u_3^T: a rank-one chain, aligned by construction
    chain = (
        np.einsum("ki,kj->kij", units[1], 0.3 * units[0]),
        np.einsum("ki,kj->kij", units[2], 2.0 * units[1]),
        0.7 * units[2][:, None, :],
    )
    assert_allclose(layer_alignment(chain), np.ones(k), rtol=1e-12)
    misaligned = (chain[0], np.einsum("ki,kj->kij", units[2], units[3]), chain[2])
    cosines = np.abs(np.sum(units[1] * units[3], axis=1))
    assert_allclose(layer_alignment(misaligned), cosines, rtol=1e-10)
    random = tuple(rng.standard_normal((k, rows, dim)) for rows in (dim, dim, 1))
    assert np.all(layer_alignment(random) < 4 / np.sqrt(dim))


# ---------------------------------------------------------------------------------------------
# the experiment


@pytest.mark.parametrize("depth", [2, 3])
def test_s1_converges_to_the_prediction(cells, depth):
    ds = cells[depth]
    assert np.all(ds.converged)
    final = ds.singular_values.isel(checkpoint=-1).sel(rank=1)
    predicted = SOURCE_NORM ** ((depth - 1) / depth)
    assert_allclose(float(ds.theory_feature_scale), predicted)
    # the loss is below tol = 1e-12, so |w - beta_s| < 1e-6
    assert_allclose(final, predicted, atol=1e-5)


@pytest.mark.parametrize("depth", [2, 3])
def test_the_other_singular_values_stay_at_the_init_scale(cells, depth):
    ds = cells[depth]
    edge = float(init_feature_edge(depth, CONFIG.init_scale))
    assert_allclose(float(ds.theory_init_edge), edge)
    others = ds.singular_values.sel(rank=slice(2, None))
    # s1 grows by 10^5 (L = 2) or 10^10 (L = 3); s2 and s3 never leave the init's scale
    assert float(others.max()) < 1.5 * edge
    assert float(others.min()) > 0.1 * edge
    init = ds.singular_values.isel(checkpoint=0).sel(rank=1)
    assert np.all((init > 0.5 * edge) & (init < 1.5 * edge))


@pytest.mark.parametrize("depth", [2, 3])
def test_features_turn_to_the_source_and_layers_align(cells, depth):
    ds = cells[depth]
    assert float(ds.feature_alignment.isel(checkpoint=0).max()) < 0.9
    assert float(ds.feature_alignment.isel(checkpoint=-1).min()) > 1 - 1e-9
    assert float(ds.layer_alignment.isel(checkpoint=0).max()) < 0.9
    assert float(ds.layer_alignment.isel(checkpoint=-1).min()) > 1 - 1e-6
    assert float(ds.drift.isel(checkpoint=-1).max()) < 1e-6


def test_depth_three_crosses_its_plateau_in_few_steps(cells):
    two, three = cells[2], cells[3]
    escape = {d: mechanism.summarize(c)[0]["escape_time_median"] for d, c in cells.items()}
    assert escape[2] < 20 and escape[3] > 1e3  # log(1/gamma) against 1/gamma
    assert int(three.steps.isel(checkpoint=-1).max()) < 2000
    assert int(two.steps.isel(checkpoint=-1).max()) < 1000


def test_control_a_large_init_is_not_rank_one():
    # the checks above must be able to fail: from gamma = 0.5 the features stay full rank
    config = dataclasses.replace(CONFIG, init_scale=0.5)
    ds = run_cell(config, {"depth": 2}, 0)
    final = ds.singular_values.isel(checkpoint=-1)
    assert float((final.sel(rank=2) / final.sel(rank=1)).min()) > 0.1
    assert float(final.sel(rank=2).max()) > 0.2


def test_cell_layout_and_reproducibility(cells):
    ds = cells[2]
    assert mechanism.CELL_AXES == ("depth",)
    assert int(ds.depth) == 2 and ds.depth.ndim == 0
    times = CONFIG.checkpoints()
    ratios = times[2:] / times[1:-1]
    assert times[0] == 0 and np.allclose(ratios, ratios[0])  # then log-spaced
    assert_allclose(ds.checkpoint, times)
    assert ds.singular_values.dims == ("instance", "checkpoint", "rank")
    for name in ("feature_alignment", "layer_alignment", "loss", "time", "steps", "drift"):
        assert ds[name].dims == ("instance", "checkpoint"), name
    assert ds.attrs["experiment"] == "mechanism" and ds.attrs["init"] == "random"
    xr.testing.assert_identical(run_cell(CONFIG, {"depth": 2}, 2), ds)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"n_singular": 1}, "n_singular"),
        ({"n_singular": 30}, "n_singular"),
        ({"time_max": 1e-3}, "time_max"),
        ({"eta": 2.0}, "eta"),
        ({"init_scale": 0.0}, "init_scale"),
    ],
)
def test_config_validation(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(CONFIG, **change)


def test_cell_validation():
    with pytest.raises(ValueError, match="depth"):
        run_cell(CONFIG, {"depth": 1}, 0)
    with pytest.raises(ValueError, match="depth"):
        run_cell(CONFIG, {}, 0)


def test_bundled_configs_load_and_a_tiny_cell_runs():
    quick = load_config(bundled_config("quick-mechanism"))
    paper = load_config(bundled_config("paper-mechanism"))
    assert quick.experiment == paper.experiment == "mechanism"
    assert paper.config.dim == 500 and paper.config.init_scale == 1e-5
    assert quick.grid["depth"] == paper.grid["depth"] == (2.0, 3.0)
    tiny = dataclasses.replace(quick.config, dim=CONFIG.dim, n_instances=CONFIG.n_instances)
    ds = run_cell(tiny, quick.cells()[0], 0)
    assert np.all(ds.converged)


# ---------------------------------------------------------------------------------------------
# figure and report


def test_figure_from_a_sweep(sweep, tmp_path):
    sweep.attrs.update({"dim": CONFIG.dim, "init_scale": CONFIG.init_scale})
    fig = plot_mechanism(sweep)
    assert isinstance(fig, Figure)
    titles = " ".join(ax.get_title() for ax in fig.axes)
    for panel in ("(a) depth L = 2", "(b) depth L = 3", "(c)", "(d)"):
        assert panel in titles
    assert "random Gaussian init, scale 1e-05 (the authors' init), D = 20" in fig.get_suptitle()
    (a, b) = fig.axes[:2]
    assert a.get_yscale() == "log" and a.get_ylim() == b.get_ylim()  # one scale across depths
    lines = {round(line.get_ydata()[0], 12) for line in a.get_lines() if len(line.get_ydata()) == 2}
    assert round(SOURCE_NORM**0.5, 12) in lines and round(2e-5, 12) in lines
    written = make_figure("mechanism", sweep, tmp_path)
    assert [p.name for p in written] == [
        "mechanism_singular_values.png",
        "mechanism_singular_values.pdf",
    ]


def test_key_numbers(sweep):
    rows = mechanism_key_numbers(sweep)
    assert len(rows) == 8  # four per depth
    assert rows[0].quantity.startswith("L = 2: final s1")
    assert "1.414" in rows[0].predicted
    assert rows[4].quantity.startswith("L = 3")
