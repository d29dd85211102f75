"""Wall time of ``featurefate reproduce`` (the target: quick scale under 3 minutes on 2 cores).

Runs the whole reproduction into a fresh temporary directory, as ``make reproduce`` does from a
warm venv, and prints the time of each sweep, of the figures and the total.

    python benchmarks/reproduce_bench.py [--scale quick] [--workers N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from featurefate.reproduce import reproduce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="quick", choices=("quick", "paper"))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--keep", default=None, help="write here instead of a temporary dir")
    args = parser.parse_args()

    marks: dict[str, list[float]] = {}
    start = time.perf_counter()

    def progress(task, done, total):
        now = time.perf_counter() - start
        marks.setdefault(task, [now, now, total])
        marks[task][1] = now

    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or tmp
        result = reproduce(args.scale, out, workers=args.workers, progress=progress)
        total = time.perf_counter() - start
    print(f"featurefate reproduce --scale {args.scale} on {os.cpu_count()} cores")
    print(f"{'stage':<24}{'items':>7}{'start s':>10}{'end s':>10}{'took s':>10}")
    for task, (first, last, items) in marks.items():
        print(f"{task:<24}{items:>7}{first:>10.1f}{last:>10.1f}{last - first:>10.1f}")
    print(f"{'total':<24}{'':>7}{'':>10}{total:>10.1f}")
    print(f"failed cells: {len(result.failures)}")


if __name__ == "__main__":
    main()
