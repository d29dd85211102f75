"""Fig. 5 of the paper: do dataset distances predict transferability? (Section 2.1, Appendix E).

Panels (a)-(d) put the simulated transferability of linear transfer and fine-tuning of every cell
of a discrepancy sweep against the KL divergence, the W1 distance and the Dudley metric in both
conventions between the source and target joints, coloured by alpha where the grid varies it
(by theta otherwise); each title gives Spearman's rho with its bootstrap interval. Panel (e)
gives the rank correlations at each fixed alpha (or, for one alpha, every distance's), where
the paper's claim "no negative correlation" is tested. Panel (f) is Theorem 2.2 in numbers:
targets :math:`\\beta_t = -k\\beta_s` in the source's feature span move arbitrarily far in KL
and W2, while the Dudley metric (both conventions, bounded) approaches 2; linear transfer stays
positive.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MultipleLocator

from featurefate import schema
from featurefate.experiments.discrepancy import correlations, grid_name
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
    "sample_dudley_subspace": "Dudley, ‖h‖∞ + Lip(h) ≤ 1 (paper's), samples projected",
    "sample_dudley_max_subspace": "Dudley, |h| ≤ 1 and Lip(h) ≤ 1, samples projected",
    "sample_dudley": "Dudley, ‖h‖∞ + Lip(h) ≤ 1, samples in D + 1 dims",
    "sample_dudley_max": "Dudley, |h| ≤ 1 and Lip(h) ≤ 1, samples in D + 1 dims",
    "sample_kl": "Gaussian-fit KL between samples (nats)",
}
_SHORT = {
    "theory_kl": "KL",
    "theory_w2": "W₂",
    "sample_w1": "W₁ (D + 1 dims)",
    "sample_w1_subspace": "W₁",
    "sample_dudley_subspace": "Dudley (paper's, ‖h‖∞ + Lip ≤ 1)",
    "sample_dudley_max_subspace": "Dudley (|h| ≤ 1, Lip ≤ 1)",
    "sample_dudley": "Dudley (paper's, D + 1 dims)",
    "sample_dudley_max": "Dudley (max, D + 1 dims)",
}
_DISTANCE_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:olive")


def _cells(ds, name):
    da = ds[name]
    if "instance" in da.dims:
        da = da.mean("instance")
    return da


def _varies(ds, axis):
    return axis in ds.dims and ds.sizes[axis] > 1


def _interval_text(corr, distance, transfer):
    cell = corr.sel(distance=distance, transferability=transfer)
    rho = float(cell.spearman)
    if not np.isfinite(rho):
        return "ρ undefined (T constant)"
    low, high = float(cell.spearman_low), float(cell.spearman_high)
    return f"ρ = {rho:+.2f} [{low:+.2f}, {high:+.2f}]"


def _scatter_panel(ax, ds, distance, methods, colour_by, cmap, norm, corr, tag):
    notes = []
    for method, _label in methods:
        name = schema.transferability_name(method)
        se_name = schema.stderr_name(name)
        stderr = ds[se_name] if se_name in ds else xr.zeros_like(ds[name])
        arrays = xr.broadcast(_cells(ds, distance), ds[name], stderr, ds[colour_by])
        x, y, err, colour = (
            np.asarray(a.transpose(*arrays[0].dims), dtype=np.float64).ravel() for a in arrays
        )
        ax.errorbar(x, y, yerr=err, fmt="none", ecolor="0.7", elinewidth=0.6, zorder=1)
        ax.scatter(
            x, y, c=colour, cmap=cmap, norm=norm, s=22, edgecolors="0.2", linewidths=0.4,
            marker=_MARKERS["linear" if method == "linear" else "finetune"], zorder=2,
        )  # fmt: skip
        short = "linear" if method == "linear" else "fine-tuning"
        notes.append(f"{short}: {_interval_text(corr, distance, name)}")
    ax.axhline(0.0, color="black", linewidth=0.8, zorder=0)
    ax.set_title(
        f"({tag}) T against {_SHORT.get(distance, distance)}\n" + "; ".join(notes),
        fontsize=_NOTE_SIZE,
    )
    ax.set_xlabel(_X_LABELS.get(distance, distance), fontsize=_LABEL_SIZE - 1)
    ax.set_ylabel("transferability T = R_scratch − R_transfer", fontsize=_LABEL_SIZE - 1)
    ax.tick_params(labelsize=_TICK_SIZE)


def _per_alpha_panel(ax, ds, panel_distances, methods, seed):
    """Spearman's rho with its bootstrap interval at each alpha (or per distance for one alpha)."""
    names = [schema.transferability_name(m) for m, _ in methods]
    styles = {names[0]: ("-", "o", None), names[1]: ("--", "^", "white")}
    if _varies(ds, "alpha"):
        corr = correlations(
            ds, distances=panel_distances, transferabilities=names, by="alpha", seed=seed
        )
        alpha = np.asarray(corr["alpha"], dtype=float)
        step = 0.012 * (alpha.max() - alpha.min())
        for i, distance in enumerate(panel_distances):
            for j, name in enumerate(names):
                cell = corr.sel(distance=distance, transferability=name)
                rho = cell.spearman.values
                err = np.abs(np.stack([rho - cell.spearman_low.values,
                                       cell.spearman_high.values - rho]))  # fmt: skip
                line, marker, face = styles[name]
                colour = _DISTANCE_COLOURS[i % len(_DISTANCE_COLOURS)]
                ax.errorbar(
                    alpha + (2 * i + j - len(panel_distances)) * step, rho,
                    yerr=np.nan_to_num(err), color=colour, linestyle=line, marker=marker,
                    markersize=4, markerfacecolor=face or colour, linewidth=1.0, capsize=1.5,
                )  # fmt: skip
        ax.set_xlabel("α = n / D (target samples per dimension)", fontsize=_LABEL_SIZE - 1)
        ax.set_title(
            "(e) rank correlation with T at each fixed α (95% bootstrap intervals)",
            fontsize=_NOTE_SIZE,
        )
    else:
        corr = correlations(ds, distances=panel_distances, transferabilities=names, seed=seed)
        y = np.arange(len(panel_distances))
        for j, name in enumerate(names):
            cell = corr.sel(transferability=name)
            rho = cell.spearman.values
            err = np.abs(np.stack([rho - cell.spearman_low.values,
                                   cell.spearman_high.values - rho]))  # fmt: skip
            line, marker, face = styles[name]
            ax.errorbar(
                rho, y + (0.15 if j else -0.15), xerr=np.nan_to_num(err), fmt=marker,
                color="0.2", markerfacecolor=face or "0.2", capsize=2,
            )  # fmt: skip
        ax.set_yticks(y, [_SHORT.get(d, d) for d in panel_distances], fontsize=_NOTE_SIZE)
        ax.set_xlabel("Spearman ρ with T over the grid", fontsize=_LABEL_SIZE - 1)
        ax.set_title("(e) rank correlation with T (95% bootstrap intervals)", fontsize=_NOTE_SIZE)
        ax.set_xlim(-1.05, 1.05)
        ax.axvspan(-1.05, 0.0, color="tab:red", alpha=0.06, zorder=0)
        ax.axvline(0.0, color="black", linewidth=0.8)
        handles = [
            *_method_handles(methods, linestyles=("", "")),
            matplotlib.patches.Patch(color="tab:red", alpha=0.15, label="ρ < 0: claim fails"),
        ]
        ax.legend(handles=handles, fontsize=_NOTE_SIZE - 1, loc="upper center",
                  bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)  # fmt: skip
        ax.tick_params(labelsize=_TICK_SIZE)
        return
    ax.set_ylim(-1.08, 1.08)
    ax.axhspan(-1.08, 0.0, color="tab:red", alpha=0.06, zorder=0)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_ylabel("Spearman ρ(distance, T)", fontsize=_LABEL_SIZE - 1)
    ax.tick_params(labelsize=_TICK_SIZE)
    handles = [
        Line2D([], [], color=_DISTANCE_COLOURS[i % len(_DISTANCE_COLOURS)], label=_SHORT.get(d, d))
        for i, d in enumerate(panel_distances)
    ] + [
        *_method_handles(methods, linestyles=("-", "--")),
        matplotlib.patches.Patch(color="tab:red", alpha=0.15, label="ρ < 0: the claim fails"),
    ]
    ax.legend(handles=handles, fontsize=_NOTE_SIZE - 1, loc="upper center",
              bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)  # fmt: skip


def _method_handles(methods, *, linestyles):
    """Legend handles of the two transfer methods: filled circles, then open triangles."""
    return [
        Line2D([], [], marker="o", linestyle=linestyles[0], color="0.2", label=methods[0][1]),
        Line2D(
            [],
            [],
            marker="^",
            linestyle=linestyles[1],
            color="0.2",
            markerfacecolor="white",
            label=methods[1][1],
        ),
    ]


def _family_values(ds, name, sigma):
    da = ds[name].sel(sigma=sigma)
    other = [d for d in da.dims if d != "k"]
    return np.asarray(da.mean(other, skipna=True), dtype=float) if other else da.values


def _family_panel(ax, ds, variant, k):
    sigma = float(np.min(ds["sigma"]))
    alphas = np.asarray(ds["alpha"], dtype=float).ravel()
    alpha = float(alphas[np.argmin(np.abs(alphas - 0.5))])
    dim = ds.attrs.get("dim")
    source_norm = float(ds.attrs.get("source_norm", 1.0))
    family = theorem22_family(
        k, alpha, sigma, source_norm=source_norm, variant=variant,
        dim=None if dim is None else int(dim),
    )  # fmt: skip
    ax.plot(k, family.kl, color="tab:red")
    ax.plot(k, family.w2, color="tab:purple")
    ax.plot(k, family.dudley_upper, color="tab:green", linestyle=":", linewidth=1.0)
    ax.axhline(2.0, color="0.4", linestyle="-.", linewidth=0.8)
    handles = [
        Line2D([], [], color="tab:red", label="KL (closed form)"),
        Line2D([], [], color="tab:purple", label="W₂ (closed form) ≥ W₁"),
    ]
    if "family_dudley" in ds:
        fk = np.asarray(ds["k"], dtype=float)
        for norm, colour, label in (
            ("sum", "tab:green", "Dudley, paper's (‖h‖∞ + Lip ≤ 1)"),
            ("max", "tab:olive", "Dudley, |h| ≤ 1 and Lip ≤ 1"),
        ):
            mean = _family_values(ds, schema.family_dudley_name(norm), sigma)
            se = _family_values(ds, schema.family_dudley_name(norm, "stderr"), sigma)
            ax.errorbar(fk, mean, yerr=se, color=colour, marker="s", markersize=3.5, capsize=2)
            floor = float(_family_values(ds, schema.family_dudley_name(norm, "floor"), sigma))
            ax.axhline(floor, color=colour, linestyle=(0, (1, 3)), linewidth=1.0)
            handles.append(Line2D([], [], color=colour, marker="s", label=label + ", samples"))
        handles.append(
            Line2D([], [], color="0.3", linestyle=(0, (1, 3)), label="same-law plug-in floor")
        )
    handles += [
        Line2D(
            [], [], color="tab:green", linestyle=":", label="bound 2W₂/(2 + W₂), paper's Dudley"
        ),
        Line2D([], [], color="0.4", linestyle="-.", label="sup of both Dudley metrics = 2"),
    ]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("k, target β_t = −k β_s (in the source feature span)", fontsize=_LABEL_SIZE - 1)
    ax.set_ylabel("distance between the joints", fontsize=_LABEL_SIZE - 1)
    ax.tick_params(labelsize=_TICK_SIZE)

    right = ax.twinx()
    right.plot(k, family.transferability_linear, color="tab:blue", linewidth=2.0)
    right.plot(k, family.transferability_finetune, color="tab:orange", linestyle="--")
    right.axhline(0.0, color="black", linewidth=0.8)
    right.set_yscale("symlog", linthresh=1.0)
    right.set_ylabel("transferability T (theory)", fontsize=_LABEL_SIZE - 1)
    right.tick_params(labelsize=_TICK_SIZE)
    handles += [
        Line2D([], [], color="tab:blue", linewidth=2.0, label="T linear transfer (> 0, right)"),
        Line2D([], [], color="tab:orange", linestyle="--", label="T fine-tuning (right)"),
    ]
    ax.legend(handles=handles, fontsize=_NOTE_SIZE - 1, loc="upper center",
              bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)  # fmt: skip
    ax.set_title(
        f"(f) Theorem 2.2: σ = {sigma:g}, α = {alpha:g}" + (f", D = {dim}" if dim else "")
        + "\nKL, W₂ unbounded; Dudley bounded by 2 (samples on (β̂_s·x, y))",
        fontsize=_NOTE_SIZE,
    )  # fmt: skip
    return right


def plot_fig5(
    ds,
    *,
    w1="sample_w1_subspace",
    finetune_variant="exact",
    family_k=None,
    seed=0,
) -> Figure:
    """Transferability against KL, W1 and the Dudley metric, per-alpha correlations, Theorem 2.2.

    Parameters
    ----------
    ds : xarray.Dataset
        Cells of :func:`featurefate.experiments.discrepancy.run_cell` combined along their cell
        axes (dims ``alpha``, ``theta``, ``target_norm``, ``sigma``, ``instance``).
    w1 : str, default "sample_w1_subspace"
        The W1 variable of panel (b): ``"sample_w1_subspace"`` (projected on the coordinates
        where the joints differ: little small-sample bias) or ``"sample_w1"`` (raw points in
        D + 1 dimensions, as a user with data would compute it). The Dudley panels use the
        projected samples (in D + 1 dimensions the plug-in saturates).
    finetune_variant : {"paper", "exact"}, default "exact"
        Which fine-tuning endpoint to show; named in the legend.
    family_k : array-like, optional
        Values of k for the closed forms of panel (f); default 60 points from 0.5 to 100.
        Panel (f) takes D and the source norm from ``ds.attrs``, the smallest sigma and the
        alpha nearest 0.5 of the sweep, and the Dudley estimates from the store.
    seed : int, default 0
        Seed of the bootstrap intervals.

    Returns
    -------
    matplotlib.figure.Figure
        Six panels and a colour bar (alpha where it varies, else theta); built without pyplot.
    """
    if finetune_variant not in _VARIANT_NAMES:
        raise ValueError(
            f"finetune_variant must be one of 'paper', 'exact'; got {finetune_variant!r}"
        )
    if w1 not in ds:
        raise ValueError(f"w1 must name a variable of ds; got {w1!r}")
    k = np.geomspace(0.5, 100.0, 60) if family_k is None else np.asarray(family_k, dtype=float)
    methods = [
        ("linear", "linear transfer"),
        (f"finetune_{finetune_variant}", f"fine-tuning ({_VARIANT_NAMES[finetune_variant]})"),
    ]
    dudleys = [d for d in ("sample_dudley_subspace", "sample_dudley_max_subspace") if d in ds]
    panel_distances = ["theory_kl", w1, *dudleys]
    corr = correlations(
        ds,
        distances=panel_distances,
        transferabilities=[schema.transferability_name(m) for m, _ in methods],
        seed=seed,
    )
    by_alpha = _varies(ds, "alpha")
    colour_by = "alpha" if by_alpha else "theta"
    values = np.asarray(ds[colour_by], dtype=float)
    cmap = matplotlib.colormaps["plasma" if by_alpha else "viridis"]
    norm = Normalize(
        vmin=float(values.min()), vmax=max(float(values.max()), float(values.min()) + 1e-9)
    )

    fig = Figure(figsize=(16.5, 10.5), layout="constrained")
    axes = fig.subplots(2, 3)
    scatter_axes = [axes[0, 0], axes[0, 1], axes[0, 2], axes[1, 0]]
    for ax, distance, tag in zip(scatter_axes, panel_distances, "abcd", strict=False):
        _scatter_panel(ax, ds, distance, methods, colour_by, cmap, norm, corr, tag)
    axes[0, 0].set_xscale("symlog", linthresh=1.0)
    axes[0, 0].set_xlim(left=0.0)
    for ax in scatter_axes[len(panel_distances) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], marker=_MARKERS["linear"], linestyle="", color="0.4", label=methods[0][1]),
        Line2D([], [], marker=_MARKERS["finetune"], linestyle="", color="0.4", label=methods[1][1]),
    ]
    axes[1, 0].legend(handles=handles, fontsize=_NOTE_SIZE - 1, loc="upper center",
                      bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False,
                      title="markers (colour: " + colour_by + ")", title_fontsize=_NOTE_SIZE - 1)  # fmt: skip
    colorbar = fig.colorbar(
        matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes[0]), pad=0.01
    )
    if by_alpha:
        colorbar.set_label("α = n / D of the target task", fontsize=_LABEL_SIZE)
    else:
        colorbar.set_label("θ (angle between source and target)", fontsize=_LABEL_SIZE)
        colorbar.ax.yaxis.set_major_locator(MultipleLocator(np.pi / 4))
        colorbar.ax.yaxis.set_major_formatter(FuncFormatter(_pi_label))
    colorbar.ax.tick_params(labelsize=_TICK_SIZE)
    _per_alpha_panel(axes[1, 1], ds, panel_distances, methods, seed)
    _family_panel(axes[1, 2], ds, finetune_variant, k)

    attrs = ds.attrs
    parts = [grid_name(ds)]
    if "dim" in attrs:
        parts.append(f"D = {attrs['dim']}")
    alpha = np.asarray(ds["alpha"], dtype=float).ravel()
    parts.append(
        f"α ∈ [{alpha.min():g}, {alpha.max():g}] ({alpha.size} values)"
        if alpha.size > 1
        else f"α = {alpha[0]:g}"
    )
    sigma = np.asarray(ds["sigma"], dtype=float).ravel()
    parts.append("σ = " + ", ".join(f"{s:g}" for s in sigma))
    if "instance" in ds.dims:
        parts.append(f"{ds.sizes['instance']} instances per cell")
    if "n_samples" in attrs:
        parts.append(f"{attrs['n_samples']} samples per distribution")
    fig.suptitle(
        f"Dataset distances against transferability (Fig. 5), {parts[0]}: " + ", ".join(parts[1:])
        + "\nT simulated from exact gradient-flow endpoints (bars: 1 s.e.); the paper claims no "
        "distance is negatively correlated with T",
        fontsize=_LABEL_SIZE,
    )  # fmt: skip
    return fig
