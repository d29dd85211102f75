r"""Figures of the deep linear sweep: simulation beside theory (the paper's Figs. 1, 2, 3, 6, 7).

Each function takes the sweep's result dataset (dims ``alpha``, ``theta``, ``sigma``,
``instance``, ``lam``; :func:`featurefate.sweep.open_results`) and theory datasets from
:func:`featurefate.experiments.theory_phase.phase_diagram` (D -> infinity, on a fine alpha grid
whose theta values include the simulated ones), and returns a :class:`~matplotlib.figure.Figure`.
Error bars are one standard error over the instances. A simulated sign is "significant" when
|T| exceeds two standard errors and :data:`SIGN_ATOL`, the accuracy of the trained endpoints
(where scratch and transfer reach the same interpolant, T is 0 up to that accuracy).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MultipleLocator

from featurefate import schema
from featurefate.figures.phase import (
    _pi_label,
    phase_colorbar,
    plot_phase_diagram,
    shared_colour_limit,
)

SLICE_ANGLES = (np.pi / 8, np.pi / 4, 3 * np.pi / 8)
"""The angles of the alpha slices in Figs. 1 and 3."""
SIGN_ATOL = 1e-3
"""Simulated |T| below this is not read as a sign (the endpoints' accuracy, docs/theory.md, Simulation notes)."""
_SLICE_COLOURS = ("#1b9e77", "#d95f02", "#7570b3")
_SIZE = 10


def nearest(values, target: float) -> float:
    """The element of ``values`` closest to ``target``."""
    values = np.asarray(values, dtype=float)
    return float(values[np.argmin(np.abs(values - target))])


def _scale_note(sim: xr.Dataset, *, newline: bool = False) -> str:
    """'simulation: L = 2, D = 30, 10 instances, random init of scale 1e-05' from ``attrs``.

    With ``newline`` the colon is a line break (a panel title on two lines).
    """
    n_inst = sim.sizes.get("instance", 0)
    init = sim.attrs.get("init")
    scale = sim.attrs.get("init_scale")
    init_note = f", {init} init" if init else ""
    if init and scale is not None:
        init_note += f" of scale {float(scale):g}"
    return (
        f"simulation{chr(10) if newline else ': '}L = {sim.attrs.get('depth', '?')}, "
        f"D = {sim.attrs.get('dim', '?')}, {n_inst} instances{init_note}"
    )


_ENDPOINTS = "simulated networks trained to convergence by gradient descent"
"""What the simulated maps and markers show, for the suptitles."""


def _below(ax, handles, *, ncol=2, offset=-0.15):
    """A legend under ``ax``, off the data (constrained layout makes room for it)."""
    return ax.legend(
        handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, offset),
        ncol=ncol, frameon=False,
    )  # fmt: skip


def _shared_maps(fig, axes, maps, *, titles, contours, **kw):
    """Maps of T side by side on one colour norm with one colour bar.

    ``maps`` are (dataset, variable) pairs, drawn with :func:`plot_phase_diagram` on ``axes``
    with the half-width :func:`shared_colour_limit` of all of them (and ``kw``).
    """
    values = [ds[variable].values for ds, variable in maps]
    vlim = shared_colour_limit(*values)
    for ax, (ds, variable), title, contour in zip(axes, maps, titles, contours, strict=True):
        plot_phase_diagram(
            ds, variable=variable, ax=ax, title=title, contour=contour, vlim=vlim,
            colorbar=False, **kw,
        )  # fmt: skip
    mesh = next(c for c in axes[0].collections if hasattr(c, "get_array"))
    return phase_colorbar(fig, mesh, list(axes), *values, vlim=vlim)


def at_step_limit(
    s: xr.Dataset, stages=("scratch", "finetune"), dims=("theta", "alpha")
) -> xr.DataArray | None:
    """Cells where an instance of one of the trained ``stages`` stopped at the step limit.

    Such a cell's transferability is not its endpoint's. Returns a boolean array over the cell
    dimensions (``dims`` first), or None when ``s`` has no convergence flags.
    """
    names = [schema.converged_name(stage) for stage in stages]
    names = [name for name in names if name in s]
    if not names:
        return None
    stopped = sum((~s[name].fillna(True).astype(bool)).any("instance") for name in names)
    return (stopped > 0).transpose(*dims, ...)


def sign_markers(
    ax,
    t: xr.DataArray,
    se: xr.DataArray,
    at_limit=None,
    *,
    dims=("theta", "alpha"),
    size=22,
    linewidth=0.5,
) -> None:
    """Mark each simulated cell: red down-triangle if T < -2 se, blue up-triangle if T > 2 se.

    ``dims`` are the (y, x) cell dimensions. Cells in ``at_limit`` (:func:`at_step_limit`) get a
    grey cross instead: an instance there is not at its endpoint, so its sign is not the
    endpoint's.
    """
    t, se = t.transpose(*dims), se.transpose(*dims)
    x, y = np.meshgrid(t[dims[1]].values, t[dims[0]].values)
    tv, sv = t.values, se.values
    clear = np.abs(tv) > SIGN_ATOL
    limit = np.zeros(tv.shape, dtype=bool) if at_limit is None else at_limit.values
    neg, pos = clear & (tv < -2 * sv) & ~limit, clear & (tv > 2 * sv) & ~limit
    unclear = np.isfinite(tv) & ~neg & ~pos & ~limit
    # not clipped: the cells on the grid's edges sit on the axes' edges, and show whole
    kw = {"s": size, "edgecolors": "black", "linewidths": linewidth, "zorder": 3, "clip_on": False}
    ax.scatter(x[neg], y[neg], marker="v", color="#b2182b", **kw)
    ax.scatter(x[pos], y[pos], marker="^", color="#2166ac", **kw)
    ax.scatter(x[unclear], y[unclear], marker="o", color="white", **kw)
    ax.scatter(
        x[limit], y[limit], marker="x", color="0.35", s=size, linewidths=1.0, zorder=3,
        clip_on=False,
    )  # fmt: skip


def sign_handles(at_limit=None) -> list[Line2D]:
    """Legend handles of :func:`sign_markers`; the cross only when a cell in ``at_limit`` has it."""
    handles = [
        Line2D([], [], ls="", marker="v", mfc="#b2182b", mec="black", label="simulated T < 0"),
        Line2D([], [], ls="", marker="^", mfc="#2166ac", mec="black", label="simulated T > 0"),
        Line2D([], [], ls="", marker="o", mfc="white", mec="black", label="|T| < 2 s.e. or 1e-3"),
    ]
    if at_limit is not None and bool(at_limit.any()):
        handles.append(
            Line2D([], [], ls="", marker="x", mec="0.35", label="instances at the step limit")
        )
    return handles


def _sign_legend(ax, at_limit=None) -> None:
    """The sign markers' legend under ``ax``, off the markers."""
    handles = sign_handles(at_limit)
    _below(ax, handles, ncol=len(handles) if len(handles) < 4 else 2)


def _negative_region(ax, theory: xr.Dataset) -> None:
    """Binary phase diagram: theory's negative region shaded, its boundary in black."""
    t = theory["theory_transferability"].transpose("theta", "alpha")
    negative = (t.values < 0).astype(float)
    ax.contourf(t.alpha, t.theta, negative, levels=[0.5, 1.5], colors=["#f4a582"], alpha=0.8)
    finite = np.where(np.isfinite(t.values), t.values, 1e3)
    if finite.min() < 0 < finite.max():
        ax.contour(t.alpha, t.theta, finite, levels=[0.0], colors="black", linewidths=1.2)


def _theta_axis(ax) -> None:
    ax.yaxis.set_major_locator(MultipleLocator(np.pi / 8))
    ax.yaxis.set_major_formatter(FuncFormatter(_pi_label))
    ax.set_ylabel("θ", fontsize=_SIZE)
    ax.set_xlabel("α = n / D", fontsize=_SIZE)


def _slices(ax, sim_t, sim_se, theories: dict[str, xr.Dataset], *, ylabel: str) -> None:
    """T against alpha at the slice angles: simulation with error bars, theory curves.

    The legend, under the axes: one colour per angle, then the marker of the simulation and
    the line style of each theory.
    """
    styles = {0: "-", 1: "--"}
    handles = []
    for colour, angle in zip(_SLICE_COLOURS, SLICE_ANGLES, strict=True):
        theta = nearest(sim_t.theta, angle)
        label = _pi_label(theta, 0) if np.isclose(theta, angle) else f"{theta:.3f}"
        ax.errorbar(
            sim_t.alpha,
            sim_t.sel(theta=theta),
            yerr=sim_se.sel(theta=theta),
            fmt="o",
            ms=3.5,
            color=colour,
            capsize=2,
        )
        for k, theory in enumerate(theories.values()):
            curve = theory["theory_transferability"].sel(theta=theta, method="nearest")
            ax.plot(curve.alpha, curve, styles[k % 2], color=colour, lw=1.3)
        handles.append(Line2D([], [], color=colour, lw=6, label=f"θ = {label}"))
    handles.append(
        Line2D([], [], ls="", marker="o", ms=3.5, color="0.3", label="simulation ± 1 s.e.")
    )
    handles += [
        Line2D([], [], ls=styles[k % 2], color="0.3", lw=1.3, label=f"{name} (D → ∞)")
        for k, name in enumerate(theories)
    ]
    ax.axhline(0.0, color="black", lw=0.7)
    lo = float(np.nanmin(sim_t - sim_se))
    hi = float(np.nanmax(sim_t + sim_se))
    span = max(hi - lo, 0.1)
    ax.set_ylim(max(lo - 0.15 * span, -3.0), min(hi + 0.15 * span, 3.0))
    ax.set_xlabel("α = n / D", fontsize=_SIZE)
    ax.set_ylabel(ylabel, fontsize=_SIZE)
    _below(ax, handles, ncol=3)


def plot_linear_transfer(sim: xr.Dataset, theory: xr.Dataset, *, sigma: float) -> Figure:
    """Fig. 1 (sigma = 0.2) / Fig. 6 (sigma = 0): linear transfer, theory and simulation.

    (a) theory transferability, eq. (13); (b) simulated transferability, on (a)'s colour
    scale (one norm, one colour bar); (c) binary phase diagram: the theory's negative region
    with each simulated cell's sign; (d) slices against alpha at theta = pi/8, pi/4, 3pi/8,
    simulation (one standard error) and theory. Legends sit under the panels, off the data.
    """
    s = sim.sel(sigma=sigma)
    fig = Figure(figsize=(11.0, 8.8), layout="constrained")
    axes = fig.subplots(2, 2)
    _shared_maps(
        fig,
        axes[0],
        [(theory, "theory_transferability"), (s, "transferability_linear")],
        titles=[f"(a) theory\nD → ∞, σ = {sigma:g}", f"(b) {_scale_note(sim, newline=True)}"],
        contours=[True, False],
    )
    ax = axes[1, 0]
    _negative_region(ax, theory)
    at_limit = at_step_limit(s, ("scratch",))
    sign_markers(ax, s.transferability_linear, s.transferability_linear_stderr, at_limit)
    _theta_axis(ax)
    ax.set_xlim(0, float(theory.alpha.max()))
    ax.set_ylim(float(theory.theta.min()), float(theory.theta.max()))
    ax.set_title("(c) negative transfer: theory (shaded) and simulation", fontsize=_SIZE)
    _sign_legend(ax, at_limit)
    _slices(
        axes[1, 1],
        s.transferability_linear,
        s.transferability_linear_stderr,
        {"theory": theory},
        ylabel="transferability T",
    )
    axes[1, 1].set_title("(d) slices: simulation ± 1 s.e., theory lines", fontsize=_SIZE)
    fig.suptitle(f"Linear transfer, σ = {sigma:g}; {_ENDPOINTS}")
    return fig


def plot_ridge(
    sim: xr.Dataset, theories: dict[float, xr.Dataset], *, sigma: float, theta: float = np.pi / 4
) -> Figure:
    """Fig. 2: ridge linear transfer.

    (a) error against lam at theta (nearest simulated angle) for three alphas: simulation (mean,
    one standard error) and the exact finite-D theory, eqs. (14)-(15); then, for each lam > 0 in
    ``theories``, the theory phase diagram with each simulated cell's sign, all on one colour
    scale with one colour bar; the sign markers' legend is under the figure.
    """
    s = sim.sel(sigma=sigma)
    theta = nearest(s.theta, theta)
    fig = Figure(figsize=(5.0 + 4.4 * len(theories), 4.8), layout="constrained")
    axes = fig.subplots(1, 1 + len(theories), squeeze=False)[0]
    ax = axes[0]
    alphas = s.alpha.values
    picks = sorted({nearest(alphas, a) for a in (0.5, 1.0, 1.5)})
    handles = []
    for colour, alpha in zip(_SLICE_COLOURS, picks, strict=False):
        cell = s.sel(alpha=alpha, theta=theta)
        err = cell.error_ridge
        mean = err.mean("instance")
        se = err.std("instance", ddof=1) / np.sqrt(err.sizes["instance"])
        ax.errorbar(cell.lam, mean, yerr=se, fmt="o", color=colour, ms=4, capsize=2)
        ax.plot(cell.lam, cell.theory_error_ridge, "-", color=colour, lw=1.3)
        handles.append(Line2D([], [], color=colour, lw=6, label=f"α = {alpha:g}"))
    handles += [
        Line2D([], [], ls="", marker="o", ms=4, color="0.3", label="simulation ± 1 s.e."),
        Line2D([], [], color="0.3", lw=1.3, label=f"theory, D = {sim.attrs.get('dim')}"),
    ]
    ax.set_xlabel("ridge penalty λ", fontsize=_SIZE)
    ax.set_ylabel("generalization error |w − β_t|²", fontsize=_SIZE)
    ax.set_title(f"(a) error against λ, θ = {_pi_label(theta, 0)}, σ = {sigma:g}", fontsize=_SIZE)
    _below(ax, handles, ncol=3)
    ordered = sorted(theories.items())
    at_limit = at_step_limit(s, ("scratch",))
    if ordered:
        _shared_maps(
            fig,
            axes[1:],
            [(theory, "theory_transferability") for _, theory in ordered],
            titles=[
                f"({chr(98 + k)}) λ = {lam:g}: theory (D → ∞), simulated signs"
                for k, (lam, _) in enumerate(ordered)
            ],
            contours=[True] * len(ordered),
        )
    for k, (lam, _) in enumerate(ordered):
        lam_sim = nearest(s.lam, lam)
        sign_markers(
            axes[1 + k],
            s.transferability_ridge.sel(lam=lam_sim),
            s.transferability_ridge_stderr.sel(lam=lam_sim),
            at_limit,
        )
    if ordered:
        fig.legend(
            handles=sign_handles(at_limit), loc="outside lower right", ncols=4, fontsize=8,
            frameon=False,
        )  # fmt: skip
    fig.suptitle(f"Ridge linear transfer, σ = {sigma:g}; {_scale_note(sim)}\n{_ENDPOINTS}")
    return fig


def plot_finetune(sim: xr.Dataset, theories: dict[str, xr.Dataset], *, sigma: float) -> Figure:
    """Fig. 3 (sigma = 0.2) / Fig. 7 (sigma = 0): fine-tuning against both theory variants.

    ``theories`` maps ``"paper"`` and ``"exact"`` to phase diagrams of eq. (17) with the paper's
    endpoint and with the corrected one. (a) simulated transferability; (b) the corrected
    theory with simulated signs, on (a)'s colour scale (one norm, one colour bar); (c) slices
    against alpha, simulation and both variants (solid: paper, dashed: corrected). With label
    noise the corrected theory's T = 0 line turns down to theta = 0 just below alpha = 1 (c
    grows without bound there): a sign change resolved and labelled on (b).
    """
    s = sim.sel(sigma=sigma)
    fig = Figure(figsize=(17.0, 5.4), layout="constrained")
    fig.get_layout_engine().set(wspace=0.05)  # room between the colour bar and (c)'s label
    axes = fig.subplots(1, 3)
    _shared_maps(
        fig,
        axes[:2],
        [(s, "transferability_finetune"), (theories["exact"], "theory_transferability")],
        titles=[
            f"(a) {_scale_note(sim, newline=True)}",
            "(b) corrected theory (D → ∞)\nwith the simulated signs",
        ],
        contours=[False, True],
        note_in_title=True,  # the markers fill the corner
    )
    at_limit = at_step_limit(s, ("scratch", "finetune"))
    sign_markers(axes[1], s.transferability_finetune, s.transferability_finetune_stderr, at_limit)
    _sign_legend(axes[1], at_limit)
    _slices(
        axes[2],
        s.transferability_finetune,
        s.transferability_finetune_stderr,
        {"paper's endpoint": theories["paper"], "corrected endpoint": theories["exact"]},
        ylabel="transferability T",
    )
    axes[2].set_title("(c) slices: theory of the paper (solid), corrected (dashed)", fontsize=_SIZE)
    fig.suptitle(f"Fine-tuning, σ = {sigma:g}; {_ENDPOINTS}")
    return fig
