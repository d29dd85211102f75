r"""Transfer after pretraining on finite source data: T over (alpha, alpha_source), theory and simulation.

:func:`plot_finite_source` draws, at the store's fixed theta and sigma, the limit
:math:`D \to \infty` of the transferability of linear transfer and of fine-tuning (the corrected
endpoint) as a map over the target's alpha and the source's alpha_source (docs/theory.md, Finite
source data), its T = 0 contour, and the sign of the simulated T in every cell, marked as in the
other phase diagrams (:mod:`featurefate.figures.linear`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from featurefate import schema
from featurefate.figures.linear import (
    _ENDPOINTS,
    _scale_note,
    at_step_limit,
    sign_handles,
    sign_markers,
)
from featurefate.figures.phase import zero_contour
from featurefate.theory import linear as theory

PANELS = (
    ("linear", "linear", {}, "linear transfer"),
    ("finetune", "finetune", {"variant": "exact"}, "fine-tuning (corrected endpoint)"),
)
"""(simulated method, theory method, theory keywords, title) per panel."""
_RANGE = 1.0  # the colour scale's half-width: |T| beyond it is drawn saturated


def theory_map(method, alpha, alpha_source, theta, sigma, sigma_source, **kw):
    """The limit's T on the grid ``alpha_source x alpha`` (rows alpha_source)."""
    a_s, a = np.meshgrid(alpha_source, alpha, indexing="ij")
    return theory.transferability(
        method, a, theta, sigma, alpha_source=a_s, sigma_source=sigma_source, **kw
    )


def _target_grid(alpha_max, num=300):
    """A linear grid over alpha with points approaching alpha = 1 from below geometrically.

    Fine-tuning's T is exactly 0 for alpha >= 1; with label noise it turns negative just below
    1 (c grows without bound), a sign change that a linear grid would not resolve.
    """
    grid = np.linspace(0.01, alpha_max, num)
    if alpha_max <= 1.0:
        return grid
    below = grid[grid < 1.0]
    near = 1.0 - (1.0 - below.max()) * np.geomspace(0.5, 1e-9, 30)
    return np.union1d(grid, near)


def _source_grid(values, num=240):
    """A log grid over the simulated alpha_source values, avoiding alpha_source = 1 itself."""
    lo, hi = np.log10(np.min(values) * 0.8), np.log10(np.max(values) * 1.25)
    grid = np.logspace(lo, hi, num)
    return grid[np.abs(grid - 1.0) > 1e-6]


def plot_finite_source(ds: xr.Dataset) -> Figure:
    """T over (alpha, alpha_source) for linear transfer and corrected fine-tuning (one theta, sigma).

    Background: the limit's T on one colour scale for both panels (red negative, blue
    positive, saturated beyond +-1), the black T = 0 contour, drawn only where T changes sign
    (:func:`featurefate.figures.phase.zero_contour`: not along the edge of fine-tuning's
    plateau T = 0 at alpha >= 1). Markers: the simulated cells, red down-triangle
    T < -2 s.e., blue up-triangle T > 2 s.e., white circle undecided (|T| within 2 s.e. or
    below the endpoints' accuracy), grey cross where an instance stopped at the step limit
    (in the legend only when a cell has one).
    """
    theta = float(ds.theta.values.flat[0])
    sigma = float(ds.sigma.values.flat[0])
    ds = ds.sel(theta=theta, sigma=sigma) if "theta" in ds.dims else ds
    if "sigma" in ds.dims:
        ds = ds.sel(sigma=sigma)
    sigma_source = float(np.atleast_1d(_config(ds).get("sigma_source", 0.0))[0])
    alpha_fine = _target_grid(float(ds.alpha.max()) * 1.05)
    source_fine = _source_grid(ds.alpha_source.values)
    fig = Figure(figsize=(11.5, 4.9), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    norm = TwoSlopeNorm(vmin=-_RANGE, vcenter=0.0, vmax=_RANGE)
    stopped = False
    for ax, (sim_method, method, kw, title) in zip(axes, PANELS, strict=True):
        t_map = theory_map(method, alpha_fine, source_fine, theta, sigma, sigma_source, **kw)
        mesh = ax.pcolormesh(
            alpha_fine,
            source_fine,
            np.clip(t_map, -_RANGE, _RANGE),
            cmap="RdBu",
            norm=norm,
            shading="auto",
            rasterized=True,
        )
        zero_contour(ax, alpha_fine, source_fine, t_map, linewidths=1.2)
        stopped |= _markers(ax, ds, sim_method)
        ax.set_yscale("log")
        ticks = sorted({*np.round(ds.alpha_source.values, 3), 1.0})
        ax.set_yticks(ticks, [f"{x:g}" for x in ticks])
        ax.minorticks_off()
        ax.set_xlabel("target samples per dimension α = n / D")
        ax.set_title(title)
    axes[0].set_ylabel("source samples per dimension α_s = n_s / D")
    fig.colorbar(mesh, ax=axes, label="theory T (D → ∞), saturated at ±1", shrink=0.9)
    handles = [Line2D([], [], color="black", lw=1.2, label="theory T = 0")]
    handles += sign_handles(np.array([stopped]))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    fig.suptitle(
        f"Pretraining on finite source data: T over (α, α_s) at θ = {theta / np.pi:.3g}π, "
        f"σ = {sigma:g}, σ_s = {sigma_source:g}; background: theory, D → ∞\n"
        f"{_scale_note(ds)}; {_ENDPOINTS}"
    )
    return fig


def _config(ds) -> dict:
    import json

    try:
        return json.loads(ds.attrs.get("config", "{}"))
    except ValueError:
        return {}


def _markers(ax, ds, method):
    dims = ("alpha_source", "alpha")
    t = ds[schema.transferability_name(method)]
    se = ds[schema.stderr_name(schema.transferability_name(method))]
    stopped = at_step_limit(ds, ("scratch", "pretrain", "finetune"), dims=dims)
    if stopped is not None:
        stopped = stopped.broadcast_like(t).transpose(*dims)
    sign_markers(ax, t, se, stopped, dims=dims, size=34, linewidth=0.6)
    return stopped is not None and bool(stopped.any())
