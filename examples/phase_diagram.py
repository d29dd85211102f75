"""Phase diagrams of the transferability T over (alpha, theta) for three transfer methods.

Run: ``python examples/phase_diagram.py [OUT_DIR]`` (default: a new temporary directory).
Writes ``OUT_DIR/phase_diagrams.png``: linear transfer (eq. 13), ridge linear transfer with
lam = 0.1 (eqs. 14-15) and fine-tuning to the corrected endpoint (docs/theory.md), all at
sigma = 0.2 in the limit D -> infinity, on one colour scale. Red: negative transfer.
"""

import sys
import tempfile
from pathlib import Path

from matplotlib.figure import Figure

from featurefate.experiments.theory_phase import phase_diagram
from featurefate.figures.phase import plot_phase_diagram

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="featurefate-"))
out.mkdir(parents=True, exist_ok=True)

panels = [
    ("linear transfer", phase_diagram("linear", 0.2)),
    ("ridge, λ = 0.1", phase_diagram("ridge", 0.2, lam=0.1)),
    ("fine-tuning, corrected endpoint", phase_diagram("finetune", 0.2, variant="exact")),
]
fig = Figure(figsize=(15, 4.2), layout="constrained")
axes = fig.subplots(1, 3, sharey=True)
for ax, (title, ds) in zip(axes, panels, strict=True):
    negative = float((ds.theory_transferability < 0).mean())
    print(f"{title:<34} negative transfer on {negative:.1%} of the (alpha, theta) grid")
    # vlim: one colour scale for the three panels, so that their colours compare
    plot_phase_diagram(ds, ax=ax, title=title, vlim=0.8)
for ax in axes[1:]:
    ax.set_ylabel("")
for colorbar in [ax for ax in fig.axes if ax not in axes][:-1]:  # the scales are equal: keep one
    colorbar.remove()
fig.suptitle("Transferability T over (α, θ): theory in the limit D → ∞, label noise σ = 0.2")
path = out / "phase_diagrams.png"
fig.savefig(path, dpi=120)
print(path)
