"""The init-scale experiment: the rank-one theory at a small init, its failure at a large one.

One small cell per side of alpha = 1 (D = 20, 8 instances, three init scales), every scale on the
same instances; the departure criteria are also checked on a dataset built by hand.
"""

import dataclasses

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure
from numpy.testing import assert_allclose

from featurefate.experiments import init_scale
from featurefate.experiments.init_scale import (
    ATOL,
    InitScaleConfig,
    departures,
    first_departure,
    run_cell,
)
from featurefate.figures.init_scale import plot_init_scale, points
from featurefate.reproduce import bundled_config, init_scale_key_numbers, make_figure
from featurefate.sweep import load_config

SCALES = (1e-5, 1e-2, 1.0)
CONFIG = InitScaleConfig(dim=20, n_instances=8, init_scale=SCALES)
BELOW = {"alpha": 0.5, "theta": np.pi / 4, "sigma": 0.2}
ABOVE = {"alpha": 1.5, "theta": np.pi / 4, "sigma": 0.2}


@pytest.fixture(scope="module")
def below():
    return run_cell(CONFIG, BELOW, 1)


@pytest.fixture(scope="module")
def above():
    return run_cell(CONFIG, ABOVE, 2)


@pytest.fixture(scope="module")
def sweep(below, above):
    """The two cells combined the way a sweep store combines them."""
    # as in the store: scalar coordinates that are not axes (n) become variables
    cells = [ds.reset_coords("n").expand_dims(list(init_scale.CELL_AXES)) for ds in (below, above)]
    return xr.combine_by_coords(cells, combine_attrs="drop_conflicts")


def test_cell_layout(below):
    assert dict(below.sizes) == {"init_scale": 3, "instance": 8, "rank": 3}
    assert_allclose(below.init_scale, SCALES)
    for axis in init_scale.CELL_AXES:
        assert below[axis].ndim == 0
    assert below.error_linear.dims == ("init_scale", "instance")
    assert below.feature_ratio.dims == ("init_scale", "instance")
    assert below.transferability_finetune.dims == ("init_scale",)
    # the theory does not depend on the init scale; no ridge without lam
    assert below.theory_transferability_linear.dims == ()
    assert "lam" not in below.dims and "error_ridge" not in below
    assert below.attrs["experiment"] == "init_scale" and below.attrs["init"] == "random"


def test_small_init_agrees_with_the_rank_one_theory(below, above):
    for ds in (below, above):
        small = ds.sel(init_scale=SCALES[0])
        # per instance: at the exact init -> 0 endpoints
        for name in ("scratch", "linear", "finetune_exact"):
            assert float(small[f"endpoint_gap_{name}"].max()) < 2e-3, name
        assert float(small.feature_ratio.max()) < 1e-4
        assert np.all(small.n_features_linear == 1)
        # on average: the finite-D theory within its standard error
        dep = departures(ds).sel(init_scale=SCALES[0])
        for name in ("linear", "finetune_exact", "scratch"):
            assert not bool(dep[f"beyond_{name}"]), name


def test_large_init_is_full_rank_and_leaves_the_theory(below, above):
    large = below.sel(init_scale=SCALES[-1])
    assert float(large.feature_ratio.median()) > 0.3
    assert np.all(large.n_features_linear > 1)
    dep = departures(below).sel(init_scale=SCALES[-1])
    # below alpha = 1 the init's own end-to-end vector (|w_0|^2 ~ D gamma^4 = 20) stays in the
    # scratch endpoint: far beyond the standard error
    assert bool(dep.beyond_scratch) and float(dep.diff_scratch) > 1.0
    assert float(first_departure(below, "scratch")) == SCALES[-1]
    # above alpha = 1 linear transfer refits on every direction: it becomes scratch training
    far = departures(above).sel(init_scale=SCALES[-1])
    assert bool(far.beyond_linear)
    assert abs(float(above.transferability_linear.sel(init_scale=SCALES[-1]))) < 0.05


def test_every_scale_trains_the_same_instances(above):
    # above alpha = 1 scratch training has one endpoint, the least-squares fit: it cannot depend
    # on the init, so the same data give the same error at every scale
    errors = above.error_scratch.values
    assert float(above.endpoint_gap_scratch.max()) < 1e-3  # reached to tol = 1e-10 in the loss
    assert_allclose(errors, np.broadcast_to(errors[0], errors.shape), rtol=0, atol=1e-4)
    assert np.ptp(errors, axis=1).max() > 1e-2  # while the instances differ
    # and fine-tuning ends there too: T = 0 at every scale, as the theory says
    assert_allclose(above.transferability_finetune, 0.0, atol=1e-5)


def _synthetic(t_linear, se=0.01, theory=0.1):
    """A dataset with known per-instance transferabilities: mean t_linear, spread se * sqrt(n)."""
    n = 16
    offsets = np.resize([-1.0, 1.0], n) * se * np.sqrt(n) * np.sqrt((n - 1) / n)
    scratch = np.ones((len(t_linear), n))
    linear = scratch - (np.asarray(t_linear)[:, None] + offsets[None, :])
    finetune = scratch.copy()
    return xr.Dataset(
        {
            "error_scratch": (("init_scale", "instance"), scratch),
            "error_linear": (("init_scale", "instance"), linear),
            "error_finetune": (("init_scale", "instance"), finetune),
            "theory_transferability_linear": ((), theory),
            "theory_transferability_finetune_paper": ((), 0.0),
            "theory_transferability_finetune_exact": ((), 0.0),
            "theory_error_scratch": ((), 1.0),
        },
        coords={"init_scale": [1e-5, 1e-3, 1e-1, 1.0]},
    )


def test_departure_criteria_on_known_values():
    # s.e. 0.01: apart beyond 3 * 0.01 + 1e-3 = 0.031 from the theory 0.1
    ds = _synthetic([0.1, 0.12, 0.135, 0.2])
    dep = departures(ds)
    assert_allclose(dep.stderr_linear, 0.01, rtol=1e-12)
    assert_allclose(dep.diff_linear, [0.0, 0.02, 0.035, 0.1], atol=1e-12)
    assert dep.beyond_linear.values.tolist() == [False, False, True, True]
    assert float(first_departure(ds, "linear")) == 1e-1
    # paired: the spread is the same in every row, so the shift has no spread at all
    assert_allclose(dep.shift_linear, [0.0, 0.02, 0.035, 0.1], atol=1e-12)
    assert_allclose(dep.shift_stderr_linear, 0.0, atol=1e-12)
    assert float(first_departure(ds, "linear", paired=True)) == 1e-3
    assert np.isnan(float(first_departure(ds, "finetune_exact")))
    assert not dep.beyond_scratch.any()
    assert ATOL == 1e-3


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"init": "rank_one"}, "rank one by construction"),
        ({"init_scale": (1e-3, 1e-5)}, "increasing"),
        ({"init_scale": (0.0, 1.0)}, "init_scale"),
        ({"dim": 2}, "dim"),
    ],
)
def test_config_validation(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(CONFIG, **change)


def test_at_scale_is_the_linear_phase_config():
    one = CONFIG.at_scale(1e-2)
    assert type(one).__name__ == "LinearPhaseConfig"
    assert one.init_scale == 1e-2 and one.dim == CONFIG.dim and one.init == "random"


def test_bundled_configs_load_and_a_tiny_cell_runs():
    quick = load_config(bundled_config("quick-init-scale"))
    paper = load_config(bundled_config("paper-init-scale"))
    for sweep_config in (quick, paper):
        assert sweep_config.experiment == "init_scale"
        scales = sweep_config.config.init_scale
        assert scales[0] == 1e-5 and scales[-1] == 1.0
    assert 200 <= paper.config.dim <= 500 and 10 <= paper.config.n_instances <= 20
    tiny = dataclasses.replace(quick.config, dim=CONFIG.dim, n_instances=CONFIG.n_instances)
    tiny = dataclasses.replace(tiny, init_scale=(1e-5,))
    ds = run_cell(tiny, quick.cells()[0], 0)
    assert ds.sizes["init_scale"] == 1 and np.all(ds.converged_scratch)


def test_figure_from_a_sweep(sweep, tmp_path):
    assert len(points(sweep)) == 2
    fig = plot_init_scale(sweep)
    assert isinstance(fig, Figure)
    titles = " ".join(ax.get_title() for ax in fig.axes)
    for panel in ("(a)", "(b)", "(c) linear transfer, α = 0.5", "(f) fine-tuning, α = 1.5"):
        assert panel in titles
    assert "random Gaussian init" in fig.get_suptitle()
    ratio_ax = fig.axes[0]
    assert ratio_ax.get_xscale() == "log" and ratio_ax.get_yscale() == "log"
    # one y scale per row of transfer panels
    axes = np.array(fig.axes).reshape(2, 3)
    assert axes[0, 1].get_ylim() == axes[0, 2].get_ylim()
    written = make_figure("init_scale", sweep, tmp_path)
    assert [p.name for p in written] == ["init_scale_transfer.png", "init_scale_transfer.pdf"]


def test_key_numbers(sweep):
    rows = init_scale_key_numbers(sweep)
    quantities = [row.quantity for row in rows]
    assert quantities[0].startswith("s2/s1 of the pretrained features at γ = 1e-05")
    linear = next(row for row in rows if "T(linear)" in row.quantity)
    assert "α = 0.5" in linear.simulated and "α = 1.5" in linear.simulated
    assert "rcond" in linear.predicted
    scratch = next(row for row in rows if "scratch" in row.quantity)
    assert "α = 0.5, θ = π/4, σ = 0.2: 1 " in scratch.simulated
