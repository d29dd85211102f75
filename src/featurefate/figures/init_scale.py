r"""Beyond the paper: the rank-one theory against simulation as the init scale grows.

The input is an ``init_scale`` sweep (:func:`featurefate.experiments.init_scale.run_cell`: cells
over ``alpha``, ``theta``, ``sigma``; inside each, dims ``init_scale`` and ``instance``). Left:
(a) :math:`s_2/s_1` of the pretrained hidden features against the init scale :math:`\gamma`,
with the small-init prediction :math:`c_L \gamma^{L-1} / |\beta_s|^{(L-1)/L}` and the linear
transfer cutoff ``rcond``; (b) the scratch error (trained from the same init scale) against its
theory, eq. (10). Then one column per (alpha, theta, sigma): the simulated transferability of
linear transfer and of fine-tuning (mean, one standard error) against the rank-one theory
(horizontal lines; fine-tuning both endpoints), with the first init scale at which they are
apart (:func:`featurefate.experiments.init_scale.first_departure`) marked.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from featurefate import schema
from featurefate.experiments.init_scale import ATOL, first_departure
from featurefate.figures.phase import _pi_label
from featurefate.theory.linear import feature_scale, init_feature_edge

_SIZE = 10
_POINT_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")
_SIM = "#08306b"


def points(ds: xr.Dataset) -> list[dict]:
    """The (alpha, theta, sigma) cells of the sweep that hold data, in grid order."""
    axes = [a for a in ("alpha", "theta", "sigma") if a in ds.dims]
    found = []
    for values in itertools.product(*(ds[a].values for a in axes)):
        cell = dict(zip(axes, (float(x) for x in values), strict=True))
        if np.isfinite(ds.error_scratch.sel(cell).values).any():
            found.append(cell)
    return found


def _point_label(ds: xr.Dataset, cell: dict) -> str:
    alpha, theta, sigma = (
        cell[a] if a in cell else float(ds[a]) for a in ("alpha", "theta", "sigma")
    )
    return f"α = {alpha:g}, θ = {_pi_label(theta, 0)}, σ = {sigma:g}"


def _at(ds: xr.Dataset, cell: dict) -> xr.Dataset:
    return ds.sel(cell) if cell else ds


def _scale_axis(ax, ds: xr.Dataset) -> None:
    ax.set_xscale("log")
    scales = ds.init_scale.values
    ax.set_xlim(scales.min() / 2.5, scales.max() * 2.5)
    ax.set_xlabel("init scale γ", fontsize=_SIZE)


def _mean_se(values: xr.DataArray):
    count = values.sizes["instance"]
    return values.mean("instance"), values.std("instance", ddof=1) / np.sqrt(count)


def _ratio_panel(ax, ds: xr.Dataset, cells: list[dict]) -> None:
    ratio = xr.concat([_at(ds, c).feature_ratio for c in cells], dim="cell")
    flat = ratio.stack(all=("cell", "instance")).transpose("init_scale", "all").values
    scales = ds.init_scale.values
    ax.fill_between(
        scales, np.nanmin(flat, axis=1), np.nanmax(flat, axis=1), color=_SIM, alpha=0.2, lw=0
    )
    ax.plot(scales, np.nanmedian(flat, axis=1), "o-", color=_SIM, ms=4)
    depth = int(ds.attrs.get("depth", 2))
    fine = np.geomspace(scales.min(), scales.max(), 200)
    source_norm = _config(ds).get("source_norm", 1.0)
    predicted = init_feature_edge(depth, fine) / feature_scale(depth, source_norm=source_norm)
    ax.plot(fine, predicted, "--", color="black", lw=1.2)
    rcond = ds.attrs.get("rcond")
    handles = [
        Line2D([], [], color=_SIM, marker="o", ms=4, label="simulation: median, range"),
        Line2D([], [], color="black", ls="--", label="small init: c_L γ^(L−1) / |β_s|^((L−1)/L)"),
    ]
    if rcond is not None:
        ax.axhline(float(rcond), color="#b2182b", ls=":", lw=1.4)
        handles.append(
            Line2D(
                [], [], color="#b2182b", ls=":",
                label=f"rcond = {float(rcond):g}: above it linear transfer\n"
                "refits on the residual directions too",
            )
        )  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylim(top=3.0)
    ax.set_ylabel("s2 / s1 of the pretrained features", fontsize=_SIZE)
    ax.set_title("(a) rank one at small init, full rank at large", fontsize=_SIZE)
    ax.legend(handles=handles, fontsize=7, loc="upper left", framealpha=0.9)


def _config(ds: xr.Dataset) -> dict:
    try:
        return json.loads(ds.attrs.get("config", "{}"))
    except (TypeError, ValueError):
        return {}


def _scratch_panel(ax, ds: xr.Dataset, cells: list[dict]) -> None:
    scales = ds.init_scale.values
    for j, cell in enumerate(cells):
        colour = _POINT_COLOURS[j % len(_POINT_COLOURS)]
        d = _at(ds, cell)
        mean, se = _mean_se(d.error_scratch)
        ax.errorbar(scales, mean, yerr=se, fmt="o", ms=4, capsize=2, color=colour)
        ax.axhline(float(d.theory_error_scratch), color=colour, lw=1.2)
    ax.set_yscale("log")
    ax.set_ylabel("scratch error |w − β_t|²", fontsize=_SIZE)
    ax.set_title("(b) scratch training from the same init scale", fontsize=_SIZE)
    handles = [
        Line2D([], [], color=_POINT_COLOURS[j % len(_POINT_COLOURS)], label=_point_label(ds, c))
        for j, c in enumerate(cells)
    ]
    handles += [
        Line2D([], [], ls="", marker="o", color="0.3", label="simulation ± 1 s.e."),
        Line2D([], [], color="0.3", label="theory, eq. (10)"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", framealpha=0.9)


def _transfer_panel(ax, ds, cell, method, label, dep: dict) -> None:
    d = _at(ds, cell)
    scales = ds.init_scale.values
    mean, se = _mean_se(d.error_scratch - d[schema.error_name(method)])
    ax.errorbar(scales, mean, yerr=se, fmt="o", ms=4, capsize=2, color=_SIM, zorder=3)
    handles = [Line2D([], [], ls="", marker="o", color=_SIM, label="simulation ± 1 s.e.")]
    if method == "linear":
        names = [("linear", "-", "rank-one theory, eq. (13)")]
    else:
        names = [
            ("finetune_paper", "--", "theory, paper's endpoint (eq. 16)"),
            ("finetune_exact", "-", "theory, corrected endpoint"),
        ]
    for name, ls, text in names:
        ax.axhline(
            float(d[schema.transferability_name(name, theory=True)]), color="black", ls=ls, lw=1.2
        )
        handles.append(Line2D([], [], color="black", ls=ls, label=text))
    smallest = float(scales.min())
    marks = (
        ("theory", "#b2182b", ":", f"first γ with |T − theory| > 3 s.e. + {ATOL:g}"),
        ("paired", "#7570b3", "-.", f"first γ where T moved from γ = {smallest:g} by > 3 s.e. + {ATOL:g}"),
    )  # fmt: skip
    for key, colour, ls, text in marks:
        first = float(_at(dep[key], cell))
        if np.isfinite(first):
            # the theory mark wide and under the paired one: both stay visible where they meet
            ax.axvline(first, color=colour, ls=ls, lw=3.0 if key == "theory" else 1.4)
            handles.append(Line2D([], [], color=colour, ls=ls, label=f"{text}: {first:g}"))
    ax.axhline(0.0, color="0.6", lw=0.6, zorder=1)  # under the theory lines, which may be ~0
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_ylabel("transferability T", fontsize=_SIZE)
    ax.set_title(label, fontsize=_SIZE)
    # under the panel: the departure lines run through the whole height of the axes
    ax.legend(
        handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.17),
        frameon=False,
    )  # fmt: skip


def plot_init_scale(ds: xr.Dataset) -> Figure:
    """The init-scale experiment in one figure (module docstring)."""
    cells = points(ds)
    columns = 1 + len(cells)
    fig = Figure(figsize=(5.0 * columns, 11.0), layout="constrained")
    axes = fig.subplots(2, columns, squeeze=False)
    _ratio_panel(axes[0, 0], ds, cells)
    _scratch_panel(axes[1, 0], ds, cells)
    # fine-tuning: the departure from the corrected endpoint's theory (the paper's differs by
    # less than the error bars at these alphas)
    first = {
        method: {
            "theory": first_departure(ds, name),
            "paired": first_departure(ds, name, paired=True),
        }
        for method, name in (("linear", "linear"), ("finetune", "finetune_exact"))
    }
    letter = 2
    for j, cell in enumerate(cells):
        for row, (method, text) in enumerate(
            (("linear", "linear transfer"), ("finetune", "fine-tuning"))
        ):
            title = f"({chr(97 + letter)}) {text}, {_point_label(ds, cell)}"
            _transfer_panel(axes[row, j + 1], ds, cell, method, title, first[method])
            letter += 1
    for ax in axes.flat:
        _scale_axis(ax, ds)
    # one y scale per row of transfer panels, so that the points compare
    for row in range(2):
        panels = axes[row, 1:]
        if len(panels):
            low = min(ax.get_ylim()[0] for ax in panels)
            high = max(ax.get_ylim()[1] for ax in panels)
            for ax in panels:
                ax.set_ylim(low, high)
    scales = ds.init_scale.values
    fig.suptitle(
        f"Beyond the paper: init scale from {scales.min():g} (feature learning) to "
        f"{scales.max():g} (lazy); random Gaussian init, L = {ds.attrs.get('depth', '?')}, "
        f"D = {ds.attrs.get('dim', '?')}, {ds.sizes.get('instance', '?')} instances\n"
        "the same instances and init draws at every scale; scratch trained from the same init "
        "scale; theory: the rank-one (γ → 0) forms at the simulated D",
        fontsize=11,
    )
    return fig
