"""Every figure of the paper from one command: sweeps, figures and a report.

:func:`reproduce` runs the bundled sweep configs of a scale (``quick`` or ``paper``) into
``OUT/data/<config>.zarr`` (resumable: running it again finishes an interrupted run and
recomputes nothing), draws every figure the data allows (:data:`FIGURES`) plus the
high-resolution theory phase diagrams (:data:`PAPER_FIGURES`), and writes ``OUT/report.md``,
which shows each figure with the key numbers measured against predicted.

``featurefate figure NAME --data STORE --out DIR`` draws one entry of :data:`FIGURES` from any
store of the right experiment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from featurefate import _validation as v
from featurefate import schema
from featurefate._text import article, count
from featurefate.experiments._stats import mean_and_stderr
from featurefate.experiments.theory_phase import grid, phase_diagram, phase_stem
from featurefate.figures.finite_source import plot_finite_source
from featurefate.figures.linear import (
    SIGN_ATOL,
    at_step_limit,
    nearest,
    plot_finetune,
    plot_linear_transfer,
    plot_ridge,
)
from featurefate.figures.phase import plot_phase_diagram, save_figure
from featurefate.theory import linear as theory

SCALES = ("quick", "paper")


def bundled_config(name: str) -> Path:
    """Path of a config shipped with featurefate (``configs/<name>.toml``)."""
    from featurefate.sweep import bundled_configs

    bundled = bundled_configs()
    if name not in bundled:
        raise ValueError(f"no bundled config named {name!r} (bundled: {', '.join(bundled)})")
    return bundled[name]


def scale_configs(scale: str) -> list[Path]:
    """The bundled configs of a scale: ``<scale>-*.toml``, linear first."""
    from featurefate.sweep import bundled_configs

    scale = v.choice("scale", scale, SCALES)
    paths = [path for name, path in bundled_configs().items() if name.startswith(f"{scale}-")]
    return sorted(paths, key=lambda p: (not p.stem.endswith("-linear"), p.stem))


# --------------------------------------------------------------------------- theory maps


_NETCDF_LOCK = threading.Lock()
"""Serialises NetCDF (HDF5) writes of this process."""


def write_phase_diagram(
    out_dir,
    stem,
    method,
    sigma,
    *,
    lam=None,
    variant=None,
    dim=None,
    alpha_max=2.0,
    num_alpha=400,
    num_theta=300,
) -> list[Path]:
    """Compute a theory phase diagram and write ``<stem>.nc``, ``.png`` and ``.pdf``.

    The grid is :func:`featurefate.experiments.theory_phase.grid` (theta up to pi/2); the other
    parameters are those of :func:`~featurefate.experiments.theory_phase.phase_diagram`.
    Everything is validated before ``out_dir`` is created.

    Returns
    -------
    list of pathlib.Path
        The NetCDF file, then the PNG and the PDF.
    """
    alpha, theta = grid(alpha_max, num_alpha, num_theta)
    ds = phase_diagram(method, sigma, lam=lam, variant=variant, alpha=alpha, theta=theta, dim=dim)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    netcdf = out_dir / f"{stem}.nc"
    with _NETCDF_LOCK:  # HDF5 is not thread-safe: figures drawn on threads write one at a time
        ds.to_netcdf(netcdf, encoding={name: {"zlib": True} for name in ds.data_vars})
    return [netcdf, *save_figure(plot_phase_diagram(ds), out_dir, stem)]


@dataclass(frozen=True)
class TheoryPhaseFigure:
    """One of the paper's theory phase diagrams (limit D -> infinity)."""

    name: str
    """Paper figure, used as the stem prefix: ``fig1``."""
    caption: str
    method: str
    sigma: float
    lam: float | None = None
    variant: str | None = None

    @property
    def stem(self) -> str:
        """``<name>_phase_...``, e.g. ``fig3_phase_finetune-exact_sigma0.2``."""
        config = phase_stem(self.method, self.sigma, lam=self.lam, variant=self.variant)
        return f"{self.name}_{config}"

    def make(self, out_dir, *, alpha_max=2.0, num_alpha=400, num_theta=300) -> list[Path]:
        """Write this figure's dataset and images into ``out_dir``; return their paths."""
        return write_phase_diagram(
            out_dir,
            self.stem,
            self.method,
            self.sigma,
            lam=self.lam,
            variant=self.variant,
            alpha_max=alpha_max,
            num_alpha=num_alpha,
            num_theta=num_theta,
        )


PAPER_FIGURES: tuple[TheoryPhaseFigure, ...] = (
    TheoryPhaseFigure("fig1", "Fig. 1(a): linear transfer, sigma = 0.2", "linear", 0.2),
    TheoryPhaseFigure(
        "fig2", "Fig. 2: ridge linear transfer, sigma = 0.2, lam = 0.1", "ridge", 0.2, lam=0.1
    ),
    TheoryPhaseFigure(
        "fig2", "Fig. 2: ridge linear transfer, sigma = 0.2, lam = 0.5", "ridge", 0.2, lam=0.5
    ),
    TheoryPhaseFigure(
        "fig3",
        "Fig. 3(a): fine-tuning, sigma = 0.2, paper's endpoint (eq. 16)",
        "finetune",
        0.2,
        variant="paper",
    ),
    TheoryPhaseFigure(
        "fig3",
        "Fig. 3(a): fine-tuning, sigma = 0.2, corrected endpoint X^+y + c(I - P)beta_s",
        "finetune",
        0.2,
        variant="exact",
    ),
    TheoryPhaseFigure("fig6", "Fig. 6: linear transfer, noiseless", "linear", 0.0),
    TheoryPhaseFigure(
        "fig7", "Fig. 7: fine-tuning, noiseless, paper's endpoint", "finetune", 0.0, variant="paper"
    ),
    TheoryPhaseFigure(
        "fig7",
        "Fig. 7: fine-tuning, noiseless, corrected endpoint (equal to the paper's at sigma = 0)",
        "finetune",
        0.0,
        variant="exact",
    ),
)
"""The theory phase diagrams ``featurefate reproduce`` draws at high resolution."""


# --------------------------------------------------------------------------- simulation figures


def _theory_map(sim: xr.Dataset, method: str, sigma: float, **kw) -> xr.Dataset:
    """Theory (D -> infinity) on a fine grid whose thetas include the simulated ones."""
    alpha_max = float(sim.alpha.max())
    alpha = np.linspace(alpha_max / 300, alpha_max, 300)
    theta = np.union1d(np.linspace(0.0, float(sim.theta.max()), 181), sim.theta.values)
    return phase_diagram(method, sigma, alpha=alpha, theta=theta, **kw)


def _noisy_sigma(sim: xr.Dataset, target: float = 0.2) -> float | None:
    positive = sim.sigma.values[sim.sigma.values > 0]
    return nearest(positive, target) if positive.size else None


def _zero_sigma(sim: xr.Dataset) -> float | None:
    return 0.0 if np.any(sim.sigma.values == 0) else None


def _fig_linear(sim, sigma):
    return plot_linear_transfer(sim, _theory_map(sim, "linear", sigma), sigma=sigma)


def _fig_finetune(sim, sigma):
    maps = {v_: _theory_map(sim, "finetune", sigma, variant=v_) for v_ in ("paper", "exact")}
    return plot_finetune(sim, maps, sigma=sigma)


def _fig_ridge(sim, sigma):
    lams = [lam for lam in sim.lam.values if lam > 0]
    picks = sorted({nearest(lams, 0.1), nearest(lams, 0.5)}) if lams else []
    maps = {lam: _theory_map(sim, "ridge", sigma, lam=lam) for lam in picks}
    return plot_ridge(sim, maps, sigma=sigma)


def _plot_fig4(ds):
    from featurefate.figures.relu import plot_relu_figure

    return plot_relu_figure(ds)


def _plot_mechanism(ds):
    from featurefate.figures.mechanism import plot_mechanism

    return plot_mechanism(ds)


def _plot_init_scale(ds):
    from featurefate.figures.init_scale import plot_init_scale

    return plot_init_scale(ds)


def _plot_fig5(ds):
    from featurefate.figures.discrepancy import plot_fig5

    return plot_fig5(ds)


def _fig5_stem(ds) -> str:
    """``fig5_discrepancy_paper-grid`` or ``..._extended-grid``: two grids, two files."""
    from featurefate.experiments.discrepancy import grid_name

    return "fig5_discrepancy_" + (
        "paper-grid" if grid_name(ds) == "paper's grid" else "extended-grid"
    )


@dataclass(frozen=True)
class SimulationFigure:
    """A figure drawn from a sweep store of one experiment family."""

    name: str
    experiment: str
    caption: str
    draw: Callable[[xr.Dataset], list[tuple[str, object]]]
    """``draw(ds)`` -> ``[(stem, Figure), ...]``; empty when the data cannot make it."""

    def make(self, ds: xr.Dataset, out_dir) -> list[Path]:
        if ds.attrs.get("experiment") != self.experiment:
            raise ValueError(
                f"figure {self.name} needs {article(self.experiment)} store; "
                f"got {article(ds.attrs.get('experiment', 'unknown'))} store"
            )
        paths = []
        for stem, fig in self.draw(ds):
            paths.extend(save_figure(fig, out_dir, stem))
        return paths


def _at_sigma(stem, pick, plot):
    def draw(ds):
        if "alpha_source" in ds.dims:  # finite-source stores have their own figure
            return []
        sigma = pick(ds)
        return [] if sigma is None else [(f"{stem}_sigma{sigma:g}", plot(ds, sigma))]

    return draw


FIGURES: dict[str, SimulationFigure] = {
    spec.name: spec
    for spec in (
        SimulationFigure(
            "fig1",
            "linear_phase",
            "Fig. 1: linear transfer, theory against simulation (sigma nearest 0.2).",
            _at_sigma("fig1_linear", _noisy_sigma, _fig_linear),
        ),
        SimulationFigure(
            "fig2",
            "linear_phase",
            "Fig. 2: ridge linear transfer: error against lam and phase diagrams for lam > 0.",
            _at_sigma("fig2_ridge", _noisy_sigma, _fig_ridge),
        ),
        SimulationFigure(
            "fig3",
            "linear_phase",
            "Fig. 3: fine-tuning against the paper's and the corrected theory (sigma nearest 0.2).",
            _at_sigma("fig3_finetune", _noisy_sigma, _fig_finetune),
        ),
        SimulationFigure(
            "fig6",
            "linear_phase",
            "Fig. 6: linear transfer without label noise.",
            _at_sigma("fig6_linear", _zero_sigma, _fig_linear),
        ),
        SimulationFigure(
            "fig7",
            "linear_phase",
            "Fig. 7: fine-tuning without label noise.",
            _at_sigma("fig7_finetune", _zero_sigma, _fig_finetune),
        ),
        SimulationFigure(
            "fig4",
            "relu_phase",
            "Fig. 4: two-layer ReLU teacher-student: kernels, the scratch learning curve, the "
            "residual |P⊥f_t|² against ρ, and the sign of transfer with the predicted boundary.",
            lambda ds: [("fig4_relu", _plot_fig4(ds))],
        ),
        SimulationFigure(
            "fig5",
            "discrepancy",
            "Fig. 5: transferability against KL, W1 and the Dudley metric (both conventions) "
            "across the grid, rank correlations at each fixed alpha, and the Theorem 2.2 family "
            "(KL and W2 grow without bound, the Dudley metric stays below 2, linear transfer "
            "stays positive).",
            lambda ds: [(_fig5_stem(ds), _plot_fig5(ds))],
        ),
        SimulationFigure(
            "mechanism",
            "mechanism",
            "Theorem 3.4 from the authors' random Gaussian init: the hidden features' singular "
            "values, their alignment with β_s and the loss along population pretraining.",
            lambda ds: [("mechanism_singular_values", _plot_mechanism(ds))],
        ),
        SimulationFigure(
            "init_scale",
            "init_scale",
            "Beyond the paper: the rank-one theory against simulation from random inits of "
            "growing scale (s2/s1 of the pretrained features, scratch error, transferability).",
            lambda ds: [("init_scale_transfer", _plot_init_scale(ds))],
        ),
        SimulationFigure(
            "finite_source",
            "linear_phase",
            "Pretraining on finite source data (docs/theory.md, Finite source data): T of linear "
            "transfer and of corrected fine-tuning over the target's α and the source's α_s, "
            "theory map (D → ∞) with its T = 0 contour and the simulated sign of each cell.",
            lambda ds: (
                []
                if "alpha_source" not in ds.dims
                else [(_finite_source_stem(ds), plot_finite_source(ds))]
            ),
        ),
    )
}
"""Figures drawn from sweep stores, by name (``featurefate figure NAME``)."""


def register_figure(spec: SimulationFigure) -> None:
    """Add a figure of another experiment family to :data:`FIGURES`."""
    FIGURES[spec.name] = spec


def make_figure(name: str, ds: xr.Dataset, out_dir) -> list[Path]:
    """Draw figure ``name`` of :data:`FIGURES` from a store's dataset into ``out_dir``."""
    name = v.choice("figure", name, FIGURES)
    return FIGURES[name].make(ds, out_dir)


# --------------------------------------------------------------------------- key numbers


@dataclass
class KeyNumber:
    """One line of the report: a quantity, simulated and predicted."""

    quantity: str
    simulated: str
    predicted: str


def _fmt_interval(values) -> str:
    values = list(values)
    if not values:
        return "none"
    return f"[{min(values):.2f}, {max(values):.2f}] ({len(values)} grid points)"


def _zero_crossing(x: np.ndarray, y: np.ndarray) -> float | None:
    """First x where y goes from >= 0 to < 0, linearly interpolated."""
    for i in range(len(x) - 1):
        if np.isfinite(y[i]) and np.isfinite(y[i + 1]) and y[i] >= 0 > y[i + 1]:
            return float(x[i] + (x[i + 1] - x[i]) * y[i] / (y[i] - y[i + 1]))
    return None


def _finite_source_stem(ds: xr.Dataset) -> str:
    theta, sigma = float(ds.theta.values.flat[0]), float(ds.sigma.values.flat[0])
    return f"finite_source_theta{theta / np.pi:.3g}pi_sigma{sigma:g}"


def finite_source_key_numbers(sim: xr.Dataset) -> list[KeyNumber]:
    """Simulated T against the finite-D finite-source theory, per method (report section)."""
    out = []
    stopped = xr.zeros_like(sim.transferability_linear, dtype=bool)
    for stage in ("scratch", "pretrain", "finetune"):
        if schema.converged_name(stage) in sim:
            converged = sim[schema.converged_name(stage)]
            stopped = stopped | (~converged.fillna(True).astype(bool)).any("instance")
    for method, theory_name in (
        ("linear", "linear"),
        ("finetune", "finetune_paper"),
        ("finetune", "finetune_exact"),
    ):
        t = sim[schema.transferability_name(method)]
        se = sim[schema.stderr_name(schema.transferability_name(method))]
        pred = sim[schema.transferability_name(theory_name, theory=True)]
        ok = (np.isfinite(t) & np.isfinite(pred) & ~stopped).values
        within = int((np.abs(t - pred) <= 3 * se + SIGN_ATOL).values[ok].sum())
        clear = ok & (np.abs(t) > np.maximum(2 * se, SIGN_ATOL)).values
        agree = int((np.sign(t) == np.sign(pred)).values[clear].sum())
        left = int((~ok).sum())
        note = (
            f" ({count(left, 'cell')} with an instance at the step limit left out)" if left else ""
        )
        out.append(
            KeyNumber(
                f"finite source: cells where simulated T({method}) is within 3 s.e. + "
                f"{SIGN_ATOL:g} of `{theory_name}` at D = {sim.attrs.get('dim')}",
                f"{within} / {int(ok.sum())}{note}; sign agrees in {agree} / {int(clear.sum())} "
                "cells with a clear simulated sign (|T| > 2 s.e.)",
                "all (up to chance and the O(1/D) source-side approximation of the corrected "
                "endpoint)",
            )
        )
    return out


def linear_key_numbers(sim: xr.Dataset) -> list[KeyNumber]:
    """Measured against predicted for a ``linear_phase`` store (report section)."""
    if "alpha_source" in sim.dims:
        return finite_source_key_numbers(sim)
    out = []
    sigma = _noisy_sigma(sim)
    for sig in [s for s in (sigma, _zero_sigma(sim)) if s is not None]:
        s = sim.sel(sigma=sig)
        theta = nearest(s.theta, np.pi / 4)
        cut = s.sel(theta=theta)
        t, se = cut.transferability_linear.values, cut.transferability_linear_stderr.values
        alphas = cut.alpha.values
        negative = alphas[t < -2 * se]
        regions = theory.negative_transfer_regions(theta, sig)
        lo, hi, th = (
            float(regions.alpha_lower),
            float(regions.alpha_upper),
            float(regions.alpha_threshold),
        )
        below = "empty" if np.isnan(lo) else f"({lo:.3f}, {hi:.3f})"
        out.append(
            KeyNumber(
                f"α with negative linear transfer, θ = {theta / np.pi:.3f}π, σ = {sig:g}",
                f"below 1: {_fmt_interval(negative[negative < 1])}; above 1: {_fmt_interval(negative[negative > 1])}",
                f"below 1: {below}; above 1: α > {th:.3f}",
            )
        )
    if sigma is not None:
        s = sim.sel(sigma=sigma)
        alpha = nearest(s.alpha, 0.5)
        row = s.sel(alpha=alpha)
        angle = _zero_crossing(row.theta.values, row.transferability_finetune.values)
        paper = float(theory.finetune_break_even_angle(alpha, sigma, variant="paper"))
        exact = float(theory.finetune_break_even_angle(alpha, sigma, variant="exact"))
        out.append(
            KeyNumber(
                f"fine-tuning break-even angle, α = {alpha:g}, σ = {sigma:g}",
                "no sign change on the grid" if angle is None else f"{np.degrees(angle):.1f}°",
                f"paper: {np.degrees(paper):.1f}°; corrected: {np.degrees(exact):.1f}°",
            )
        )
    # a cell is compared with theory only when all its trained instances converged (an instance
    # at the step limit is not at its endpoint); agreement allows 3 s.e. plus the endpoint accuracy
    converged = ~at_step_limit(sim).transpose(*sim.transferability_linear.dims).values
    for method, theory_name in (
        ("linear", "linear"),
        ("finetune", "finetune_paper"),
        ("finetune", "finetune_exact"),
    ):
        t = sim[schema.transferability_name(method)].values
        se = sim[schema.stderr_name(schema.transferability_name(method))].values
        pred = sim[schema.transferability_name(theory_name, theory=True)].values
        ok = np.isfinite(t) & np.isfinite(pred) & converged
        within = int((np.abs(t - pred) <= 3 * se + SIGN_ATOL)[ok].sum())
        skipped = int((np.isfinite(t) & np.isfinite(pred) & ~converged).sum())
        skipped_note = (
            f" ({count(skipped, 'cell')} with instances at the step limit left out)"
            if skipped
            else ""
        )
        out.append(
            KeyNumber(
                f"cells where simulated T({method}) is within 3 s.e. + {SIGN_ATOL:g} of theory "
                f"`{theory_name}` at D = {sim.attrs.get('dim')}",
                f"{within} / {int(ok.sum())}{skipped_note}",
                "all (up to chance: ~0.3% beyond 3 s.e.)",
            )
        )
    sv = sim.pretrained_singular_values
    s1 = float(sv.isel(rank=0).median())
    s2 = float(sv.isel(rank=1).median())
    init = sim.attrs.get("init")
    s2_predicted = (
        "0 exactly (rank-one chain init: rank one by construction, not a test of Theorem 3.4)"
        if init == "rank_one"
        else f"O(init_scale = {sim.attrs.get('init_scale')})"
    )
    out.append(
        KeyNumber(
            f"pretrained features: median s1, s2 (Theorem 3.4), {init} init"
            + (
                "; the test from the random init is the mechanism section"
                if init == "rank_one"
                else ""
            ),
            f"s1 = {s1:.4f}, s2 = {s2:.2e}",
            f"s1 = |β_s|^((L−1)/L) = 1, s2 = {s2_predicted}",
        )
    )
    for stage in ("pretrain", "scratch", "finetune"):
        conv = sim[schema.converged_name(stage)].values.astype(float)
        out.append(
            KeyNumber(
                f"{stage}: instances converged to tol",
                f"{int(np.nansum(conv))} / {int(np.isfinite(conv).sum())}",
                "all; those at the step limit are counted here, not hidden",
            )
        )
    return out


_FIG5_PAIRS = (
    ("theory_kl", "KL (closed form)"),
    ("theory_w2", "W2 (closed form)"),
    ("sample_w1_subspace", "W1 (samples, projected)"),
    ("sample_w1", "W1 (samples, all D + 1 coordinates)"),
    ("sample_dudley_subspace", "Dudley, paper's convention (samples, projected)"),
    ("sample_dudley_max_subspace", "Dudley, |h| <= 1 and Lip(h) <= 1 (samples, projected)"),
)
_FIG5_TRANSFERS = (
    ("transferability_linear", "linear transfer"),
    ("transferability_finetune_exact", "fine-tuning (corrected endpoint)"),
)


def _rho(cell) -> str:
    rho = float(cell.spearman)
    if not np.isfinite(rho):
        return "undefined (T constant)"
    return f"{rho:+.2f} [{float(cell.spearman_low):+.2f}, {float(cell.spearman_high):+.2f}]"


def _fails(cell) -> bool:
    """The paper's claim fails for a pair when the whole bootstrap interval of rho is below 0."""
    return bool(np.isfinite(cell.spearman_high) and float(cell.spearman_high) < 0.0)


def discrepancy_key_numbers(ds: xr.Dataset) -> list[KeyNumber]:
    """Fig. 5 / Theorem 2.2: does the paper's "no negative correlation" hold on this grid?

    Spearman's rho (Pearson's r alongside) of each distance with the simulated transferability,
    with 95% bootstrap intervals over the cells, over the whole grid and at each fixed alpha;
    the claim fails for a pair where the interval lies below 0. Then the Theorem 2.2 family.
    """
    from featurefate.experiments.discrepancy import correlations, grid_name
    from featurefate.theory.discrepancy import theorem22_family

    grid = grid_name(ds)
    distances = [name for name, _ in _FIG5_PAIRS if name in ds]
    transfers = [name for name, _ in _FIG5_TRANSFERS if name in ds]
    overall = correlations(ds, distances=distances, transferabilities=transfers)
    varies = "alpha" in ds.dims and ds.sizes["alpha"] > 1
    per_alpha = (
        correlations(ds, distances=distances, transferabilities=transfers, by="alpha")
        if varies
        else None
    )
    labels = dict(_FIG5_PAIRS) | dict(_FIG5_TRANSFERS)
    out, failures, total = [], 0, 0
    for transfer in transfers:
        for distance in distances:
            cell = overall.sel(distance=distance, transferability=transfer)
            measured = (
                f"ρ = {_rho(cell)}, r = {float(cell.pearson):+.2f} over {int(cell.n_cells)} cells"
            )
            verdict = "fails overall" if _fails(cell) else "holds overall"
            if per_alpha is not None:
                at = per_alpha.sel(distance=distance, transferability=transfer)
                alphas = np.asarray(at["alpha"], dtype=float)
                bad = [a for a, c in zip(alphas, at.spearman_high.values, strict=True) if c < 0]
                defined = np.isfinite(at.spearman.values)
                rhos = at.spearman.values[defined]
                if rhos.size:
                    measured += (
                        f"; at fixed α: ρ from {rhos.min():+.2f} to {rhos.max():+.2f} "
                        f"({int(defined.sum())} of {alphas.size} α defined)"
                    )
                verdict += f"; fails at {len(bad)} of {alphas.size} fixed α" + (
                    f" ({', '.join(f'{a:g}' for a in bad)})" if bad else ""
                )
                total += int(defined.sum())
                failures += len(bad)
            out.append(
                KeyNumber(
                    f"{grid}: {labels[distance]} against T of {labels[transfer]}",
                    measured,
                    f"paper: no negative correlation; {verdict}",
                )
            )
    if per_alpha is not None:
        summary = (
            f"the claim fails at {failures} of {total} (distance, transfer, α) combinations "
            "where T varies: at fixed α, a larger distance means less transfer"
            if failures
            else "the claim holds at every fixed α"
        )
    else:
        bad = sum(
            _fails(overall.sel(distance=d, transferability=t)) for d in distances for t in transfers
        )
        summary = (
            f"the claim fails for {bad} of {len(distances) * len(transfers)} (distance, "
            "transfer) pairs (interval below 0) and holds for the rest"
            if bad
            else "the claim holds: no interval lies below 0"
        )
    out.insert(
        0,
        KeyNumber(
            f"{grid}: the paper's claim that no distance is negatively correlated with T",
            "Spearman ρ with 95% bootstrap interval over the cells (seed 0)",
            summary,
        ),
    )

    alphas = np.asarray(ds["alpha"], dtype=float).ravel()
    alpha = float(alphas[np.argmin(np.abs(alphas - 0.5))])
    sigma = float(ds.sigma.min())
    family = theorem22_family(np.array([1.0, 10.0, 100.0]), alpha, sigma)
    for i, k in enumerate(family.k):
        measured = "closed form"
        if "family_dudley" in ds and float(k) in set(np.asarray(ds["k"], dtype=float)):
            fam = ds.sel(k=float(k), sigma=sigma)
            rest = list(fam["family_dudley"].dims)
            total_sum = float(fam["family_dudley"].mean(rest))
            total_max = float(fam["family_dudley_max"].mean(rest))
            measured = (
                f"Dudley (samples on (β̂_s·x, y)): paper's {total_sum:.3f}, max {total_max:.3f}"
            )
        out.append(
            KeyNumber(
                f"Theorem 2.2 family β_t = −{k:g} β_s (α = {alpha:g}, σ = {sigma:g})",
                measured,
                f"KL {float(family.kl[i]):.3g}, W2 {float(family.w2[i]):.3g}, Dudley < 2 "
                f"(paper's ≤ {float(family.dudley_upper[i]):.3f}), "
                f"T_linear {float(family.transferability_linear[i]):+.3f} (> 0)",
            )
        )
    return out


def relu_key_numbers(ds: xr.Dataset) -> list[KeyNumber]:
    """Fig. 4: the learning-curve exponent, the residual per rho and the phase boundary."""
    from featurefate.figures.relu import residual_by_rho, scratch_power_law
    from featurefate.theory.relu import predicted_boundary

    out = []
    fit = scratch_power_law(ds)
    if fit is not None:
        lo, hi = fit.exponent_interval
        out.append(
            KeyNumber(
                "scratch learning curve A n^-ν: exponent ν (95% interval)",
                f"ν = {fit.exponent:.2f} [{lo:.2f}, {hi:.2f}], A = {fit.amplitude:.3g}",
                "the paper reports ν ≈ 1.18",
            )
        )
    residual, _ = residual_by_rho(ds)
    t = ds.transferability_linear.transpose("rho", "n")
    se = ds.transferability_linear_stderr.transpose("rho", "n")
    n = ds.n.values
    for rho in ds.rho.values:
        r = float(residual.sel(rho=rho))
        row_t, row_se = t.sel(rho=rho).values, se.sel(rho=rho).values
        negative = n[row_t < -2 * row_se]
        listed = ", ".join(f"{x:g}" for x in negative)
        measured = f"T < 0 (2 s.e.) at n = {listed}" if negative.size else "no T < 0 on the grid"
        if fit is not None and r > 0:
            n_star = float(predicted_boundary(fit.amplitude, fit.exponent, r))
            predicted = f"|P⊥f_t|² = {r:.2e}: T < 0 beyond n* = {n_star:.0f}"
        else:
            predicted = f"|P⊥f_t|² = {r:.2e}"
        out.append(KeyNumber(f"linear transfer at ρ = {rho:g}", measured, predicted))
    # linear transfer's error = an n-dependent part + the irreducible |P⊥f_t|² (eq. 21)
    n_max = float(n.max())
    at_max = ds.sel(n=n_max)
    for rho in ds.rho.values:
        cell = at_max.sel(rho=rho)
        error = float(cell.error_linear.mean())
        floor = float(cell.theory_residual.mean())
        excess, excess_se = mean_and_stderr((cell.error_linear - cell.theory_residual).values)
        out.append(
            KeyNumber(
                f"linear transfer error against its irreducible part, ρ = {rho:g}, n = {n_max:g}",
                f"error {error:.3e} = |P⊥f_t|² + {excess:.2e} ± {excess_se:.1e} "
                f"({excess / floor:.1%} above the floor)"
                if floor > 0
                else f"error {error:.3e}",
                f"≥ |P⊥f_t|² = {floor:.3e}, approaching it as n grows",
            )
        )
    if "kernel_alignment" in ds:
        out.append(
            KeyNumber(
                "kernel alignment of the pretrained model with the source",
                f"{float(ds.kernel_alignment.mean()):.3f} (mean)",
                "1 when the features are learned (feature learning, not lazy)",
            )
        )
    return out


def _escape_scale(depth: int, init_scale: float, ds: xr.Dataset) -> str:
    """The order of the time the flow spends near the small init (a rough scale, not a law)."""
    source_norm = float(ds.attrs.get("source_norm", 1.0))
    if depth == 2:  # s1 grows like exp(2 |beta_s| t) from the init's scale
        return f"escape time of order ln(1/γ)/(2|β_s|) = {np.log(1 / init_scale) / (2 * source_norm):.2g}"
    return f"escape time of order γ^−(L−2) = {init_scale ** -(depth - 2):.2g} (a slow saddle)"


def mechanism_key_numbers(ds: xr.Dataset) -> list[KeyNumber]:
    """Theorem 3.4 from the random init, per depth: final s1, largest s2, alignments, steps."""
    from featurefate.experiments.mechanism import summarize

    out = []
    dim = ds.attrs.get("dim")
    chance = f"{np.sqrt(2 / (np.pi * float(dim))):.2f}" if dim else "?"
    for row in summarize(ds):
        depth = row["depth"]
        out += [
            KeyNumber(
                f"L = {depth}: final s1 of the hidden features, median (largest deviation)",
                f"{row['final_s1_median']:.7f} ({row['final_s1_max_deviation']:.1e})",
                f"|β_s|^((L−1)/L) = {row['theory_s1']:.4g}",
            ),
            KeyNumber(
                f"L = {depth}: largest s2 over the whole path and all instances",
                f"{row['max_s2']:.3g} (s1 at the init: median {row['init_s1_median']:.3g})",
                f"stays at the init scale: c_L γ^(L−1) = {row['theory_init_edge']:.3g}",
            ),
            KeyNumber(
                f"L = {depth}: alignment of the top feature direction with β_s; of adjacent "
                "layers (smallest over instances, at the end)",
                f"1 − {1 - row['final_feature_alignment_min']:.1e}; "
                f"1 − {1 - row['final_layer_alignment_min']:.1e} "
                f"(init: median {row['init_feature_alignment_median']:.2f})",
                f"1 and 1 (random directions: {chance})",
            ),
            KeyNumber(
                f"L = {depth}: steps to converge (most over instances); escape time (median "
                "flow time at which s1 reached half its final value)",
                f"{row['steps_max']} steps, {row['converged']} converged; "
                f"t = {row['escape_time_median']:.3g}",
                _escape_scale(depth, float(ds.attrs.get("init_scale", np.nan)), ds),
            ),
        ]
    return out


def init_scale_key_numbers(ds: xr.Dataset) -> list[KeyNumber]:
    """Where the rank-one theory stops: s2/s1, and the first init scale apart, per method."""
    from featurefate.experiments.init_scale import ATOL, first_departure
    from featurefate.figures.init_scale import points
    from featurefate.figures.phase import _pi_label
    from featurefate.theory.linear import init_feature_edge

    out = []
    depth = int(ds.attrs.get("depth", 2))
    dim = int(ds.attrs.get("dim", 0))
    rcond = float(ds.attrs.get("rcond", 1e-3))
    scales = ds.init_scale.values
    ratio = ds.feature_ratio
    for scale in (scales.min(), scales.max()):
        sim = ratio.sel(init_scale=scale)
        out.append(
            KeyNumber(
                f"s2/s1 of the pretrained features at γ = {scale:g} (median over all instances)",
                f"{float(sim.median()):.3g}",
                f"small-init scale c_L γ^(L−1) = {float(init_feature_edge(depth, scale)):.3g}",
            )
        )
    cells = points(ds)
    # where the rank-one features stop being one feature for the refit, and where the init's own
    # end-to-end vector, |w_0|^2 = D gamma^(2L) in expectation, reaches the endpoints' accuracy
    gamma_rcond = (rcond / float(init_feature_edge(depth, 1.0))) ** (1.0 / (depth - 1))
    gamma_w0 = (ATOL / max(dim, 1)) ** (1.0 / (2 * depth))
    no_scale = "no scale: the theory is the γ → 0 limit (assumption (22))"
    expected = {
        "linear": f"one feature while s2/s1 < rcond = {rcond:g}: up to γ ≈ {gamma_rcond:.1g}",
        "finetune_paper": no_scale,
        "finetune_exact": no_scale,
        "scratch": "α > 1: never (one interpolant); α < 1: once the init's part outside the "
        f"data's row space counts (|w_0|² = D γ^(2L) = {ATOL:g} at γ ≈ {gamma_w0:.2g})",
    }
    what = {
        "linear": "T(linear)",
        "finetune_paper": "T(finetune) against the paper's endpoint",
        "finetune_exact": "T(finetune) against the corrected endpoint",
        "scratch": "the scratch error against eq. (10)",
    }
    for name in ("linear", "finetune_paper", "finetune_exact", "scratch"):
        theory_first = first_departure(ds, name)
        paired_first = first_departure(ds, name, paired=True)
        parts = []
        for cell in cells:
            a = float(theory_first.sel(cell)) if cell else float(theory_first)
            b = float(paired_first.sel(cell)) if cell else float(paired_first)
            label = ", ".join(
                f"θ = {_pi_label(value, 0)}"
                if axis == "theta"
                else f"{'α' if axis == 'alpha' else 'σ'} = {value:g}"
                for axis, value in cell.items()
            )
            first = "none" if np.isnan(a) else f"{a:g}"
            moved = "none" if np.isnan(b) else f"{b:g}"
            parts.append(f"{label}: {first} (paired: {moved})")
        out.append(
            KeyNumber(
                f"first γ where {what[name]} is beyond 3 s.e. + {ATOL:g} of the rank-one theory "
                f"(paired: where it moved from γ = {scales.min():g} by that much)",
                "; ".join(parts),
                expected[name],
            )
        )
    return out


SECTION_NOTES: dict[str, tuple[str, ...]] = {
    "linear_phase": (
        "Simulated T is the instance mean of R_scratch - R_transfer on the same data (paired); "
        "error bars are one standard error. Theory columns are the exact finite-D forms at the "
        "simulated D; the maps' theory panels are the limit D -> infinity.",
        "Fine-tuning is compared with both endpoints: the paper's X^+y + (I-P)beta_s (eq. 16) "
        "and the corrected X^+y + c(I-P)beta_s (docs/theory.md, Fine-tuning).",
        "Linear transfer refits on the significant pretrained features (rcond = 1e-3), not on "
        "the init-scale residual directions (docs/theory.md, Simulation notes).",
        "Init: each figure's title and the pretrained-features line below name the init of this "
        "sweep. A rank-one chain (init = rank_one, the paper config) is rank one by "
        "construction, so its s2 = 0 says nothing about Theorem 3.4; the mechanism section "
        "shows the collapse from the authors' full-rank random init.",
    ),
    "discrepancy": (
        "Transferability here comes from the exact gradient-flow endpoints on drawn data "
        "(no training), at each cell's alpha.",
        "The paper's claim (Fig. 5, Appendix E): dataset distances such as KL or W1 are not "
        "negatively correlated with transferability. It is tested per pair with Spearman's rank "
        "correlation and a 95% bootstrap interval over the grid's cells; it fails where the "
        "whole interval is below 0.",
        "On the paper's grid (unit norms, σ = 0.2, θ ≤ π/2, α from 0.1 to 2) the claim fails: "
        "the distances do not depend on α, and at each fixed α linear transfer "
        "T = R_scratch(α, σ) − sin²θ (eq. 13) falls strictly as θ grows while "
        "KL = (1 − cos θ)/σ² (and W2, W1, Dudley) rises, a rank correlation of exactly −1. "
        "Pooled over α it is weaker (the numbers below say whether it stays below 0). A larger "
        "distance there does mean less transfer. Fine-tuning has T = 0 above α = 1 (no "
        "correlation defined).",
        "On the extended grid (θ up to π, target norms 0.5-2, σ 0.2-1, one α) the targets that "
        "lean against the source (θ near π) are the farthest yet transfer well by linear "
        "transfer (Theorem 2.2), which weakens the correlation for linear transfer; whether its "
        "interval still lies below 0 is stated per pair in the numbers below. Fine-tuning "
        "starts from β_s and loses when the target leans away, so its correlation stays "
        "clearly negative there too.",
        "The Dudley (bounded-Lipschitz) metric is reported in the paper's convention "
        "(‖h‖∞ + Lip(h) ≤ 1, Sriperumbudur et al. 2009) and with |h| ≤ 1, Lip(h) ≤ 1; the first "
        "lies between half the second and the second. Both are bounded (supremum 2), so the "
        "Dudley half of Theorem 2.2 cannot mean 'arbitrarily far': along β_t = −kβ_s both "
        "approach 2 as k grows, while KL and W2 grow without bound. They are estimated on the "
        "coordinates where the laws differ; on all D + 1 coordinates the plug-in saturates.",
    ),
    "linear_phase/finite_source": (
        "Pretraining here is gradient descent from small init on n_s = α_s D noisy source "
        "samples, which ends at the source fit X_s^+ y_s (Theorem 3.5 on the source); every "
        "α_s of a cell uses nested source samples and the same scratch run. Theory columns are "
        "the finite-source forms at the simulated D: exact for the paper's fine-tuning "
        "endpoint, exact on the target side for linear transfer with the source fit's angle "
        "at its typical value, O(1/D) for the corrected endpoint (docs/theory.md, Finite "
        "source data); the map is the limit D -> infinity.",
    ),
    "relu_phase": (
        "Linear transfer refits the output weights by kernel ridge regression (the config's lam) "
        "on the frozen pretrained features; every error is exact, from the kernel.",
        "Scratch training stops at a relative training loss of tol_scratch, so its end point "
        "depends on the step: the paper config's lr 0.25 is within about 2% of the gradient-flow "
        "end point, where the explicit stability limit lr 2 is up to 40% off "
        "(benchmarks/relu_scratch_lr.py). With pretraining_seed >= 0 the teachers and "
        "pretraining are shared along ρ and the scratch networks along n.",
        "The predicted boundary n*(ρ) solves A n^-ν = |P⊥f_t|² with the fit of panel (c); "
        "compare it with the smallest n of each ρ at which T < 0.",
    ),
    "init_scale": (
        "Beyond the paper. Every init scale of a cell trains the same instances from the same "
        "Gaussian draws times γ (the authors' random init), so the change with γ is also "
        "measured paired; the theory is the rank-one (γ → 0) theory at the simulated D.",
        "Scratch training starts from the same init scale as pretraining (one network, with or "
        "without the source); its error is compared with eq. (10) as well.",
        "Linear transfer refits on the features above rcond times the largest (the deep linear "
        "sweeps' convention): once s2/s1 passes rcond the init's residual directions are "
        "refitted too, and linear transfer is no longer the rank-one protocol.",
    ),
    "mechanism": (
        "Population pretraining from the authors' random Gaussian init (hidden layers "
        "γN(0,1)/√D, last layer γN(0,1); full rank) on the dense engine, so every singular "
        "value of the features is free to grow: unlike the rank-one chains of the deep linear "
        "sweeps, whose features are rank one by construction.",
        "The networks are observed at log-spaced gradient-flow times; each curve is drawn "
        "against the flow time it reached (the curvature-adaptive step, eta = 0.1 of the "
        "stability limit, grows on the plateau near the init). A network stops once its loss "
        "is below tol.",
        "c_L γ^(L−1), c_L = (L^L/(L−1)^(L−1))^(1/2), is the largest singular value of the init's "
        "features as D → ∞ (the edge of the Fuss-Catalan law).",
    ),
}
"""Per experiment family: what the report should say about how its numbers were made."""


KEY_NUMBERS: dict[str, Callable[[xr.Dataset], list[KeyNumber]]] = {
    "linear_phase": linear_key_numbers,
    "discrepancy": discrepancy_key_numbers,
    "relu_phase": relu_key_numbers,
    "mechanism": mechanism_key_numbers,
    "init_scale": init_scale_key_numbers,
}
"""Per experiment family: the report's measured-against-predicted numbers."""


# --------------------------------------------------------------------------- report


@dataclass
class ReportSection:
    """One sweep's part of the report."""

    title: str
    store: Path
    figures: list[tuple[str, list[Path]]] = field(default_factory=list)
    numbers: list[KeyNumber] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _cell(text: str) -> str:
    """A Markdown table cell: pipes in the text (norms like |P⊥f_t|²) escaped."""
    return str(text).replace("|", "\\|")


def write_report(
    out_dir,
    sections: list[ReportSection],
    theory_figures: list[tuple[str, Path]],
    *,
    header: str = "",
) -> Path:
    """Write ``out_dir/report.md``: each figure, then its key numbers against the theory."""
    out_dir = Path(out_dir)
    lines = ["# featurefate: the paper's figures, reproduced", ""]
    if header:
        lines += [header, ""]
    for section in sections:
        lines += [f"## {section.title}", "", f"Data: `{section.store.relative_to(out_dir)}`", ""]
        lines += [f"- {note}" for note in section.notes]
        if section.notes:
            lines.append("")
        if section.numbers:
            lines += ["| quantity | simulated | predicted |", "|---|---|---|"]
            lines += [
                "| " + " | ".join(_cell(x) for x in (k.quantity, k.simulated, k.predicted)) + " |"
                for k in section.numbers
            ]
            lines.append("")
        for caption, paths in section.figures:
            pngs = [p for p in paths if p.suffix == ".png"]
            lines += [f"### {caption}", ""]
            lines += [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in pngs]
            lines.append("")
    if theory_figures:
        lines += ["## Theory phase diagrams (D → ∞, high resolution)", ""]
        for caption, png in theory_figures:
            lines += [
                f"### {caption}",
                "",
                f"![{png.stem}]({png.relative_to(out_dir).as_posix()})",
                "",
            ]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


# --------------------------------------------------------------------------- the whole run


def _draw_store_figure(name: str, store, out_dir) -> list[Path]:
    """Task: draw figure ``name`` from a store (runs in a worker process)."""
    from featurefate.sweep import open_results

    return make_figure(name, open_results(store), out_dir)


def _draw_theory_figure(index: int, out_dir, num_alpha: int, num_theta: int) -> list[Path]:
    """Task: draw theory phase diagram ``PAPER_FIGURES[index]`` (runs in a worker process)."""
    return PAPER_FIGURES[index].make(out_dir, num_alpha=num_alpha, num_theta=num_theta)


@dataclass
class ReproduceResult:
    """What :func:`reproduce` made, and the cells that failed (the run still draws the rest)."""

    report: Path
    paths: list[Path]
    failures: list[str]
    interrupted: bool = False


def reproduce(
    scale: str = "quick",
    out="results",
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    configs=None,
    theory_resolution: tuple[int, int] = (400, 300),
    progress: Callable[[str, int, int], None] | None = None,
) -> ReproduceResult:
    """Run the sweeps of ``scale``, draw every figure and write ``out/report.md``.

    Parameters
    ----------
    scale : {"quick", "paper"}
        Which bundled configs to run (:func:`scale_configs`).
    out : path
        Output directory: ``data/<config>.zarr`` stores, ``figures/`` and ``report.md``.
    workers, scheduler
        As :func:`featurefate.sweep.executor`.
    configs : list of path, optional
        Sweep configs to run instead of the scale's bundled ones (the report names the scale
        as ``custom``).
    theory_resolution : (int, int)
        Grid of the high-resolution theory phase diagrams (alpha, theta).
    progress : callable, optional
        ``progress(task, done, total)`` for each sweep (task = config name) and for the figures
        (task = ``"figures"``).

    Returns
    -------
    ReproduceResult
        An interrupted sweep stops the run (figures are not drawn); rerunning resumes it.
    """
    from featurefate import sweep as sweeps
    from featurefate.sweep.executors import check_executor

    scale = v.choice("scale", scale, SCALES)
    num_alpha, num_theta = theory_resolution
    grid(num_alpha=num_alpha, num_theta=num_theta)  # checked before any sweep runs
    if configs is None:
        files = scale_configs(scale)
    else:
        files, scale = [Path(p) for p in configs], "custom"
    configs = [(path.stem, sweeps.load_config(path)) for path in files]
    if len({name for name, _ in configs}) != len(configs):
        raise ValueError("configs must have distinct file names (each names its store)")
    out = Path(out)
    for name, config in configs:  # every store usable (same config, no other writer) first
        sweeps.check_sweep(config, out / "data" / f"{name}.zarr", resume=True)
    check_executor(workers=workers, scheduler=scheduler)  # before anything is created
    figures_dir = out / "figures"
    out.mkdir(parents=True, exist_ok=True)
    stores, failures, paths = [], [], []
    try:
        with sweeps.executor(workers=workers, scheduler=scheduler) as pool:
            for name, config in configs:
                store = out / "data" / f"{name}.zarr"

                def tick(done, total, name=name):
                    if progress is not None:
                        progress(name, done, total)

                report = sweeps.run_sweep(config, store, executor=pool, resume=True, progress=tick)
                failures += [f"{name}: {f.describe()}" for f in report.failed]
                if report.interrupted:  # leave without waiting for the cells in flight
                    raise KeyboardInterrupt
                stores.append((name, config, store))
    except KeyboardInterrupt:
        return ReproduceResult(out / "report.md", paths, failures, interrupted=True)

    # a store without a finished cell has nothing to draw or report: say so, once
    empty = {}
    for name, _, store in stores:
        finished, total = sweeps.cell_counts(store)
        if not finished:
            empty[name] = f"0 of {total} cells finished, no figures or numbers"
            failures.append(f"{name}: store {store} has {empty[name]}")
    drawable = [entry for entry in stores if entry[0] not in empty]

    # every figure in its own task, on local processes (files are written here, also when the
    # cells ran on a cluster)
    jobs = [
        (name, spec.name)
        for name, config, _ in drawable
        for spec in FIGURES.values()
        if spec.experiment == config.experiment
    ]
    num_alpha, num_theta = theory_resolution
    made: dict = {}
    total = len(jobs) + len(PAPER_FIGURES)
    if progress is not None:
        progress("figures", 0, total)
    store_of = {name: store for name, _, store in stores}
    results = {name: sweeps.open_results(store) for name, _, store in drawable}  # warms the cache
    with sweeps.executor(workers=workers if scheduler is None else None) as pool:
        futures = {
            pool.submit(_draw_store_figure, fig, store_of[name], figures_dir): (name, fig)
            for name, fig in jobs
        }
        futures |= {
            pool.submit(_draw_theory_figure, i, figures_dir / "theory", num_alpha, num_theta): (
                "theory",
                i,
            )
            for i in range(len(PAPER_FIGURES))
        }
        for count, future in enumerate(as_completed(futures), start=1):
            made[futures[future]] = future.result()
            if progress is not None:
                progress("figures", count, total)

    sections = []
    for name, config, store in stores:
        section = ReportSection(f"{name}: {config.description or config.experiment}", store)
        if name in empty:
            section.notes.append(f"The store has {empty[name]}.")
            sections.append(section)
            continue
        ds = results[name]
        section.notes.extend(SECTION_NOTES.get(config.experiment, ()))
        if getattr(config.config, "alpha_source", ()):
            section.notes.extend(SECTION_NOTES.get(f"{config.experiment}/finite_source", ()))
        missing = int((~ds.done.values).sum())
        if missing:
            section.notes.append(
                f"{count(missing, 'cell')} failed and {'is' if missing == 1 else 'are'} missing "
                "(NaN) in the figures"
            )
        for job in jobs:
            if job[0] == name and made[job]:
                section.figures.append((FIGURES[job[1]].caption, made[job]))
                paths += made[job]
        numbers = KEY_NUMBERS.get(config.experiment)
        if numbers is not None:
            section.numbers = numbers(ds)
        sections.append(section)
    theory_figures = []
    for i, spec in enumerate(PAPER_FIGURES):
        files = made[("theory", i)]
        paths += files
        theory_figures.append((spec.caption, next(p for p in files if p.suffix == ".png")))
    if scale == "custom":
        again = "`featurefate reproduce --config ...` with the same configs"
    else:
        again = f"`featurefate reproduce --scale {scale} --out {out}`"
    header = (
        f"Scale: **{scale}** ({', '.join(name for name, _, _ in stores)}). Regenerate with "
        f"{again}; a rerun reuses the finished cells in `data/`."
    )
    paths += _write_explorer(out / "explorer", stores)
    header += " The interactive phase-diagram explorer: `explorer/index.html` (opens from disk)."
    report = write_report(out, sections, theory_figures, header=header)
    return ReproduceResult(report, [*paths, report], failures)


def _write_explorer(out_dir, stores) -> list[Path]:
    """The explorer page, with the simulated signs of the first population-pretraining
    ``linear_phase`` store (if any)."""
    from featurefate.explore import write_explorer

    data = next(
        (
            store
            for _, config, store in stores
            if config.experiment == "linear_phase"
            and not getattr(config.config, "alpha_source", ())
        ),
        None,
    )
    return write_explorer(out_dir, data=data)
