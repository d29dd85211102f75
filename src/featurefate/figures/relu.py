r"""Fig. 4 of the paper: transfer between two-layer ReLU teachers and students (Section 4).

The input is a combined sweep of :func:`featurefate.experiments.relu_phase.run_cell`: a dataset
with dims ``(rho, n, instance, ...)`` (cells stacked along their scalar coordinates ``rho`` and
``n``). Panels:

(a-b) the pretrained model's feature kernel and the source teacher's, on the same test points
      (instance 0 of one cell, points ordered by the source's value), with the exact kernel
      alignment of the two (mean over the cell's instances) as the similarity number;
(c)   scratch training's error against n, averaged over instances and rho (scratch training
      does not see the source), with the least-squares power law :math:`A n^{-\nu}` and its
      exponent;
(d)   the irreducible error of linear transfer :math:`|P_\perp f_t|^2` of the pretrained
      features against rho;
(e)   the measured transferability over (rho, n) (red negative, blue positive) and the predicted
      boundary :math:`n^*(\rho)` where :math:`A n^{-\nu} = |P_\perp f_t|^2` (grey circles).

Figures are built without pyplot (safe headless); save them with
:func:`featurefate.figures.phase.save_figure`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from featurefate.theory.relu import fit_power_law, predicted_boundary

_LABEL_SIZE = 10
_TICK_SIZE = 9
_BOUNDARY_COLOUR = "0.45"
_CELL_MARKS = {
    "positive": ({"marker": "+", "ms": 9, "mew": 1.6}, "T > 0 by 2 s.e."),
    "negative": ({"marker": "_", "ms": 9, "mew": 1.6}, "T < 0 by 2 s.e."),
    "unclear": ({"marker": "o", "ms": 4, "mfc": "none", "mew": 1.0}, "|T| ≤ 2 s.e."),
}
"""The mark of each cell of Fig. 4(e) by its sign (matplotlib line styles) and its legend text."""


def _instance_mean(da, dims):
    """Mean and standard error over ``dims`` (those present)."""
    dims = [d for d in dims if d in da.dims]
    count = int(np.prod([da.sizes[d] for d in dims])) if dims else 1
    mean = da.mean(dims)
    se = da.std(dims, ddof=1) / np.sqrt(count) if count > 1 else 0.0 * mean
    return mean, se


def scratch_power_law(ds):
    """Power-law fit of the mean scratch error against n (over instances and rho).

    Returns
    -------
    PowerLawFit or None
        None when fewer than three values of n are present.
    """
    mean, _ = _instance_mean(ds["error_scratch"], ("instance", "rho"))
    n = np.asarray(mean["n"], dtype=float)
    values = np.asarray(mean, dtype=float)
    ok = np.isfinite(values) & (values > 0)
    if np.unique(n[ok]).size < 3:
        return None
    return fit_power_law(n[ok], values[ok])


def residual_by_rho(ds):
    """Mean and standard error of :math:`|P_\\perp f_t|^2` per rho (over instances and n)."""
    return _instance_mean(ds["theory_residual"], ("instance", "n"))


def _sample_axis(axis, n):
    """Log axis with ticks at the sample sizes of the grid, labelled as plain integers."""
    axis.set_major_locator(FixedLocator(np.asarray(n, dtype=float)))
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:.0f}"))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def _new_axes(ax, figsize):
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    return ax.figure, ax


def _select_cell(ds, rho, n):
    sel = ds
    if "rho" in ds.dims:
        rho = float(ds["rho"].max()) if rho is None else rho
        sel = sel.sel(rho=rho, method="nearest")
    if "n" in ds.dims:
        n = ds["n"].values[0] if n is None else n
        sel = sel.sel(n=n, method="nearest")
    return sel


def plot_kernels(ds, *, rho=None, n=None, axes=None) -> Figure:
    """Fig. 4(a-b): the pretrained model's kernel and the source's on the same test points.

    Parameters
    ----------
    ds : xarray.Dataset
        With ``kernel_model``, ``kernel_source`` over ``(test_point, test_point_2)`` and
        ``kernel_alignment`` over ``instance``, possibly stacked over ``rho`` and ``n``.
    rho, n : float, optional
        The cell shown (nearest); default the largest rho and the first n. (Pretraining does not
        depend on n.)
    axes : pair of matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    cell = _select_cell(ds, rho, n)
    if axes is None:
        fig = Figure(figsize=(7.6, 3.4), layout="constrained")
        axes = fig.subplots(1, 2)
    else:
        fig = axes[0].figure
    model = np.asarray(cell["kernel_model"], dtype=float)
    source = np.asarray(cell["kernel_source"], dtype=float)
    if model.size == 0:
        for ax in axes:
            ax.text(0.5, 0.5, "no test points stored", ha="center", va="center")
            ax.set_axis_off()
        return fig
    vmax = max(model.max(), source.max())
    for ax, values, title in (
        (axes[0], model, "(a) pretrained model's kernel"),
        (axes[1], source, "(b) source teacher's kernel"),
    ):
        image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=_LABEL_SIZE)
        ax.set_xlabel("test point", fontsize=_LABEL_SIZE)
        ax.tick_params(labelsize=_TICK_SIZE)
    axes[0].set_ylabel("test point (ordered by f_s)", fontsize=_LABEL_SIZE)
    colorbar = fig.colorbar(image, ax=list(axes), shrink=0.85)
    colorbar.ax.tick_params(labelsize=_TICK_SIZE)
    exact = float(cell["kernel_alignment"].mean())
    shown = float(np.sum(model * source) / (np.linalg.norm(model) * np.linalg.norm(source)))
    rho_value = float(cell["rho"]) if "rho" in cell.coords else float("nan")
    axes[1].text(
        0.02,
        0.02,
        f"ρ = {rho_value:g}\nalignment {exact:.3f} (exact)\n{shown:.3f} on these points",
        transform=axes[1].transAxes,
        fontsize=_TICK_SIZE,
        color="white",
        va="bottom",
    )
    return fig


def plot_scratch_power_law(ds, *, ax=None) -> Figure:
    """Fig. 4(c): scratch error against n with the fitted power law :math:`A n^{-\\nu}`.

    Points are means over instances and rho with standard-error bars; the line is
    :func:`scratch_power_law`, labelled with the exponent and its 95% interval.
    """
    fig, ax = _new_axes(ax, (4.2, 3.4))
    mean, se = _instance_mean(ds["error_scratch"], ("instance", "rho"))
    n = np.asarray(mean["n"], dtype=float)
    ax.errorbar(n, mean, yerr=se, fmt="o", color="C0", ms=4, capsize=2, label="scratch")
    fit = scratch_power_law(ds)
    if fit is not None:
        grid = np.geomspace(n.min(), n.max(), 100)
        low, high = fit.exponent_interval
        ax.plot(
            grid,
            fit(grid),
            color="k",
            lw=1.2,
            label=f"{fit.amplitude:.3g} n^-ν, ν = {fit.exponent:.2f} [{low:.2f}, {high:.2f}]",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    _sample_axis(ax.xaxis, n)
    ax.set_xlabel("target samples n", fontsize=_LABEL_SIZE)
    ax.set_ylabel("generalization error", fontsize=_LABEL_SIZE)
    ax.set_title("(c) scratch training", fontsize=_LABEL_SIZE)
    ax.tick_params(labelsize=_TICK_SIZE)
    ax.legend(fontsize=_TICK_SIZE - 1, frameon=False)
    return fig


def plot_residual(ds, *, ax=None) -> Figure:
    """Fig. 4(d): :math:`|P_\\perp f_t|^2` of the pretrained features against rho (mean ± s.e.)."""
    fig, ax = _new_axes(ax, (4.2, 3.4))
    mean, se = residual_by_rho(ds)
    rho = np.asarray(mean["rho"], dtype=float)
    ax.errorbar(rho, mean, yerr=se, fmt="o-", color="C3", ms=4, capsize=2, label="|P⊥ f_t|²")
    if "error_linear" in ds and "n" in ds.dims:
        # linear transfer's error at the largest n: the irreducible part plus what n leaves
        n_max = float(ds.n.max())
        err, err_se = _instance_mean(ds["error_linear"].sel(n=n_max), ("instance",))
        ax.errorbar(
            np.asarray(err["rho"], dtype=float),
            err,
            yerr=err_se,
            fmt="s--",
            mfc="none",
            color="C0",
            ms=4,
            capsize=2,
            label=f"linear transfer error, n = {n_max:g}",
        )
        ax.legend(fontsize=_TICK_SIZE - 1, frameon=False)
    ax.set_xlabel("ρ (fraction of teacher neurons removed)", fontsize=_LABEL_SIZE)
    ax.set_ylabel("error", fontsize=_LABEL_SIZE)
    ax.set_title("(d) irreducible error of linear transfer", fontsize=_LABEL_SIZE)
    ax.tick_params(labelsize=_TICK_SIZE)
    return fig


def _edges(values, log):
    values = np.asarray(values, dtype=float)
    if values.size == 1:
        return values[0] * np.array([1 / 1.5, 1.5]) if log else values[0] + np.array([-0.5, 0.5])
    x = np.log(values) if log else values
    mid = (x[1:] + x[:-1]) / 2
    edges = np.concatenate([[2 * x[0] - mid[0]], mid, [2 * x[-1] - mid[-1]]])
    return np.exp(edges) if log else edges


def _colour_limit(values):
    """Half-width of the colour range: the most negative T, so that negative transfer shows in
    full colour and the large positive values at small n saturate; the largest |T| when no T is
    negative."""
    finite = values[np.isfinite(values)]
    if not finite.size or not np.any(finite != 0):
        return 1.0
    negative = -finite.min()
    return float(negative if negative > 0 else np.abs(finite).max())


def plot_transfer_sign(ds, *, ax=None) -> Figure:
    """Fig. 4(e): measured transferability over (rho, n) and the predicted boundary.

    Each cell is coloured by :math:`T = E[R_{\\rm scratch} - R_{\\rm linear}]` (red negative,
    blue positive; the symmetric range is set by the most negative T, larger values saturate)
    and marked '+' or '−' where the sign is clear by two standard errors, a small open circle
    where not (white on dark cells). Grey circles: :math:`n^*(\\rho) =
    (A/|P_\\perp f_t|^2)^{1/\\nu}` from the fit of panel (c) and the residuals of panel (d);
    transfer is predicted positive below them. The legend under the panel shows every marker
    with the same glyph as on the cells.
    """
    fig, ax = _new_axes(ax, (4.6, 3.6))
    T = ds["transferability_linear"].transpose("n", "rho")
    se = ds["transferability_linear_stderr"].transpose("n", "rho")
    rho = np.asarray(ds["rho"], dtype=float)
    n = np.asarray(ds["n"], dtype=float)
    values = np.asarray(T, dtype=float)
    vlim = _colour_limit(values)
    mesh = ax.pcolormesh(
        _edges(rho, log=False),
        _edges(n, log=True),
        np.ma.masked_invalid(np.clip(values, -2 * vlim, 2 * vlim)),
        cmap="RdBu",
        norm=TwoSlopeNorm(vcenter=0.0, vmin=-vlim, vmax=vlim),
        rasterized=True,
    )
    for i, n_value in enumerate(n):
        for j, rho_value in enumerate(rho):
            value, error = values[i, j], float(se[i, j])
            if not np.isfinite(value):
                continue
            key = (
                "unclear" if abs(value) <= 2 * error else ("positive" if value > 0 else "negative")
            )
            colour = "white" if abs(value) > 0.6 * vlim else "black"
            ax.plot(rho_value, n_value, ls="none", color=colour, **_CELL_MARKS[key][0])
    fit = scratch_power_law(ds)
    if fit is not None and fit.exponent > 0:
        residual, _ = residual_by_rho(ds)
        boundary = predicted_boundary(fit.amplitude, fit.exponent, np.asarray(residual))
        shown = np.isfinite(boundary)
        ax.plot(
            rho[shown],
            np.asarray(boundary)[shown],
            "o",
            mfc="none",
            mec=_BOUNDARY_COLOUR,
            mew=1.5,
            ms=8,
            label="predicted n*(ρ)",
        )
    # the cell marks, explained on the figure with the glyphs drawn on the cells
    for style, meaning in _CELL_MARKS.values():
        ax.plot([], [], ls="none", color="black", label=meaning, **style)
    ax.legend(fontsize=_TICK_SIZE - 1, loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=4,
              frameon=False, handletextpad=0.2, columnspacing=0.8)  # fmt: skip
    ax.set_yscale("log")
    _sample_axis(ax.yaxis, n)
    n_edges = _edges(n, log=True)
    ax.set_ylim(n_edges[0], n_edges[-1])
    ax.set_xticks(rho)
    ax.set_xlabel("ρ (fraction of teacher neurons removed)", fontsize=_LABEL_SIZE)
    ax.set_ylabel("target samples n", fontsize=_LABEL_SIZE)
    ax.set_title("(e) sign of transferability, linear transfer", fontsize=_LABEL_SIZE)
    ax.tick_params(labelsize=_TICK_SIZE)
    beyond = np.nanmax(np.abs(values)) > vlim * (1 + 1e-9) if np.isfinite(values).any() else False
    colorbar = fig.colorbar(mesh, ax=ax, extend="both" if beyond else "neither")
    colorbar.set_label(
        "T = R_scratch − R_linear" + (" (saturated)" if beyond else ""),
        fontsize=_LABEL_SIZE,
    )
    colorbar.ax.tick_params(labelsize=_TICK_SIZE)
    return fig


def plot_relu_figure(ds, *, rho=None, n=None) -> Figure:
    """The whole of Fig. 4: panels (a)-(e) on one figure.

    Parameters
    ----------
    ds : xarray.Dataset
        A combined sweep over ``rho`` and ``n`` (module docstring).
    rho, n : float, optional
        The cell whose kernels are shown in (a-b); see :func:`plot_kernels`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(14.0, 8.0), layout="constrained")
    axes = fig.subplot_mosaic([["a", "b", "c"], ["d", "e", "e"]])
    plot_kernels(ds, rho=rho, n=n, axes=(axes["a"], axes["b"]))
    plot_scratch_power_law(ds, ax=axes["c"])
    plot_residual(ds, ax=axes["d"])
    plot_transfer_sign(ds, ax=axes["e"])
    attrs = ds.attrs
    scale = ", ".join(f"{key} = {attrs[key]}" for key in ("d", "m", "k") if key in attrs)
    if "instance" in ds.dims:
        scale += f", {ds.sizes['instance']} instances per cell"
    fig.suptitle(f"Two-layer ReLU teacher-student transfer ({scale})", fontsize=_LABEL_SIZE + 1)
    return fig
