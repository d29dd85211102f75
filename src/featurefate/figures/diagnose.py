"""The own-data diagnosis (docs/diagnose.md): both learning curves, their fits and the crossover."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

SCRATCH_COLOR, LINEAR_COLOR, T_COLOR = "#d62728", "#1f77b4", "#2ca02c"


def plot_diagnosis(curves, *, title=None) -> Figure:
    """Two panels from :attr:`featurefate.diagnosis.Diagnosis.curves`.

    Left: measured held-out errors of scratch training and linear transfer (mean and standard
    deviation over splits) with the fitted curve forms, extrapolated to the user's n and beyond.
    Right: the predicted transferability :math:`T(m) = E_{\\rm sc}(m) - E_{\\rm lt}(m)` (eq. 7) with
    its bootstrap band; the user's n and the crossover are marked on both.
    """
    n_user = curves.attrs["n_samples"]
    crossover = curves.attrs["crossover_n"]
    grid = curves["n_curve"].values
    sizes = curves["n"].values
    fig = Figure(figsize=(11.0, 5.2), layout="constrained")
    ax_err, ax_t = fig.subplots(1, 2)
    for name, color, label in (
        ("scratch", SCRATCH_COLOR, f"scratch ({curves.attrs['scratch']})"),
        ("linear", LINEAR_COLOR, "linear transfer (ridge on features)"),
    ):
        err = curves[f"error_{name}"]
        ax_err.errorbar(
            sizes, err.mean("split"), yerr=err.std("split"), fmt="o", color=color, ms=4,
            capsize=2, label=f"{label}: measured",
        )  # fmt: skip
        fit = curves[f"fit_{name}"].values
        ax_err.plot(
            grid, np.where(np.isfinite(fit), fit, np.nan), "-", color=color, lw=1.4,
            label=f"fit: {curves.attrs[f'form_{name}']}",
        )  # fmt: skip
    measured = np.concatenate([curves["error_scratch"].values, curves["error_linear"].values])
    top = np.nanpercentile(measured, 99) * 1.5
    low = max(np.nanmin(measured) * 0.5, 1e-12)
    ax_err.set(xscale="log", yscale="log", ylim=(low, top), xlabel="training samples n",
               ylabel="held-out mean squared error")  # fmt: skip
    ax_err.set_title("learning curves: measured (points) and fitted (lines)")

    t = curves["transferability"].values
    lo, hi = curves["transferability_low"].values, curves["transferability_high"].values
    level = round(100 * curves.attrs["confidence"])
    ax_t.fill_between(
        grid, lo, hi, color=T_COLOR, alpha=0.2, lw=0, label=f"{level}% bootstrap band"
    )
    ax_t.plot(grid, t, color=T_COLOR, lw=1.6, label="predicted T(n) = R_scratch - R_transfer")
    ax_t.axhline(0.0, color="0.3", lw=0.8)
    finite = np.concatenate([t[np.isfinite(t)], lo[np.isfinite(lo)], hi[np.isfinite(hi)]])
    span = np.nanpercentile(np.abs(finite), 95) * 1.3 if finite.size else 1.0
    ax_t.set(xscale="log", ylim=(-span, span), xlabel="training samples n",
             ylabel="transferability T (> 0: transfer helps)")  # fmt: skip
    ax_t.set_title(f"prediction at n = {n_user}: {curves.attrs['verdict']}")
    for ax in (ax_err, ax_t):
        ax.axvline(n_user, color="k", ls="--", lw=1.0, label=f"your n = {n_user}")
        if np.isfinite(crossover):
            ax.axvline(
                crossover, color="0.5", ls=":", lw=1.4, label=f"crossover n = {crossover:.4g}"
            )
        ax.grid(alpha=0.3, which="both", lw=0.5)
    for ax in (ax_err, ax_t):  # below the axes, off the data
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    if title:
        fig.suptitle(title)
    return fig
