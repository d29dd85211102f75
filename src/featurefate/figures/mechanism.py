r"""Theorem 3.4 along the pretraining path: the hidden features of a random init become rank one.

The input is a ``mechanism`` sweep (:func:`featurefate.experiments.mechanism.run_cell`; dims
``depth``, ``instance``, ``checkpoint``, ``rank``). Every curve is one network, drawn against
the gradient-flow time it reached (log scale; the init, at time 0, is left off the axis and
marked by its predicted scale instead). A curve ends where its network converged.

- one panel per depth: the top singular values of the hidden features, with the prediction
  :math:`s_1 \to |\beta_s|^{(L-1)/L}` and the init's scale :math:`c_L \gamma^{L-1}`
  (:func:`featurefate.theory.linear.init_feature_edge`);
- the alignment of the top feature direction with :math:`\beta_s` and of adjacent layers
  (:func:`featurefate.experiments.mechanism.layer_alignment`);
- the population loss :math:`|w - \beta_s|^2`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

_SIZE = 10
_RANK_COLOURS = ("#08306b", "#d95f02", "#1b9e77", "#7570b3", "#e7298a")
_DEPTH_COLOURS = ("#2166ac", "#b2182b", "#4d9221", "#762a83")


def _depths(ds: xr.Dataset) -> list[int]:
    return [int(d) for d in np.atleast_1d(ds.depth.values)]


def _at_depth(ds: xr.Dataset, depth: int) -> xr.Dataset:
    return ds.sel(depth=depth) if "depth" in ds.dims else ds


def _paths(ax, time: xr.DataArray, value: xr.DataArray, colour, *, ls="-", lw=0.9):
    """One line per instance against the time it reached; the init (time 0) left out."""
    for i in range(time.sizes["instance"]):
        t = time.isel(instance=i).values
        y = value.isel(instance=i).values
        keep = (t > 0) & np.isfinite(y)
        if keep.any():
            ax.plot(t[keep], y[keep], ls, color=colour, lw=lw, alpha=0.75)
            ax.plot(t[keep][-1], y[keep][-1], "o", color=colour, ms=2.5)


def _time_axis(ax, ds: xr.Dataset) -> None:
    """Log time over the times the networks reached (nothing moves after the last of them)."""
    ax.set_xscale("log")
    reached = ds.time.values[np.isfinite(ds.time.values) & (ds.time.values > 0)]
    if reached.size:
        ax.set_xlim(float(reached.min()) / 2, float(reached.max()) * 3)
    ax.set_xlabel("gradient-flow time t", fontsize=_SIZE)


def _features_name(depth: int) -> str:
    return "W_1" if depth == 2 else ("W_2 W_1" if depth == 3 else f"W_{depth - 1}···W_1")


def _line_label(ax, y: float, text: str) -> None:
    """Write ``text`` just above a horizontal line at height ``y``, right of the axes' middle.

    There the paths leave room: depth 2 has converged before it, deeper networks are still on
    their plateau (and they start right of it).
    """
    ax.annotate(
        text,
        (0.6, y),
        xycoords=("axes fraction", "data"),
        xytext=(0, 3),
        textcoords="offset points",
        fontsize=8,
        color="0.2",
        ha="center",
    )


def _singular_value_panel(ax, d: xr.Dataset, depth: int, label: str) -> None:
    sv = d.singular_values
    # the smallest first: s2 is drawn over s3, which it nearly equals
    for k, rank in reversed(list(enumerate(sv["rank"].values))):
        _paths(ax, d.time, sv.sel(rank=rank), _RANK_COLOURS[k % len(_RANK_COLOURS)])
    predicted = float(d.theory_feature_scale)
    edge = float(d.theory_init_edge)
    ax.axhline(predicted, color="black", ls="--", lw=1.2)
    ax.axhline(edge, color="0.4", ls=":", lw=1.4)
    ax.set_yscale("log")
    _line_label(ax, predicted, f"|β_s|^((L−1)/L) = {predicted:.3g}")
    _line_label(ax, edge, f"c_L γ^(L−1) = {edge:.2g}")
    ax.set_ylabel("singular values of the hidden features", fontsize=_SIZE)
    ax.set_title(f"({label}) depth L = {depth}: features {_features_name(depth)}", fontsize=_SIZE)


def _singular_value_legend(fig, ranks) -> None:
    handles = [
        Line2D([], [], color=_RANK_COLOURS[k % len(_RANK_COLOURS)], label=f"s{rank}")
        for k, rank in enumerate(ranks)
    ]
    handles += [
        Line2D([], [], color="black", ls="--", label="Theorem 3.4: s1 → |β_s|^((L−1)/L)"),
        Line2D(
            [], [], color="0.4", ls=":",
            label="init scale: largest singular value at t = 0 (D → ∞), c_L γ^(L−1)",
        ),
        Line2D([], [], ls="", marker="o", color="0.3", ms=3, label="network converged"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8)


def _alignment_panel(ax, ds: xr.Dataset, label: str) -> None:
    handles = []
    for j, depth in enumerate(_depths(ds)):
        d = _at_depth(ds, depth)
        colour = _DEPTH_COLOURS[j % len(_DEPTH_COLOURS)]
        _paths(ax, d.time, d.feature_alignment, colour)
        _paths(ax, d.time, d.layer_alignment, colour, ls="--", lw=0.8)
        handles.append(Line2D([], [], color=colour, label=f"L = {depth}"))
    dim = ds.attrs.get("dim")
    if dim:
        chance = np.sqrt(2.0 / (np.pi * float(dim)))
        ax.axhline(chance, color="0.4", ls=":", lw=1.2)
        handles.append(
            Line2D(
                [], [], color="0.4", ls=":", label=f"random directions: √(2/(πD)) = {chance:.2f}"
            )
        )
    handles += [
        Line2D([], [], color="0.3", label="top feature direction · β_s/|β_s|"),
        Line2D([], [], color="0.3", ls="--", label="adjacent layers (worst pair)"),
    ]
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("alignment", fontsize=_SIZE)
    ax.set_title(f"({label}) the features turn to β_s, the layers align", fontsize=_SIZE)
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)


def _loss_panel(ax, ds: xr.Dataset, label: str) -> None:
    handles = []
    for j, depth in enumerate(_depths(ds)):
        d = _at_depth(ds, depth)
        colour = _DEPTH_COLOURS[j % len(_DEPTH_COLOURS)]
        _paths(ax, d.time, d.loss.where(d.loss > 0), colour)
        handles.append(Line2D([], [], color=colour, label=f"L = {depth}"))
    ax.set_yscale("log")
    ax.set_ylabel("population loss |w − β_s|²", fontsize=_SIZE)
    ax.set_title(f"({label}) loss: a plateau at the saddle, then the escape", fontsize=_SIZE)
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)


def plot_mechanism(ds: xr.Dataset) -> Figure:
    """Theorem 3.4 from the authors' random init: singular values, alignments and loss over time.

    One singular-value panel per depth (shared axes), then the alignments and the loss of every
    depth; see the module docstring.
    """
    depths = _depths(ds)
    columns = max(len(depths), 2)
    fig = Figure(figsize=(5.6 * columns, 8.6), layout="constrained")
    grid = fig.add_gridspec(2, columns)
    top = []
    for j, depth in enumerate(depths):
        ax = fig.add_subplot(grid[0, j], sharey=top[0] if top else None)
        _singular_value_panel(ax, _at_depth(ds, depth), depth, chr(97 + j))
        _time_axis(ax, ds)
        top.append(ax)
    n = len(depths)
    ax = fig.add_subplot(grid[1, 0])
    _alignment_panel(ax, ds, chr(97 + n))
    _time_axis(ax, ds)
    ax = fig.add_subplot(grid[1, 1])
    _loss_panel(ax, ds, chr(98 + n))
    _time_axis(ax, ds)
    _singular_value_legend(fig, ds["rank"].values)
    sv = ds.singular_values
    low, high = float(sv.where(sv > 0).min()), float(sv.max())
    top[0].set_ylim(low / 5, high * 5)
    init_scale = ds.attrs.get("init_scale")
    scale = "?" if init_scale is None else f"{float(init_scale):g}"
    authors = " (the authors' init)" if init_scale is not None and float(init_scale) == 1e-5 else ""
    fig.suptitle(
        f"Theorem 3.4: random Gaussian init, scale {scale}{authors}, "
        f"D = {ds.attrs.get('dim', '?')}\npopulation pretraining of {ds.sizes['instance']} "
        "networks per depth, one line per network",
        fontsize=11,
    )
    return fig
