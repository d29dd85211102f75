"""The progress bar of `featurefate sweep|reproduce`: mean rates and times left on a fake clock."""

import io

import pytest
from rich.console import Console

from featurefate.cli import _advance, _cell_progress, _eta, _rate


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def bar():
    """A progress bar as the commands build it, on a clock the test moves."""
    clock = Clock()
    progress = _cell_progress(Console(file=io.StringIO(), width=200))
    progress.get_time = clock  # tasks added from now on read this clock
    return progress, clock


def _task(progress, tasks, name):
    return progress.tasks[tasks[name]]


def test_cells_finishing_together_give_the_mean_rate_not_a_burst(bar):
    # two workers finish their first cells a millisecond apart, 10 s after the sweep started:
    # 2 cells in 10 s, where rich's windowed task.speed reads 1 cell per millisecond
    progress, clock = bar
    tasks = {}
    _advance(progress, tasks, "cells", 0, 10)
    clock.now = 10.0
    _advance(progress, tasks, "cells", 1, 10)
    clock.now = 10.001
    _advance(progress, tasks, "cells", 2, 10)
    task = _task(progress, tasks, "cells")
    assert task.speed > 100  # the estimate the bar showed before
    assert _rate(task) == " 0.20 cells/s"
    assert _eta(task) == "0:00:41"  # 8 cells at 10.001 / 2 s each, rounded up


def test_cells_slower_than_the_speed_window_still_have_a_rate(bar):
    # one cell a minute: rich keeps 30 s of samples and has no speed at all
    progress, clock = bar
    tasks = {}
    _advance(progress, tasks, "cells", 0, 5)
    for done in (1, 2):
        clock.now = 60.0 * done
        _advance(progress, tasks, "cells", done, 5)
    task = _task(progress, tasks, "cells")
    assert task.speed is None
    assert _rate(task) == " 1.00 cells/min"
    assert _eta(task) == "0:03:00"


def test_before_the_first_cell_and_after_the_last(bar):
    progress, clock = bar
    tasks = {}
    _advance(progress, tasks, "figures", 0, 4)
    clock.now = 5.0
    task = _task(progress, tasks, "figures")
    assert _rate(task) == "  -   figures/s" and _eta(task) == "-:--:--"
    _advance(progress, tasks, "figures", 4, 4)
    clock.now = 500.0  # the rate of a finished task stays that of its run
    assert _rate(task) == " 0.80 figures/s" and _eta(task) == "0:00:00"


def test_the_bar_shows_the_rate_and_the_time_left(bar):
    progress, clock = bar
    tasks = {}
    _advance(progress, tasks, "quick-linear", 0, 160)
    clock.now = 8.0
    _advance(progress, tasks, "quick-linear", 40, 160)
    console = Console(file=io.StringIO(), width=200)
    console.print(progress.make_tasks_table(progress.tasks))
    line = console.file.getvalue()
    assert "40/160" in line and " 5.00 cells/s" in line and "ETA 0:00:24" in line
