"""Cold and warm wall time of one ``featurefate simulate point`` process, and of ``--help``.

Cold: the first process, with an empty JAX compilation cache (a fresh temporary directory in
``FEATUREFATE_JAX_CACHE``), so it compiles every program. Warm: the same command again in a new
process, the cache now filled. ``--no-cache`` runs both with the cache off (the behaviour
before the cache). Every other setting (threads, load) is the caller's; note ``uptime``.

    python benchmarks/cold_start_bench.py [--repeats N] [--no-cache] [-- simulate-point options]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

COMMAND = [
    "simulate",
    "point",
    "--alpha",
    "0.5",
    "--theta",
    "0.7854",
    "--sigma",
    "0.2",
    "--dim",
    "400",
    "--instances",
    "20",
]


def wall(args, env) -> float:
    """Seconds one ``python -m featurefate ARGS`` process takes, start to exit."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "featurefate", *args], env=env, check=True, capture_output=True
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="cold/warm pairs (best of)")
    parser.add_argument("--no-cache", action="store_true", help="FEATUREFATE_JAX_CACHE=0")
    parser.add_argument("options", nargs="*", help="simulate point options instead of the default")
    args = parser.parse_args()
    command = ["simulate", "point", *args.options] if args.options else COMMAND
    cold, warm = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "FEATUREFATE_JAX_CACHE": "0" if args.no_cache else cache}
            cold.append(wall(command, env))
            warm.append(wall(command, env))
    help_time = min(wall(["--help"], dict(os.environ)) for _ in range(3))
    print(f"featurefate {' '.join(command)}")
    print(f"cache: {'off' if args.no_cache else 'on (fresh directory per pair)'}")
    print(
        f"cold {min(cold):6.2f} s   warm {min(warm):6.2f} s   cold / warm {min(cold) / min(warm):.2f}"
    )
    print(f"featurefate --help {help_time:.2f} s")
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
