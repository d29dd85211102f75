"""The paper's figures as a list of specs; ``featurefate reproduce`` makes each one in turn.

A spec knows its file stem and how to make its files (dataset and figure) in a directory. For now
the list holds the theory phase diagrams of Figs. 1(a), 2, 3(a), 6 and 7; simulation figures
join it as further spec types with the same ``stem`` / ``caption`` / ``make`` shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from featurefate.experiments.theory_phase import grid, phase_diagram, phase_stem
from featurefate.figures.phase import plot_phase_diagram, save_figure


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
"""Every figure ``featurefate reproduce`` makes, in order."""
