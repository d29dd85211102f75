"""Transferability phase diagrams over (alpha, theta): the paper's Figs. 1(a), 2, 3(a), 6 and 7.

Red is negative transfer, blue positive, white none; the black line is T = 0. The input is a
dataset with dims ``(alpha, theta)`` such as :func:`featurefate.experiments.theory_phase.
phase_diagram` returns; the title is read from its ``attrs``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MultipleLocator

import featurefate

# Colour scale: symmetric about 0 and set by the most negative finite value, within these bounds,
# so the negative region always shows its full range and large positive values (scratch training's
# double-descent peak) saturate rather than wash the map out.
_VLIM_MIN = 0.05
_VLIM_MAX = 2.0
_NAN_COLOUR = "0.85"
_LABEL_SIZE = 11
_TICK_SIZE = 10

_METHOD_TITLES = {
    "linear": "Linear transfer",
    "ridge": "Ridge linear transfer",
    "finetune": "Fine-tuning",
}
_VARIANT_TITLES = {
    "paper": "paper's endpoint, eq. (16)",
    "exact": "corrected endpoint X⁺y + c(I−P)β_s",
}


def _pi_label(value: float, _position: int) -> str:
    """Tick label as a fraction of pi with denominator <= 8: 0, π/8, π/4, 3π/8, π/2, ..."""
    frac = Fraction(value / np.pi).limit_denominator(8)
    if frac == 0:
        return "0"
    numerator = "π" if frac.numerator == 1 else f"{frac.numerator}π"
    return numerator if frac.denominator == 1 else f"{numerator}/{frac.denominator}"


def _title(attrs) -> str:
    method = attrs.get("method")
    head = _METHOD_TITLES.get(method, str(method))
    if "variant" in attrs:
        head += f", {_VARIANT_TITLES.get(attrs['variant'], attrs['variant'])}"
    parts = []
    if "sigma" in attrs:
        parts.append(f"σ = {attrs['sigma']:g}")
    if "lam" in attrs:
        parts.append(f"λ = {attrs['lam']:g}")
    if "dim" in attrs:
        parts.append(f"D = {attrs['dim']}")
    parts.append("theory, D → ∞" if attrs.get("limit") == "D -> infinity" else "theory")
    return f"{head}\n{', '.join(parts)}"


def _colour_limit(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    most_negative = -finite.min() if finite.size else 0.0
    return float(np.clip(most_negative, _VLIM_MIN, _VLIM_MAX))


def plot_phase_diagram(
    ds, *, variable="theory_transferability", ax=None, title=None, vlim=None, contour=True
) -> Figure:
    """Heat map of the transferability over (alpha, theta) with its T = 0 contour.

    Colours are 'RdBu' centred at 0 (red: negative transfer, blue: positive) on the symmetric
    range ``[-vlim, vlim]``; values beyond it, and the infinite transferability at
    ``alpha = 1`` when ``sigma > 0``, take the saturated end colours, and NaN is light grey.

    Parameters
    ----------
    ds : xarray.Dataset
        Holds ``variable`` with dims ``alpha`` and ``theta`` (radians); ``attrs`` as written by
        :func:`featurefate.experiments.theory_phase.phase_diagram`.
    variable : str, default "theory_transferability"
    ax : matplotlib.axes.Axes, optional
        Draw here; by default on a new :class:`~matplotlib.figure.Figure` (no pyplot state).
    title : str, optional
        Default: method, variant, sigma, lam and dim from ``ds.attrs``, and 'theory'.
    vlim : float, optional
        Half-width of the colour range; default the most negative finite value, clipped to
        [0.05, 2].
    contour : bool, default True
        Draw the T = 0 line (off for noisy simulated maps, whose signs are marked instead).

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = ds[variable].transpose("theta", "alpha")
    alpha = np.asarray(ds["alpha"], dtype=np.float64)
    theta = np.asarray(ds["theta"], dtype=np.float64)
    values = np.asarray(data, dtype=np.float64)
    if vlim is None:
        vlim = _colour_limit(values)

    if ax is None:
        fig = Figure(figsize=(5.4, 4.0), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure

    # Clip before plotting so that +-inf become ordinary out-of-range values (drawn in the
    # saturated end colours and usable by the contour); NaN stays masked.
    clipped = np.clip(values, -2.0 * vlim, 2.0 * vlim)
    shown = np.ma.masked_invalid(clipped)
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad=_NAN_COLOUR)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vlim, vmax=vlim)
    mesh = ax.pcolormesh(
        alpha, theta, shown, cmap=cmap, norm=norm, shading="nearest", rasterized=True
    )

    # The T = 0 line is drawn only where T changes sign. Points where T is exactly 0 (fine-tuning
    # for alpha >= 1) are left out: that plateau is no sign change.
    contour_data = np.ma.masked_where(np.isnan(clipped) | (clipped == 0.0), clipped)
    if contour and contour_data.count() and contour_data.min() < 0.0 < contour_data.max():
        ax.contour(alpha, theta, contour_data, levels=[0.0], colors="black", linewidths=1.3)

    # Arrows on the colour bar only for values really beyond the range, not rounding.
    margin = vlim * (1.0 + 1e-9)
    above = bool(np.any(values > margin))
    below = bool(np.any(values < -margin))
    extend = {(False, False): "neither", (True, False): "max", (False, True): "min"}.get(
        (above, below), "both"
    )
    colorbar = fig.colorbar(mesh, ax=ax, extend=extend)
    colorbar.set_label("transferability T = R$_{\\mathrm{scratch}}$ − R$_{\\mathrm{transfer}}$")
    colorbar.ax.yaxis.label.set_size(_LABEL_SIZE)
    colorbar.ax.tick_params(labelsize=_TICK_SIZE)

    ax.set_xlabel("α = n / D", fontsize=_LABEL_SIZE)
    ax.set_ylabel("θ (angle between source and target)", fontsize=_LABEL_SIZE)
    ax.yaxis.set_major_locator(MultipleLocator(np.pi / 8))
    ax.yaxis.set_major_formatter(FuncFormatter(_pi_label))
    ax.tick_params(labelsize=_TICK_SIZE)
    ax.set_xlim(0.0, alpha.max())
    ax.set_ylim(theta.min(), theta.max())
    ax.set_title(_title(ds.attrs) if title is None else title, fontsize=_LABEL_SIZE)
    return fig


def save_figure(fig: Figure, out_dir, stem: str) -> list[Path]:
    """Write ``fig`` as ``<out_dir>/<stem>.png`` (200 dpi) and ``.pdf``; create ``out_dir``.

    The PDF carries no creation date, so the same figure gives the same file.

    Returns
    -------
    list of pathlib.Path
        The files written, PNG first.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    creator = f"featurefate {featurefate.__version__}"
    png, pdf = out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"
    fig.savefig(png, dpi=200, metadata={"Software": creator})
    fig.savefig(pdf, metadata={"Creator": creator, "CreationDate": None})
    return [png, pdf]
