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
from featurefate.figures.phase import _pi_label, plot_phase_diagram

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


def _scale_note(sim: xr.Dataset) -> str:
    n_inst = sim.sizes.get("instance", 0)
    init = sim.attrs.get("init")
    init_note = f", {init} init" if init else ""
    return (
        f"simulation: L = {sim.attrs.get('depth', '?')}, D = {sim.attrs.get('dim', '?')}, "
        f"{n_inst} instances{init_note}"
    )


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
    kw = {"s": size, "edgecolors": "black", "linewidths": linewidth, "zorder": 3}
    ax.scatter(x[neg], y[neg], marker="v", color="#b2182b", **kw)
    ax.scatter(x[pos], y[pos], marker="^", color="#2166ac", **kw)
    ax.scatter(x[unclear], y[unclear], marker="o", color="white", **kw)
    ax.scatter(x[limit], y[limit], marker="x", color="0.35", s=size, linewidths=1.0, zorder=3)


def _sign_legend(ax, at_limit=None) -> None:
    handles = [
        Line2D([], [], ls="", marker="v", mfc="#b2182b", mec="black", label="simulated T < 0"),
        Line2D([], [], ls="", marker="^", mfc="#2166ac", mec="black", label="simulated T > 0"),
        Line2D([], [], ls="", marker="o", mfc="white", mec="black", label="|T| < 2 s.e. or 1e-3"),
    ]
    if at_limit is not None and bool(at_limit.any()):
        handles.append(
            Line2D([], [], ls="", marker="x", mec="0.35", label="instances at the step limit")
        )
    ax.legend(handles=handles, fontsize=7, loc="upper right", framealpha=0.85)


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
    """T against alpha at the slice angles: simulation with error bars, theory curves."""
    styles = {0: "-", 1: "--"}
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
            label=f"θ = {label} (sim.)",
        )
        for k, (name, theory) in enumerate(theories.items()):
            curve = theory["theory_transferability"].sel(theta=theta, method="nearest")
            ax.plot(
                curve.alpha,
                curve,
                styles[k % 2],
                color=colour,
                lw=1.3,
                label=f"θ = {label} ({name})" if len(theories) > 1 else None,
            )
    ax.axhline(0.0, color="black", lw=0.7)
    lo = float(np.nanmin(sim_t - sim_se))
    hi = float(np.nanmax(sim_t + sim_se))
    span = max(hi - lo, 0.1)
    ax.set_ylim(max(lo - 0.15 * span, -3.0), min(hi + 0.15 * span, 3.0))
    ax.set_xlabel("α = n / D", fontsize=_SIZE)
    ax.set_ylabel(ylabel, fontsize=_SIZE)
    ax.legend(fontsize=7, ncol=1 if len(theories) == 1 else 2)


def plot_linear_transfer(sim: xr.Dataset, theory: xr.Dataset, *, sigma: float) -> Figure:
    """Fig. 1 (sigma = 0.2) / Fig. 6 (sigma = 0): linear transfer, theory and simulation.

    (a) theory transferability, eq. (13); (b) simulated transferability; (c) binary phase
    diagram: the theory's negative region with each simulated cell's sign; (d) slices against
    alpha at theta = pi/8, pi/4, 3pi/8, simulation (one standard error) and theory.
    """
    s = sim.sel(sigma=sigma)
    fig = Figure(figsize=(11.0, 8.2), layout="constrained")
    axes = fig.subplots(2, 2)
    plot_phase_diagram(theory, ax=axes[0, 0], title=f"(a) theory, D → ∞, σ = {sigma:g}")
    plot_phase_diagram(
        s,
        variable="transferability_linear",
        ax=axes[0, 1],
        title=f"(b) {_scale_note(sim)}",
        contour=False,
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
    fig.suptitle(f"Linear transfer, σ = {sigma:g}")
    return fig


def plot_ridge(
    sim: xr.Dataset, theories: dict[float, xr.Dataset], *, sigma: float, theta: float = np.pi / 4
) -> Figure:
    """Fig. 2: ridge linear transfer.

    (a) error against lam at theta (nearest simulated angle) for three alphas: simulation (mean,
    one standard error) and the exact finite-D theory, eqs. (14)-(15); then, for each lam > 0 in
    ``theories``, the theory phase diagram with each simulated cell's sign.
    """
    s = sim.sel(sigma=sigma)
    theta = nearest(s.theta, theta)
    fig = Figure(figsize=(5.0 + 4.6 * len(theories), 4.2), layout="constrained")
    axes = fig.subplots(1, 1 + len(theories), squeeze=False)[0]
    ax = axes[0]
    alphas = s.alpha.values
    picks = sorted({nearest(alphas, a) for a in (0.5, 1.0, 1.5)})
    for colour, alpha in zip(_SLICE_COLOURS, picks, strict=False):
        cell = s.sel(alpha=alpha, theta=theta)
        err = cell.error_ridge
        mean = err.mean("instance")
        se = err.std("instance", ddof=1) / np.sqrt(err.sizes["instance"])
        ax.errorbar(
            cell.lam,
            mean,
            yerr=se,
            fmt="o",
            color=colour,
            ms=4,
            capsize=2,
            label=f"α = {alpha:g} (sim.)",
        )
        ax.plot(
            cell.lam,
            cell.theory_error_ridge,
            "-",
            color=colour,
            lw=1.3,
            label=f"α = {alpha:g} (theory, D = {sim.attrs.get('dim')})",
        )
    ax.set_xlabel("ridge penalty λ", fontsize=_SIZE)
    ax.set_ylabel("generalization error |w − β_t|²", fontsize=_SIZE)
    ax.set_title(f"(a) error against λ, θ = {_pi_label(theta, 0)}, σ = {sigma:g}", fontsize=_SIZE)
    ax.legend(fontsize=7)
    for k, (lam, theory) in enumerate(sorted(theories.items())):
        ax = axes[1 + k]
        lam_sim = nearest(s.lam, lam)
        plot_phase_diagram(
            theory, ax=ax, title=f"({chr(98 + k)}) λ = {lam:g}: theory (D → ∞), simulated signs"
        )
        sign_markers(
            ax,
            s.transferability_ridge.sel(lam=lam_sim),
            s.transferability_ridge_stderr.sel(lam=lam_sim),
            at_step_limit(s, ("scratch",)),
        )
    fig.suptitle(f"Ridge linear transfer, σ = {sigma:g}; {_scale_note(sim)}")
    return fig


def plot_finetune(sim: xr.Dataset, theories: dict[str, xr.Dataset], *, sigma: float) -> Figure:
    """Fig. 3 (sigma = 0.2) / Fig. 7 (sigma = 0): fine-tuning against both theory variants.

    ``theories`` maps ``"paper"`` and ``"exact"`` to phase diagrams of eq. (17) with the paper's
    endpoint and with the corrected one. (a) simulated transferability; (b) the corrected
    theory with simulated signs; (c) slices against alpha, simulation and both variants
    (solid: paper, dashed: corrected).
    """
    s = sim.sel(sigma=sigma)
    fig = Figure(figsize=(17.0, 4.6), layout="constrained")
    axes = fig.subplots(1, 3)
    plot_phase_diagram(
        s,
        variable="transferability_finetune",
        ax=axes[0],
        title=f"(a) {_scale_note(sim)}",
        contour=False,
    )
    plot_phase_diagram(
        theories["exact"], ax=axes[1], title="(b) corrected theory (D → ∞), simulated signs"
    )
    at_limit = at_step_limit(s, ("scratch", "finetune"))
    sign_markers(axes[1], s.transferability_finetune, s.transferability_finetune_stderr, at_limit)
    _sign_legend(axes[1], at_limit)
    _slices(
        axes[2],
        s.transferability_finetune,
        s.transferability_finetune_stderr,
        {"paper": theories["paper"], "corrected": theories["exact"]},
        ylabel="transferability T",
    )
    axes[2].set_title("(c) slices: theory of the paper (solid), corrected (dashed)", fontsize=_SIZE)
    fig.suptitle(f"Fine-tuning, σ = {sigma:g}")
    return fig
