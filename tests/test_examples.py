"""Every script in examples/ runs to completion, so that none of them can rot.

Each runs in its own process with a fresh output directory as its one argument. A script that
writes a figure prints its path last; that file must exist and be a PNG. A script whose source
holds the line ``# example: slow`` is marked ``slow``: skipped by default (CI), run with
``pytest -m slow``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
SLOW_MARKER = "# example: slow"
TIMEOUT_S = 300  # each takes seconds alone; generous for a loaded 2-core machine


def _param(path: Path):
    slow = any(line.strip() == SLOW_MARKER for line in path.read_text().splitlines())
    return pytest.param(path, id=path.name, marks=[pytest.mark.slow] if slow else [])


def test_examples_are_found():
    assert len(EXAMPLES) >= 3, EXAMPLES


@pytest.mark.parametrize("script", [_param(path) for path in EXAMPLES])
def test_example_runs(script, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if part
    )
    done = subprocess.run(
        [sys.executable, str(script), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip(), "an example should print what it computed"
    last = done.stdout.strip().splitlines()[-1]
    if last.endswith(".png"):
        figure = Path(last)
        assert figure.is_relative_to(out), f"{script.name} wrote outside its output directory"
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_slow_marker_is_honoured(tmp_path):
    marked = tmp_path / "heavy.py"
    marked.write_text('"""A heavy example."""\n\n# example: slow\nprint("hi")\n')
    plain = tmp_path / "light.py"
    plain.write_text('print("hi")\n')
    assert [mark.name for mark in _param(marked).marks] == ["slow"]
    assert not _param(plain).marks
