"""Figures: one function per figure, a labelled dataset in, a matplotlib ``Figure`` out.

Nothing here touches pyplot's global state: figures are built with :class:`matplotlib.figure.Figure`
and saved with :func:`save_figure`, so they are safe headless and in tests.

- :mod:`~featurefate.figures.phase`: theory phase diagrams (Figs. 1(a), 2, 3(a), 6, 7);
- :mod:`~featurefate.figures.linear`: deep linear sweeps against theory (Figs. 1-3, 6, 7);
- :mod:`~featurefate.figures.mechanism`: Theorem 3.4 along pretraining from the random init;
- :mod:`~featurefate.figures.discrepancy`: dataset distances against transferability (Fig. 5);
- :mod:`~featurefate.figures.relu`: the two-layer ReLU teacher-student (Fig. 4).
"""

from featurefate.figures.discrepancy import plot_fig5
from featurefate.figures.linear import (
    plot_finetune,
    plot_linear_transfer,
    plot_ridge,
)
from featurefate.figures.mechanism import plot_mechanism
from featurefate.figures.phase import plot_phase_diagram, save_figure
from featurefate.figures.relu import plot_relu_figure

__all__ = [
    "plot_fig5",
    "plot_finetune",
    "plot_linear_transfer",
    "plot_mechanism",
    "plot_phase_diagram",
    "plot_relu_figure",
    "plot_ridge",
    "save_figure",
]
