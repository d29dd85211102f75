"""Phase-diagram figures: built without pyplot, zero contour in the right place, inf and NaN safe."""

import io

import numpy as np
import pytest
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from featurefate.experiments.theory_phase import grid, phase_diagram
from featurefate.figures import plot_phase_diagram, save_figure


def _contours(fig):
    return [c for ax in fig.axes for c in ax.collections if isinstance(c, ContourSet)]


def _zero_line(fig):
    """Vertices (alpha, theta) of the single T = 0 contour."""
    (contour,) = _contours(fig)
    assert list(contour.levels) == [0.0]
    return np.concatenate([path.vertices for path in contour.get_paths()])


def test_returns_a_figure_with_colorbar_labels_and_title():
    ds = phase_diagram(
        "ridge", 0.2, lam=0.1, alpha=grid(2.0, 40, 20)[0], theta=grid(2.0, 40, 20)[1]
    )
    fig = plot_phase_diagram(ds)
    assert isinstance(fig, Figure)
    ax, colorbar_ax = fig.axes
    assert ax.get_xlabel() == "α = n / D"
    assert ax.get_ylabel() == "θ (angle between source and target)"
    assert "transferability" in colorbar_ax.get_ylabel()
    title = ax.get_title()
    assert "Ridge" in title and "σ = 0.2" in title and "λ = 0.1" in title and "theory" in title


def test_title_names_the_finetune_variant():
    alpha, theta = grid(2.0, 10, 5)
    paper = plot_phase_diagram(phase_diagram("finetune", 0.2, alpha=alpha, theta=theta))
    exact = plot_phase_diagram(
        phase_diagram("finetune", 0.2, variant="exact", alpha=alpha, theta=theta)
    )
    assert "paper's endpoint" in paper.axes[0].get_title()
    assert "corrected endpoint" in exact.axes[0].get_title()


def test_theta_ticks_in_units_of_pi():
    fig = plot_phase_diagram(phase_diagram("linear", 0.2, alpha=[0.5, 1.5], theta=grid()[1]))
    ax = fig.axes[0]
    formatter = ax.yaxis.get_major_formatter()
    ticks = [t for t in ax.get_yticks() if -1e-12 <= t <= np.pi / 2 + 1e-12]
    labels = [formatter(t, i) for i, t in enumerate(ticks)]
    assert labels == ["0", "π/8", "π/4", "3π/8", "π/2"]


def test_zero_contour_of_finetune_is_the_break_even_angle():
    # Paper's endpoint: T = (1 - alpha)(2 cos(theta) - 1) changes sign at theta = pi/3 for
    # alpha < 1; the zero plateau at alpha >= 1 is no sign change and has no line.
    alpha, theta = grid(2.0, 80, 61)
    fig = plot_phase_diagram(phase_diagram("finetune", 0.2, alpha=alpha, theta=theta))
    vertices = _zero_line(fig)
    spacing = theta[1] - theta[0]
    assert np.all(np.abs(vertices[:, 1] - np.pi / 3) < spacing)
    assert np.all(vertices[:, 0] < 1.0)


def test_zero_contour_of_linear_transfer_crosses_the_known_boundaries():
    # SPEC section 2: at sigma = 0.2, theta = pi/4, negative on (0.5486, 0.9114) and above 1.08.
    alpha, theta = grid(2.0, 400, 201)  # theta[100] == pi/4
    fig = plot_phase_diagram(phase_diagram("linear", 0.2, alpha=alpha, theta=theta))
    vertices = _zero_line(fig)
    on_row = vertices[np.abs(vertices[:, 1] - np.pi / 4) < 1e-9, 0]
    for boundary in (0.5486, 0.9114, 1.08):
        assert np.min(np.abs(on_row - boundary)) < 0.005


def test_no_contour_without_a_sign_change():
    ds = phase_diagram("linear", 0.2, alpha=np.linspace(0.1, 0.5, 10), theta=[0.0, 0.1, 0.2])
    assert np.all(ds["theory_transferability"] > 0)
    assert _contours(plot_phase_diagram(ds)) == []


def test_infinite_and_nan_values_do_not_crash():
    alpha, theta = grid(2.0, 20, 10)  # alpha = 1 on the grid: T = +inf with sigma > 0
    ds = phase_diagram("linear", 0.2, alpha=alpha, theta=theta)
    assert np.isposinf(ds["theory_transferability"]).any()
    ds["theory_transferability"][0, 0] = np.nan
    ds["theory_transferability"][1, 0] = -np.inf
    fig = plot_phase_diagram(ds)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    colorbar = fig.axes[0].collections[0].colorbar
    assert colorbar.extend == "both"


def test_draws_into_a_given_axes():
    fig = Figure()
    left, right = fig.subplots(1, 2)
    ds = phase_diagram("finetune", 0.0, alpha=[0.25, 0.5, 0.75], theta=[0.0, 1.0, 1.5])
    assert plot_phase_diagram(ds, ax=right, title="custom") is fig
    assert right.get_title() == "custom" and left.get_title() == ""


def test_save_figure_writes_png_and_pdf(tmp_path):
    fig = plot_phase_diagram(phase_diagram("linear", 0.0, alpha=[0.5, 1.5], theta=[0.0, 1.0]))
    paths = save_figure(fig, tmp_path / "new" / "dir", "stem")
    assert [p.name for p in paths] == ["stem.png", "stem.pdf"]
    assert paths[0].read_bytes().startswith(b"\x89PNG")
    assert paths[1].read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize("vlim", [0.1, 3.0])
def test_explicit_colour_limit(vlim):
    fig = plot_phase_diagram(
        phase_diagram("linear", 0.2, alpha=[0.5, 1.5], theta=[0.0, 1.0]), vlim=vlim
    )
    norm = fig.axes[0].collections[0].norm
    assert (norm.vmin, norm.vmax) == (-vlim, vlim)


def test_cells_with_instances_at_the_step_limit_get_a_cross_not_a_sign():
    import xarray as xr

    from featurefate.figures.linear import at_step_limit, sign_markers

    alpha, theta = np.array([0.5, 1.0]), np.array([0.3, 0.6, 0.9])
    converged = np.ones((3, 2, 4), dtype=bool)
    converged[1, 1, 2] = False  # one instance of the (theta = 0.6, alpha = 1) cell stopped
    s = xr.Dataset(
        {
            "converged_scratch": (("theta", "alpha", "instance"), converged),
            "t": (("theta", "alpha"), np.full((3, 2), -0.5)),
            "se": (("theta", "alpha"), np.full((3, 2), 0.01)),
        },
        coords={"alpha": alpha, "theta": theta},
    )
    at_limit = at_step_limit(s, ("scratch", "finetune"))
    assert at_limit.values.tolist() == [[False, False], [False, True], [False, False]]
    fig = Figure()
    ax = fig.add_subplot()
    sign_markers(ax, s.t, s.se, at_limit)
    counts = [len(c.get_offsets()) for c in ax.collections]
    assert counts == [5, 0, 0, 1]  # negative, positive, unclear, at the step limit


# ------------------------------------------------------------- the figures of the linear sweep


def _fake_sweep(seed=0):
    """A small linear_phase store: theory at D -> infinity plus noise, on the sweep's dims.

    The simulated T reaches further below 0 than the theory (x 1.4), so that maps drawn each on
    its own colour range would differ.
    """
    import xarray as xr

    rng = np.random.default_rng(seed)
    alpha = np.arange(1, 9) * 0.25
    theta = np.pi / 16 * np.arange(1, 9)
    sigma = np.array([0.0, 0.2])
    lam = np.array([0.0, 0.1, 0.5])
    shape = (alpha.size, theta.size, sigma.size)
    data = {}
    for name, kw in (("linear", {}), ("finetune", {"variant": "exact"})):
        t = np.stack(
            [
                phase_diagram(name, s, alpha=alpha, theta=theta, **kw)["theory_transferability"]
                for s in sigma
            ],
            axis=-1,
        )
        t = 1.4 * np.clip(t, -3, 3) + 0.02 * rng.standard_normal(shape)
        data[f"transferability_{name}"] = (("alpha", "theta", "sigma"), t)
        data[f"transferability_{name}_stderr"] = (("alpha", "theta", "sigma"), np.full(shape, 0.02))
    ridge = np.repeat(data["transferability_linear"][1][..., None], lam.size, axis=-1)
    data["transferability_ridge"] = (("alpha", "theta", "sigma", "lam"), ridge)
    data["transferability_ridge_stderr"] = (("alpha", "theta", "sigma", "lam"), 0 * ridge + 0.02)
    errors = 0.5 + 0.05 * rng.standard_normal((*shape, 4, lam.size))
    data["error_ridge"] = (("alpha", "theta", "sigma", "instance", "lam"), errors)
    data["theory_error_ridge"] = (("alpha", "theta", "sigma", "lam"), errors.mean(3))
    data["converged_scratch"] = (
        ("alpha", "theta", "sigma", "instance"),
        np.ones((*shape, 4), bool),
    )
    return xr.Dataset(
        data,
        coords={"alpha": alpha, "theta": theta, "sigma": sigma, "lam": lam},
        attrs={"depth": 2, "dim": 30, "init": "random", "init_scale": 1e-5},
    )


def _theory(method, sigma, **kw):
    return phase_diagram(
        method, sigma, alpha=np.linspace(2 / 60, 2, 60), theta=np.linspace(0, np.pi / 2, 33), **kw
    )


def _linear_figures():
    from featurefate.figures.linear import plot_finetune, plot_linear_transfer, plot_ridge

    sim = _fake_sweep()
    finetune = {v: _theory("finetune", 0.2, variant=v) for v in ("paper", "exact")}
    return {
        "fig1": plot_linear_transfer(sim, _theory("linear", 0.2), sigma=0.2),
        "fig2": plot_ridge(
            sim, {lam: _theory("ridge", 0.2, lam=lam) for lam in (0.1, 0.5)}, sigma=0.2
        ),
        "fig3": plot_finetune(sim, finetune, sigma=0.2),
    }


@pytest.fixture(scope="module")
def linear_figures():
    return _linear_figures()


def _maps(fig):
    """The heat maps of a figure, in panel order: (axes, QuadMesh)."""
    from matplotlib.collections import QuadMesh

    return [
        (ax, c)
        for ax in fig.axes
        if not hasattr(ax, "_colorbar")
        for c in ax.collections
        if isinstance(c, QuadMesh)
    ]


def _colorbars(fig):
    return [ax for ax in fig.axes if hasattr(ax, "_colorbar")]


@pytest.mark.parametrize(("name", "count"), [("fig1", 2), ("fig2", 2), ("fig3", 2)])
def test_maps_side_by_side_share_one_norm_and_one_colour_bar(linear_figures, name, count):
    fig = linear_figures[name]
    maps = _maps(fig)
    assert len(maps) == count
    limits = {(m.norm.vmin, m.norm.vmax) for _, m in maps}
    assert len(limits) == 1, limits
    # the range covers the most negative value of every map (the simulation's, here)
    ((vmin, vmax),) = limits
    lowest = min(float(np.nanmin(m.get_array())) for _, m in maps)
    assert vmin == -vmax and vmin <= lowest + 1e-12
    assert len(_colorbars(fig)) == 1


def _data_points(ax):
    """Display coordinates of the markers and line vertices drawn in ``ax``'s data."""
    from matplotlib.collections import PathCollection

    points = [
        ax.transData.transform(np.asarray(c.get_offsets(), dtype=float))
        for c in ax.collections
        if isinstance(c, PathCollection) and len(c.get_offsets())
    ]
    for line in ax.get_lines():
        xy = np.column_stack([np.asarray(a, dtype=float) for a in line.get_data()])
        if len(xy) and line.get_transform() == ax.transData:
            points.append(ax.transData.transform(xy))
    return np.concatenate(points) if points else np.empty((0, 2))


def _legends_cover_no_data(fig):
    """(legend title, points inside it) for every legend that covers drawn data."""
    fig.draw_without_rendering()
    covered = []
    legends = [(ax.get_legend(), [ax]) for ax in fig.axes if ax.get_legend() is not None]
    legends += [(legend, fig.axes) for legend in fig.legends]
    for legend, axes in legends:
        box = legend.get_window_extent()
        for ax in axes:
            points = _data_points(ax)
            finite = points[np.isfinite(points).all(axis=1)]
            inside = (
                (finite[:, 0] > box.x0) & (finite[:, 0] < box.x1)
                & (finite[:, 1] > box.y0) & (finite[:, 1] < box.y1)
            )  # fmt: skip
            if inside.any():
                covered.append((ax.get_title(), int(inside.sum())))
    return covered


@pytest.mark.parametrize("name", ["fig1", "fig2", "fig3"])
def test_legends_are_off_the_data(linear_figures, name):
    assert _legends_cover_no_data(linear_figures[name]) == []


def test_every_sign_marker_is_explained(linear_figures):
    labels = {"simulated T < 0", "simulated T > 0", "|T| < 2 s.e. or 1e-3"}
    for name, fig in linear_figures.items():
        texts = {t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts}
        texts |= {t.get_text() for legend in fig.legends for t in legend.texts}
        assert labels <= texts, name


def test_titles_name_the_init_its_scale_and_the_endpoints(linear_figures):
    for name, fig in linear_figures.items():
        words = fig.get_suptitle() + " ".join(ax.get_title() for ax in fig.axes)
        assert "random init of scale 1e-05" in words, name
        assert "trained to convergence" in words, name


# ------------------------------------------------ the corrected fine-tuning T = 0 line at alpha = 1


def test_corrected_finetune_line_is_resolved_below_alpha_one_and_never_on_the_plateau():
    # With noise, c grows without bound as alpha -> 1, and T = (1 - alpha)(2c cos(theta) - c^2)
    # turns negative just below alpha = 1 at every angle: a real sign change, inside the grid's
    # last cell before the plateau T = 0 (alpha >= 1). The line must run down to theta = 0
    # at the root of T there, and no part of it may lie on the plateau's edge alpha = 1.
    from scipy.optimize import brentq

    from featurefate.theory.linear import transferability

    alpha, theta = grid(2.0, 40, 31)  # alpha = 0.95, 1.0 on the grid
    fig = plot_phase_diagram(
        phase_diagram("finetune", 0.2, variant="exact", alpha=alpha, theta=theta)
    )
    vertices = _zero_line(fig)
    assert np.all(vertices[:, 0] < 1.0)
    root = brentq(
        lambda a: transferability("finetune", a, 0.0, 0.2, variant="exact"), 0.99, 1 - 1e-12
    )
    assert 0.997 < root < 0.998
    at_zero = vertices[vertices[:, 1] < 1e-12, 0]
    assert at_zero.size and np.min(np.abs(at_zero - root)) < 2e-4
    assert any("T = 0 at α = 0.997" in t.get_text() for t in fig.axes[0].texts)


@pytest.mark.parametrize(("sigma", "variant"), [(0.2, "paper"), (0.0, "exact")])
def test_no_line_near_alpha_one_without_a_sign_change_there(sigma, variant):
    # the paper's endpoint, and the corrected one without noise, approach T = 0 from the side
    # they are on: the only line is the break-even angle pi/3
    alpha, theta = grid(2.0, 40, 31)
    fig = plot_phase_diagram(
        phase_diagram("finetune", sigma, variant=variant, alpha=alpha, theta=theta)
    )
    vertices = _zero_line(fig)
    assert np.all(np.abs(vertices[:, 1] - np.pi / 3) < theta[1] - theta[0])
    assert len(fig.axes[0].texts) == 0


# --------------------------------------------------------------------- finite source, Fig. 4(e)


def _fake_finite_source(sigma):
    import json

    import xarray as xr

    alpha, alpha_source = np.array([0.2, 0.4, 0.6, 1.6]), np.array([0.5, 2.0, 4.0])
    shape = (alpha_source.size, alpha.size, 1, 1)
    data = {}
    for method in ("linear", "finetune"):
        data[f"transferability_{method}"] = (
            ("alpha_source", "alpha", "theta", "sigma"),
            np.full(shape, 0.1),
        )
        data[f"transferability_{method}_stderr"] = (
            ("alpha_source", "alpha", "theta", "sigma"),
            np.full(shape, 0.01),
        )
    return xr.Dataset(
        data,
        coords={
            "alpha": alpha,
            "alpha_source": alpha_source,
            "theta": [np.pi / 4],
            "sigma": [sigma],
        },
        attrs={"config": json.dumps({"sigma_source": 0.0}), "depth": 2, "dim": 24},
    )


@pytest.mark.parametrize("sigma", [0.0, 0.2])
def test_finite_source_line_only_where_t_changes_sign(sigma):
    # fine-tuning's T is exactly 0 for alpha >= 1; without noise it comes down to 0 from above
    # (no line may follow alpha = 1), with noise it turns negative just below 1 (the line
    # crosses there, below alpha = 1, at the root of T)
    from featurefate.figures.finite_source import plot_finite_source

    fig = plot_finite_source(_fake_finite_source(sigma))
    panel = next(ax for ax in fig.axes if ax.get_title().startswith("fine-tuning"))
    paths = [p for c in panel.collections if isinstance(c, ContourSet) for p in c.get_paths()]
    vertices = np.concatenate([p.vertices for p in paths] + [np.empty((0, 2))])
    near_one = vertices[vertices[:, 0] > 0.95, 0]
    if sigma == 0.0:
        assert near_one.size == 0
    else:
        assert near_one.size and np.all(near_one < 1.0)
    assert _legends_cover_no_data(fig) == []


def test_fig4e_marks_every_cell_with_a_glyph_of_its_legend():
    import xarray as xr

    from featurefate.figures.relu import plot_transfer_sign

    t = np.array([[0.5, -0.4, 0.01], [0.2, -0.1, -0.3]])
    ds = xr.Dataset(
        {
            "transferability_linear": (("n", "rho"), t),
            "transferability_linear_stderr": (("n", "rho"), np.full(t.shape, 0.02)),
            "error_scratch": (("n", "rho"), np.ones(t.shape)),  # no power law: no boundary
        },
        coords={"n": [20, 40], "rho": [0.0, 0.3, 0.6]},
    )
    fig = plot_transfer_sign(ds)
    ax = fig.axes[0]
    assert len(ax.texts) == 0  # no marks drawn as text, which a legend cannot show alike
    drawn = {
        (line.get_marker(), line.get_markersize())
        for line in ax.get_lines()
        if len(line.get_xdata())
    }
    legend = {(h.get_marker(), h.get_markersize()) for h in ax.get_legend().legend_handles}
    assert drawn == {("+", 9.0), ("_", 9.0), ("o", 4.0)} and drawn <= legend
    assert _legends_cover_no_data(fig) == []
