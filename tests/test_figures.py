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
