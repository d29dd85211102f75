"""Wall time of the paper-scale deep-linear sweep (configs/paper-linear.toml) on this machine.

``--full`` runs the whole sweep (800 cells) into a resumable store and prints its wall time.
By default it runs one row per alpha instead (theta nearest pi/4, sigma = 0.2: 20 cells, every
alpha of the grid, since the cost of a cell depends mostly on alpha) and projects the full sweep:
the sum over alpha of the measured cell time, times the cells per alpha, divided by the workers.
Per-cell times come from the store's ``cell_wall_time``. Before the timed run every worker
computes one throwaway cell (D = 500 at alpha = 0.05 and 0.15, into a temporary store), so that
the compilations of its first cell (a few seconds, once per worker in a whole sweep) do not
inflate the projection from 20 cells. Interrupt and rerun to resume.

    python benchmarks/paper_sweep_bench.py [--full] [--workers N] [--store DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import numpy as np

from featurefate import sweep
from featurefate.reproduce import bundled_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="run all 800 cells")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--store", default=None, help="store path (default: under /tmp)")
    args = parser.parse_args()

    paper = sweep.load_config(bundled_config("paper-linear"))
    if args.full:
        config, name = paper, "full"
    else:
        theta = paper.grid["theta"][
            int(np.argmin(np.abs(np.array(paper.grid["theta"]) - np.pi / 4)))
        ]
        grid = {**paper.grid, "theta": (theta,), "sigma": (0.2,)}
        config, name = dataclasses.replace(paper, grid=grid), "row"
    store = args.store or f"/tmp/featurefate-paper-{name}.zarr"
    workers = args.workers or sweep.default_workers()

    def progress(done, total):
        print(f"\r{done}/{total} cells, {time.perf_counter() - start:7.0f} s", end="", flush=True)

    warm = dataclasses.replace(
        paper, grid={**config.grid, "alpha": (0.05, 0.15)[:workers], "sigma": (0.2,)}
    )
    warm = dataclasses.replace(warm, grid={**warm.grid, "theta": warm.grid["theta"][:1]})
    with tempfile.TemporaryDirectory() as scratch, sweep.executor(workers=workers) as pool:
        sweep.run_sweep(warm, f"{scratch}/warm.zarr", executor=pool)
        start = time.perf_counter()
        report = sweep.run_sweep(config, store, executor=pool, resume=True, progress=progress)
    print()
    ds = sweep.open_results(store)
    seconds = ds.cell_wall_time
    print(
        f"paper-scale deep-linear sweep, {name}: D = {paper.config.dim}, "
        f"{paper.config.n_instances} instances, {workers} workers"
    )
    print(
        f"this run: {report.completed} cells computed, {report.skipped} reused, "
        f"{len(report.failed)} failed, {report.wall_time:.0f} s"
    )
    print(f"{'alpha':>6}{'s/cell':>9}{'scratch steps':>15}{'converged':>11}")
    per_alpha = seconds.mean([d for d in seconds.dims if d != "alpha"])
    for alpha in ds.alpha.values:
        cell = ds.sel(alpha=alpha)
        print(
            f"{alpha:>6.2f}{float(per_alpha.sel(alpha=alpha)):>9.1f}"
            f"{int(cell.steps_scratch.max()):>15d}"
            f"{int(cell.converged_scratch.sum()):>6d}/{int(cell.converged_scratch.size)}"
        )
    cells_per_alpha = np.prod(paper.shape) / paper.shape[0]
    projected = float(per_alpha.sum()) * cells_per_alpha / workers
    print(f"sum of cell times: {float(seconds.sum()):.0f} s over {int(ds.done.sum())} cells")
    if not args.full:
        print(
            f"projected full sweep ({int(np.prod(paper.shape))} cells, {workers} workers): "
            f"{projected:.0f} s = {projected / 3600:.1f} h"
        )


if __name__ == "__main__":
    main()
