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


def shared_colour_limit(*maps) -> float:
    """One half-width of the colour range for maps shown side by side (theory and simulation).

    The most negative finite value over all of ``maps`` (arrays or DataArrays), clipped to
    [0.05, 2], as :func:`plot_phase_diagram` takes for one map.
    """
    return _colour_limit(np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps]))


def _extend(values: np.ndarray, vlim: float) -> str:
    """Arrows on the colour bar only for values really beyond the range, not rounding."""
    margin = vlim * (1.0 + 1e-9)
    above = bool(np.any(values > margin))
    below = bool(np.any(values < -margin))
    return {(False, False): "neither", (True, False): "max", (False, True): "min"}.get(
        (above, below), "both"
    )


def phase_colorbar(fig, mappable, ax, *maps, vlim: float):
    """The transferability colour bar of one map or of several sharing one norm.

    ``ax`` is one axes or a list of them (the bar spans them); ``maps`` are the values shown,
    for the arrows of values beyond ``[-vlim, vlim]``.
    """
    values = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps])
    colorbar = fig.colorbar(mappable, ax=ax, extend=_extend(values, vlim))
    colorbar.set_label("transferability T = R$_{\\mathrm{scratch}}$ − R$_{\\mathrm{transfer}}$")
    colorbar.ax.yaxis.label.set_size(_LABEL_SIZE)
    colorbar.ax.tick_params(labelsize=_TICK_SIZE)
    return colorbar


def _plateau_start(values: np.ndarray) -> int | None:
    """Index of the first alpha column of a final run of columns where T is exactly 0 at every
    theta (fine-tuning for alpha >= 1), when some column before it is not; else None."""
    zero = np.all(values == 0.0, axis=0)
    start = zero.size
    while start > 0 and zero[start - 1]:
        start -= 1
    return start if 0 < start < zero.size else None


def _resolve_plateau_edge(ds, variable, alpha, theta, values):
    """The contour grid with the last alpha interval before a zero plateau resolved.

    A sign change of T inside that interval (the corrected fine-tuning endpoint with noise:
    c grows without bound as alpha -> 1, so T < 0 in a sliver just below alpha = 1) is not
    seen by the grid, whose next column is the plateau, masked. For a limit theory dataset of
    :func:`featurefate.experiments.theory_phase.phase_diagram` the interval gets 48 values of
    alpha approaching the plateau geometrically (down to 1e-12 of its width), from the same
    closed form; other datasets are returned unchanged.
    """
    attrs = ds.attrs
    start = _plateau_start(values)
    if (
        start is None
        or variable != "theory_transferability"
        or attrs.get("limit") != "D -> infinity"
        or "method" not in attrs
    ):
        return alpha, values
    from featurefate.experiments.theory_phase import phase_diagram

    gap = alpha[start] - alpha[start - 1]
    fine = alpha[start] - gap * np.geomspace(0.5, 1e-12, 48)
    extra = phase_diagram(
        attrs["method"], attrs["sigma"], lam=attrs.get("lam"), variant=attrs.get("variant"),
        alpha=fine, theta=theta,
    )["theory_transferability"].transpose("theta", "alpha")  # fmt: skip
    alpha = np.concatenate([alpha[:start], fine, alpha[start:]])
    values = np.concatenate([values[:, :start], np.asarray(extra), values[:, start:]], axis=1)
    return alpha, values


def _unresolved_sliver(alpha, values, coarse_alpha):
    """A sign change inside the resolved interval that the coarse grid did not show.

    Returns (the alpha where T = 0 on the first theta row, interpolated, or NaN when that row
    does not change sign there; the plateau's first alpha; the largest |T| of the negative
    values there) or None.
    """
    inside = ~np.isin(alpha, coarse_alpha)
    if not inside.any():
        return None
    cols = np.flatnonzero(inside)
    before, after = cols[0] - 1, cols[-1] + 1
    fine = values[:, inside]
    turned = (values[:, before] > 0.0)[:, None] & (fine < 0.0)
    if not turned.any():
        return None
    row = values[0, before:after]
    x = alpha[before:after]
    change = np.flatnonzero((row[:-1] > 0.0) & (row[1:] < 0.0))
    crossing = float("nan")
    if change.size:
        i = change[0]
        crossing = float(x[i] + (x[i + 1] - x[i]) * row[i] / (row[i] - row[i + 1]))
    return crossing, float(alpha[after]), float(-fine[turned].min())


def zero_contour(ax, x, y, values, **kw):
    """Draw the T = 0 line where T changes sign; None when it nowhere does.

    ``values`` has rows ``y`` and columns ``x``. NaN and points where T is exactly 0 (the
    plateau of fine-tuning at alpha >= 1, where the data pin the model down) are left out: a
    plateau's edge is no sign change, and contouring it would draw a line along alpha = 1.
    """
    data = np.ma.masked_where(np.isnan(values) | (values == 0.0), values)
    if not (data.count() and data.min() < 0.0 < data.max()):
        return None
    style = {"colors": "black", "linewidths": 1.3} | kw
    return ax.contour(x, y, data, levels=[0.0], **style)


def plot_phase_diagram(
    ds,
    *,
    variable="theory_transferability",
    ax=None,
    title=None,
    vlim=None,
    contour=True,
    colorbar=True,
    note_in_title=False,
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
        It is drawn only where T changes sign (:func:`zero_contour`); for a limit theory
        whose T ends in a plateau of exact zeros (fine-tuning at alpha >= 1) the last grid
        interval before the plateau is resolved from the same closed form, so that the line
        does not stop at the grid's last column (:func:`_resolve_plateau_edge`).
    colorbar : bool, default True
        Draw this map's colour bar. Maps that share one norm (pass the same ``vlim``, e.g.
        :func:`shared_colour_limit`) share one bar instead: :func:`phase_colorbar`.
    note_in_title : bool, default False
        Where a sign change was resolved inside the last cell before a plateau, a note says
        where T = 0 there; it goes in the axes' lower right corner, or with this under the
        title (for maps with markers over them).

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

    if contour:
        x, resolved = _resolve_plateau_edge(ds, variable, alpha, theta, values)
        zero_contour(ax, x, theta, np.clip(resolved, -2.0 * vlim, 2.0 * vlim))
        sliver = _unresolved_sliver(x, resolved, alpha)
        if sliver is not None:  # the line's last stretch is inside the grid's last cell
            crossing, edge, most = sliver
            note = f"T < 0 just below α = {edge:g}\n(|T| ≤ {most:.1g})"
            if np.isfinite(crossing):
                note = f"T = 0 at α = {crossing:.4g}, θ = {theta[0]:.3g};\n{note}"
            if note_in_title:
                head = _title(ds.attrs) if title is None else title
                title = f"{head}\n{note.replace(chr(10), ' ')}"
            else:
                ax.text(
                    0.98, 0.015, note, transform=ax.transAxes, ha="right", va="bottom",
                    fontsize=_TICK_SIZE - 3,
                )  # fmt: skip
    if colorbar:
        phase_colorbar(fig, mesh, ax, values, vlim=vlim)

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
