"""A small simulation against the theory: trained deep linear networks at a few alpha.

Run: ``python examples/simulate_vs_theory.py [OUT_DIR]`` (default: a new temporary directory).
At each alpha one cell pretrains 2-layer linear networks of width D = 40 on the source teacher,
then trains from scratch on n = alpha * D target samples, refits the last layer (linear
transfer) and fine-tunes, over 24 instances, and compares the measured transferability
T = R_scratch - R_transfer (eq. 7, paired over instances, ± one standard error) with the exact
finite-size theory at the same D. Writes ``OUT_DIR/simulate_vs_theory.png``.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import featurefate as ff
from featurefate.experiments.linear_phase import LinearPhaseConfig, run_cell

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="featurefate-"))
out.mkdir(parents=True, exist_ok=True)

dim, theta, sigma = 40, np.pi / 4, 0.2
config = LinearPhaseConfig(dim=dim, init="rank_one", n_instances=24, lam=(0.1,))
alphas = [0.25, 0.5, 0.75, 1.25, 1.75]

print(f"D = {dim}, theta = pi/4, sigma = {sigma}, {config.n_instances} instances")
print("alpha  method    simulated T          theory T (D = 40)")
measured = {"linear": [], "finetune": []}
for alpha in alphas:
    ds = run_cell(config, {"alpha": alpha, "theta": theta, "sigma": sigma}, seed=1)
    for method, theory in [("linear", "linear"), ("finetune", "finetune_exact")]:
        t = float(ds[f"transferability_{method}"])
        se = float(ds[f"transferability_{method}_stderr"])
        t_theory = float(ds[f"theory_transferability_{theory}"])
        measured[method].append((t, se))
        print(f"{alpha:5.2f}  {method:<8}  {t:+.4f} ± {se:.4f}    {t_theory:+.4f}")

fig = Figure(figsize=(7, 4.2), layout="constrained")
ax = fig.subplots()
grid = np.concatenate([np.linspace(0.1, 0.95, 60), np.linspace(1.05, 2.0, 60)])
for (method, theory_kwargs), colour in zip(
    [("linear", {}), ("finetune", {"variant": "exact"})], ["tab:red", "tab:blue"], strict=True
):
    curve = ff.transferability(method, grid, theta, sigma, dim=dim, **theory_kwargs)
    below, above = grid < 1, grid > 1  # the curve diverges at alpha = 1: draw each side alone
    for side in (below, above):
        ax.plot(grid[side], curve[side], color=colour, lw=1.5)
    t, se = np.array(measured[method]).T
    ax.errorbar(alphas, t, yerr=se, fmt="o", color=colour, capsize=3, label=f"{method}: simulated")
    ax.plot([], [], color=colour, label=f"{method}: theory at D = {dim}")
ax.axhline(0, color="black", lw=0.8)
ax.set_ylim(-1.2, 1.2)
ax.set_xlabel("α = n / D")
ax.set_ylabel("transferability T = R_scratch − R_transfer")
ax.set_title(f"Trained networks against theory: L = 2, D = {dim}, θ = π/4, σ = {sigma}")
ax.legend(loc="lower left", fontsize=9)
path = out / "simulate_vs_theory.png"
fig.savefig(path, dpi=120)
print(path)
