"""The explorer page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``make browser-deps``) driven by Selenium.

Loads the page from file://, moves sliders, checks that the picture changes and that the console
stays free of errors, hovers for the readout, and measures the recompute time of the 400 x 400
diagram on slider moves (< 50 ms). ``FEATUREFATE_SCREENSHOT=docs/explorer.png`` (``make
screenshot``) keeps the final screenshot there.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path

import pytest

from featurefate.explore import write_explorer

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless Chromium is not installed (make browser-deps: chromium, chromium-driver)",
)

PLOT = (78, 18, 400, 400)  # the diagram's plot area in its canvas: x, y, width, height
SNAPSHOT = """
const [name, x, y, w, h] = arguments;
const data = document.getElementById(name).getContext("2d").getImageData(x, y, w, h).data;
const before = (window.__snapshots ||= {})[name];
window.__snapshots[name] = data;
if (!before) return null;
let changed = 0;
for (let k = 0; k < data.length; k += 4) {
  if (data[k] !== before[k] || data[k + 1] !== before[k + 1] || data[k + 2] !== before[k + 2]) changed++;
}
return changed / (data.length / 4);
"""
RED = """
const [x, y] = arguments;
const d = document.getElementById("diagram").getContext("2d").getImageData(x - 1, y - 1, 3, 3).data;
let n = 0;
for (let k = 0; k < d.length; k += 4) if (d[k] > d[k + 1] + 60 && d[k] > d[k + 2] + 60) n++;
return n;
"""


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _errors(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def _changed(driver, name="diagram") -> float:
    box = PLOT if name == "diagram" else (0, 0, 460, 330)
    return driver.execute_script(SNAPSHOT, name, *box)


def _keys(driver, element_id, key, times):
    element = driver.find_element("id", element_id)
    element.send_keys(key * times)


def _select(driver, element_id, value):
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(value)


def _slider_times(driver, element_id, key, moves) -> list[float]:
    """Recompute times (ms) of ``moves`` single steps of a slider, each a real key press."""
    element = driver.find_element("id", element_id)
    times = []
    for _ in range(moves):
        count = driver.execute_script("return window.explorer.timing.history.length")
        element.send_keys(key)
        after, last = driver.execute_script(
            "const h = window.explorer.timing.history; return [h.length, h[h.length - 1]];"
        )
        assert after == count + 1  # exactly one recompute per move
        times.append(last)
    return times


def test_explorer_in_headless_chromium(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver = browser
    page = write_explorer(tmp_path / "page")[0]
    started = time.perf_counter()
    driver.get(page.as_uri())
    assert driver.execute_script("return typeof window.explorer") == "object"
    assert _errors(driver) == []
    assert "recomputed in" in driver.find_element("id", "status").text
    _changed(driver)
    _changed(driver, "slice")
    # the limit at sigma = 0.2: T < 0 (red) at theta = 90 degrees, alpha = 0.5 and 1.75, T > 0
    # at theta = 0, alpha = 0.5
    assert driver.execute_script(RED, PLOT[0] + 100, PLOT[1] + 2) == 9
    assert driver.execute_script(RED, PLOT[0] + 350, PLOT[1] + 2) == 9
    assert driver.execute_script(RED, PLOT[0] + 100, PLOT[1] + PLOT[3] - 2) == 0

    # every control moves the picture
    moves = [
        ("sigma", lambda: _keys(driver, "sigma", Keys.ARROW_RIGHT, 10)),
        ("method ridge", lambda: _select(driver, "method", "ridge")),
        ("lambda", lambda: _keys(driver, "lam", Keys.ARROW_RIGHT, 30)),
        ("source norm", lambda: _keys(driver, "source-norm", Keys.ARROW_LEFT, 6)),
        ("depth", lambda: _select(driver, "depth", "3")),
        ("finite D", lambda: driver.find_element("id", "finite").click()),
        ("D", lambda: _keys(driver, "dim", Keys.ARROW_LEFT, 60)),
        ("target norm", lambda: _keys(driver, "target-norm", Keys.ARROW_RIGHT, 4)),
        ("fine-tuning, paper", lambda: _select(driver, "method", "finetune-paper")),
        ("alpha range", lambda: _select(driver, "alpha-max", "3")),
    ]
    for name, move in moves:
        move()
        assert _changed(driver) > 0.01, name
    assert driver.find_element("id", "sigma-out").text == "0.30"
    assert driver.find_element("id", "dim-out").text == "25"
    _keys(driver, "slice-theta", Keys.ARROW_UP, 20)
    assert _changed(driver, "slice") > 0.01
    assert "θ = 55.0°" in driver.execute_script(
        "return document.getElementById('slice').getAttribute('aria-label') + ' ' + "
        "document.getElementById('slice-theta-out').textContent.replace(/^/, 'θ = ')"
    )

    # hover: the errors and T at the pointer
    ActionChains(driver).move_to_element_with_offset(
        driver.find_element("id", "diagram"), -60, -80
    ).perform()
    time.sleep(0.2)
    readout = driver.find_element("id", "readout").text
    assert "E[R_scratch]" in readout and "T " in readout and "n = α D" in readout

    # the corrected fine-tuning at finite D: computed cell by cell without blocking the page
    print(f"controls checked at {time.perf_counter() - started:.1f} s")
    _select(driver, "depth", "2")
    _select(driver, "method", "finetune-exact")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = driver.find_element("id", "status").text
        if "(done)" in status or int(status.split(" of ")[0].split()[-1] or 0) > 80:
            break
        time.sleep(0.2)
    assert "quadrature" in status and _changed(driver) > 0.01

    print(f"corrected fine-tuning at finite D checked at {time.perf_counter() - started:.1f} s")
    # recompute time of the 400 x 400 diagram on slider moves, in three settings
    timings = {}
    driver.find_element("id", "finite").click()  # back to the limit
    for method, finite in (("linear", False), ("ridge", True), ("finetune-exact", False)):
        _select(driver, "method", method)
        if finite != driver.find_element("id", "finite").is_selected():
            driver.find_element("id", "finite").click()
        if finite:
            _keys(driver, "dim", Keys.ARROW_RIGHT, 50)  # D = 79
        times = _slider_times(driver, "sigma", Keys.ARROW_RIGHT, 10)
        times += _slider_times(driver, "sigma", Keys.ARROW_LEFT, 10)
        timings[f"{method}{', finite D' if finite else ''}, moving sigma"] = times
        if method == "ridge":  # new chi-square moments for every column at each move
            times = _slider_times(driver, "lam", Keys.ARROW_RIGHT, 10)
            times += _slider_times(driver, "lam", Keys.ARROW_LEFT, 10)
            timings["ridge, finite D, moving lambda"] = times
    for name, times in timings.items():
        median, worst = statistics.median(times), max(times)
        print(
            f"400 x 400 recompute, {name}: median {median:.1f} ms, max {worst:.1f} ms ({len(times)} moves)"
        )
        assert median < 50.0, (name, times)
    assert _errors(driver) == []

    # the picture for the docs: linear transfer, sigma = 0.2, the limit
    if driver.find_element("id", "finite").is_selected():
        driver.find_element("id", "finite").click()
    _select(driver, "method", "linear")
    _select(driver, "alpha-max", "2")
    driver.execute_script(
        "for (const [id, v] of [['sigma', 0.2], ['source-norm', 1], ['target-norm', 1], "
        "['slice-theta', 45]]) document.getElementById(id).value = v;"
        "window.explorer.recompute();"
    )
    ActionChains(driver).move_to_element_with_offset(  # hover at alpha = 0.65, theta = 72 deg
        driver.find_element("id", "diagram"), PLOT[0] + 130 - 270, PLOT[1] + 80 - 235
    ).perform()
    time.sleep(0.2)
    assert "negative transfer" in driver.find_element("id", "readout").text
    target = Path(os.environ.get("FEATUREFATE_SCREENSHOT") or tmp_path / "explorer.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(target))
    assert _errors(driver) == []
    print(f"browser test wall time {time.perf_counter() - started:.1f} s; screenshot {target}")


def test_simulated_signs_are_drawn(browser, tmp_path):
    """A page with exported signs draws a marker at each simulated cell (synthetic values)."""
    driver = browser
    point = {"alpha": 0.5, "theta": 1.2, "sigma": 0.2, "T": -0.4, "se": 0.01, "sign": -1}
    data = {
        "dim": 40,
        "depth": 2,
        "source_norm": 1.0,
        "target_norm": 1.0,
        "instances": 3,
        "sigma": [0.2],
        "lam": [],
        "points": {"linear": [point, {**point, "theta": 0.3, "T": 0.5, "sign": 1}]},
    }
    page = write_explorer(tmp_path, data=data)[0]
    driver.get(page.as_uri())
    assert _errors(driver) == []
    info = driver.find_element("id", "data-info").text
    assert "D = 40" in info and "σ = 0.2" in info
    x = PLOT[0] + 0.5 / 2.0 * PLOT[2]
    y_blue = PLOT[1] + PLOT[3] * (1 - 0.3 / (3.141592653589793 / 2))
    blue = driver.execute_script(
        "const d = document.getElementById('diagram').getContext('2d')"
        ".getImageData(arguments[0], arguments[1], 1, 1).data; return Array.from(d);",
        round(x),
        round(y_blue),
    )
    assert blue[:3] == [33, 102, 172]  # the up-triangle's fill, over a blue region
    before = _changed(driver)
    driver.find_element("id", "show-data").click()
    assert before is None and _changed(driver) > 0.0001
