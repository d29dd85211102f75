"""Figures: one function per figure, a labelled dataset in, a matplotlib ``Figure`` out.

Nothing here touches pyplot's global state: figures are built with :class:`matplotlib.figure.Figure`
and saved with :func:`save_figure`, so they are safe headless and in tests.
"""

from featurefate.figures.phase import plot_phase_diagram, save_figure

__all__ = ["plot_phase_diagram", "save_figure"]
