"""Fig. 5 of the paper: dataset distances do not predict transferability (Section 2.1).

Panels (a) and (b) put the simulated transferability of linear transfer and fine-tuning of every
cell of a discrepancy sweep against the KL divergence and the sample W1 distance between the
source and target joints, each annotated with its Pearson and Spearman coefficients across the
grid. Panel (c) is Theorem 2.2 in numbers: targets :math:`\\beta_t = -k\\beta_s` in the source's
feature span move arbitrarily far in KL and W2 while linear transfer stays positive.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MultipleLocator

from featurefate.experiments.discrepancy import correlations
from featurefate.figures.phase import _pi_label
from featurefate.theory.discrepancy import theorem22_family

_LABEL_SIZE = 11
_TICK_SIZE = 10
_NOTE_SIZE = 9
_MARKERS = {"linear": "o", "finetune": "^"}
_VARIANT_NAMES = {"paper": "paper's endpoint", "exact": "corrected endpoint"}
_X_LABELS = {
    "theory_kl": "KL(p_s ‖ p_t) (closed form, nats)",
    "theory_w2": "W₂(p_s, p_t) (closed form)",
    "sample_w1": "W₁ between samples of p_s and p_t (D + 1 dims)",
    "sample_w1_subspace": "W₁ between samples, projected on span(β_s, β_t) × y",
    "sample_dudley_subspace": "Dudley metric between samples, projected",
    "sample_kl": "Gaussian-fit KL between samples (nats)",
}


def _cells(ds, name):
    da = ds[name]
    if "instance" in da.dims:
        da = da.mean("instance")
    return da


def _scatter_panel(ax, ds, distance, methods, cmap, norm, corr):
    lines = []
    for method, label in methods:
        name = f"transferability_{method}"
        stderr = ds[f"{name}_stderr"] if f"{name}_stderr" in ds else xr.zeros_like(ds[name])
        arrays = xr.broadcast(_cells(ds, distance), ds[name], stderr, ds["theta"])
        x, y, err, theta = (
            np.asarray(a.transpose(*arrays[0].dims), dtype=np.float64).ravel() for a in arrays
        )
        ax.errorbar(x, y, yerr=err, fmt="none", ecolor="0.65", elinewidth=0.7, zorder=1)
        ax.scatter(
            x, y, c=theta, cmap=cmap, norm=norm, s=26, edgecolors="0.2", linewidths=0.4,
            marker=_MARKERS["linear" if method == "linear" else "finetune"], zorder=2,
        )  # fmt: skip
        r = float(corr.pearson.sel(distance=distance, transferability=name))
        rho = float(corr.spearman.sel(distance=distance, transferability=name))
        lines.append(f"{label}: r = {r:+.2f}, ρ = {rho:+.2f}")
    ax.axhline(0.0, color="black", linewidth=0.8, zorder=0)
    ax.text(
        0.02, 0.02, "\n".join(lines), transform=ax.transAxes, fontsize=_NOTE_SIZE, va="bottom",
        ha="left", bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"},
    )  # fmt: skip
    ax.set_xlabel(_X_LABELS.get(distance, distance), fontsize=_LABEL_SIZE)
    ax.set_ylabel("transferability T = R_scratch − R_transfer", fontsize=_LABEL_SIZE)
    ax.tick_params(labelsize=_TICK_SIZE)


def _family_panel(ax, ds, variant, k):
    sigma = float(np.min(ds["sigma"]))
    alpha = float(ds.attrs.get("alpha", 0.5))
    dim = ds.attrs.get("dim")
    source_norm = float(ds.attrs.get("source_norm", 1.0))
    family = theorem22_family(
        k,
        alpha,
        sigma,
        source_norm=source_norm,
        variant=variant,
        dim=None if dim is None else int(dim),
    )
    ax.plot(k, family.kl, color="tab:red", label="KL(p_s ‖ p_t)")
    ax.plot(k, family.w2, color="tab:purple", label="W₂(p_s, p_t) ≥ W₁ ≥ Dudley")
    ax.axhline(2.0, color="tab:purple", linestyle=":", linewidth=1.0)
    ax.text(k[0], 2.0, " Dudley ≤ 2", color="tab:purple", fontsize=_NOTE_SIZE, va="bottom")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("k, target β_t = −k β_s (in the source feature span)", fontsize=_LABEL_SIZE)
    ax.set_ylabel("distance between the joints", fontsize=_LABEL_SIZE)
    ax.tick_params(labelsize=_TICK_SIZE)

    right = ax.twinx()
    right.plot(k, family.transferability_linear, color="tab:blue", linewidth=2.0)
    right.plot(k, family.transferability_finetune, color="tab:orange", linestyle="--")
    right.axhline(0.0, color="black", linewidth=0.8)
    right.set_yscale("symlog", linthresh=1.0)
    right.set_ylabel("transferability T (theory)", fontsize=_LABEL_SIZE)
    right.tick_params(labelsize=_TICK_SIZE)
    handles = [
        Line2D([], [], color="tab:red", label="KL"),
        Line2D([], [], color="tab:purple", label="W₂"),
        Line2D([], [], color="tab:blue", linewidth=2.0, label="T linear transfer (> 0)"),
        Line2D([], [], color="tab:orange", linestyle="--", label="T fine-tuning"),
    ]
    ax.legend(handles=handles, fontsize=_NOTE_SIZE, loc="upper left", framealpha=0.85)
    ax.set_title(
        f"(c) Theorem 2.2: σ = {sigma:g}, α = {alpha:g}" + (f", D = {dim}" if dim else ""),
        fontsize=_LABEL_SIZE,
    )
    return right


def plot_fig5(
    ds,
    *,
    w1="sample_w1",
    finetune_variant="exact",
    family_k=None,
) -> Figure:
    """Transferability against KL and against W1 over a sweep, and the Theorem 2.2 family.

    Parameters
    ----------
    ds : xarray.Dataset
        Cells of :func:`featurefate.experiments.discrepancy.run_cell` combined along their cell
        axes (dims ``theta``, ``target_norm``, ``sigma``, ``instance``).
    w1 : str, default "sample_w1"
        The W1 variable of panel (b): ``"sample_w1"`` (raw points in D + 1 dimensions, as a
        user with data would compute it) or ``"sample_w1_subspace"`` (projected on the
        coordinates where the joints differ: far less small-sample bias).
    finetune_variant : {"paper", "exact"}, default "exact"
        Which fine-tuning endpoint to show; named in the legend.
    family_k : array-like, optional
        Values of k for panel (c); default 60 points from 0.5 to 100. Panel (c) takes alpha,
        D and the source norm from ``ds.attrs`` and the smallest sigma of the sweep.

    Returns
    -------
    matplotlib.figure.Figure
        Three panels and a colour bar for theta; built without pyplot.
    """
    if finetune_variant not in _VARIANT_NAMES:
        raise ValueError(
            f"finetune_variant must be one of 'paper', 'exact'; got {finetune_variant!r}"
        )
    if w1 not in ds:
        raise ValueError(f"w1 must name a variable of ds; got {w1!r}")
    k = np.geomspace(0.5, 100.0, 60) if family_k is None else np.asarray(family_k, dtype=float)
    corr = correlations(ds)
    methods = [
        ("linear", "linear transfer"),
        (f"finetune_{finetune_variant}", f"fine-tuning ({_VARIANT_NAMES[finetune_variant]})"),
    ]
    theta = np.asarray(ds["theta"], dtype=float)
    cmap = matplotlib.colormaps["viridis"]
    norm = Normalize(
        vmin=float(theta.min()), vmax=max(float(theta.max()), float(theta.min()) + 1e-9)
    )

    fig = Figure(figsize=(15.5, 4.6), layout="constrained")
    ax_kl, ax_w1, ax_family = fig.subplots(1, 3)
    _scatter_panel(ax_kl, ds, "theory_kl", methods, cmap, norm, corr)
    ax_kl.set_xscale("symlog", linthresh=1.0)
    ax_kl.set_xlim(left=0.0)
    ax_kl.set_title("(a) transferability against KL", fontsize=_LABEL_SIZE)
    _scatter_panel(ax_w1, ds, w1, methods, cmap, norm, corr)
    ax_w1.set_title("(b) transferability against W₁ (samples)", fontsize=_LABEL_SIZE)
    handles = [
        Line2D([], [], marker=_MARKERS["linear"], linestyle="", color="0.4", label=methods[0][1]),
        Line2D([], [], marker=_MARKERS["finetune"], linestyle="", color="0.4", label=methods[1][1]),
    ]
    ax_kl.legend(handles=handles, fontsize=_NOTE_SIZE, loc="upper right", framealpha=0.85)
    colorbar = fig.colorbar(
        matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=[ax_kl, ax_w1], pad=0.01
    )
    colorbar.set_label("θ (angle between source and target)", fontsize=_LABEL_SIZE)
    colorbar.ax.yaxis.set_major_locator(MultipleLocator(np.pi / 4))
    colorbar.ax.yaxis.set_major_formatter(FuncFormatter(_pi_label))
    colorbar.ax.tick_params(labelsize=_TICK_SIZE)
    _family_panel(ax_family, ds, finetune_variant, k)

    attrs = ds.attrs
    parts = [f"D = {attrs['dim']}"] if "dim" in attrs else []
    if "alpha" in attrs:
        parts.append(f"α = {attrs['alpha']:g}" + (f" (n = {attrs['n']})" if "n" in attrs else ""))
    if "instance" in ds.dims:
        parts.append(f"{ds.sizes['instance']} instances per cell")
    if "n_samples" in attrs:
        parts.append(f"{attrs['n_samples']} samples per distribution")
    parts.append("simulated from exact gradient-flow endpoints")
    fig.suptitle(
        "Dataset distances against transferability (Fig. 5): " + ", ".join(parts),
        fontsize=_LABEL_SIZE,
    )
    return fig
