"""A tiny sweep end to end: a bundled config into a result store, then a figure from it.

Run: ``python examples/tiny_sweep.py [OUT_DIR]`` (default: a new temporary directory).
Runs the bundled ``tiny-linear`` config (6 cells: alpha x theta, D = 12, 4 instances) on one
local worker into ``OUT_DIR/tiny.zarr``, reads it back as an xarray Dataset, prints the
simulated and predicted transferability of linear transfer per cell, and draws
``OUT_DIR/tiny_sweep.png``. Running it again on the same OUT_DIR resumes (nothing to do).
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from featurefate import sweep


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    store = out / "tiny.zarr"

    config = sweep.load_config("tiny-linear")  # a bundled config's name, or a path to a TOML file
    with sweep.executor(workers=1) as pool:
        report = sweep.run_sweep(config, store, executor=pool, resume=store.exists())
    print(f"{report.completed} cells computed, {report.skipped} already done, of {report.total}")

    ds = sweep.open_results(store)  # dims alpha, theta, sigma, instance, lam
    t = ds.transferability_linear.isel(sigma=0)
    se = ds.transferability_linear_stderr.isel(sigma=0)
    theory = ds.theory_transferability_linear.isel(sigma=0)
    print(f"sigma = {float(ds.sigma[0])}, D = {config.config.dim}")
    print("alpha  theta/pi  simulated T        theory T")
    for alpha in ds.alpha.values:
        for theta in ds.theta.values:
            cell = {"alpha": alpha, "theta": theta}
            print(
                f"{alpha:5.2f}  {theta / np.pi:8.3f}  {float(t.sel(cell)):+.3f} ± {float(se.sel(cell)):.3f}"
                f"   {float(theory.sel(cell)):+.3f}"
            )

    dim = config.config.dim
    fig = Figure(figsize=(7.5, 4), layout="constrained")
    ax = fig.subplots()
    colours = ["tab:blue", "tab:orange", "tab:green"]
    for theta, colour in zip(ds.theta.values, colours, strict=False):
        label = f"θ = {theta / np.pi:.3g}π"
        ax.errorbar(
            ds.alpha - 0.02, t.sel(theta=theta), yerr=se.sel(theta=theta), fmt="o",
            color=colour, capsize=3, label=f"{label}: simulated ± 1 s.e.",
        )  # fmt: skip
        ax.plot(
            ds.alpha + 0.02, theory.sel(theta=theta), "x", color=colour, ms=9, mew=2,
            label=f"{label}: theory at D = {dim}",
        )  # fmt: skip
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(ds.alpha.values)
    ax.set_xlabel("α = n / D")
    ax.set_ylabel("linear transfer T = R_scratch − R_transfer")
    ax.set_title(f"Sweep 'tiny-linear' (D = {dim}, {ds.sizes['instance']} instances), σ = 0.2")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    path = out / "tiny_sweep.png"
    fig.savefig(path, dpi=120)
    print(path)


if __name__ == "__main__":  # the sweep's worker processes import this file: run only here
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="featurefate-")))
