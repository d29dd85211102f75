"""Build the explorer page: the template with the JavaScript modules and the data inlined."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import featurefate

_MODULES = {"/*@THEORY@*/": "theory.mjs", "/*@CONTOUR@*/": "contour.mjs"}
_EXPORT = re.compile(r"^export (?=(const|function|let|class) )", re.MULTILINE)


def _asset(name: str) -> str:
    return resources.files("featurefate.explore").joinpath(name).read_text(encoding="utf-8")


def _inline(source: str) -> str:
    """A module's code as plain script: ``export`` dropped (a page opened from ``file://`` may not
    import a module; Chromium blocks it as a cross-origin request)."""
    if re.search(r"^\s*import\b", source, re.MULTILINE):
        raise ValueError("an inlined module must not import another")
    return _EXPORT.sub("", source)


def _json_for_script(value) -> str:
    """JSON text safe inside a ``<script>`` element (no ``</`` to end it, no bare non-finite)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def render_page(data: dict | None = None) -> str:
    """The page's HTML with ``theory.mjs``, ``contour.mjs`` and ``data`` (or null) inlined."""
    html = _asset("index.html")
    for marker, name in _MODULES.items():
        if html.count(marker) != 1:
            raise RuntimeError(f"the page template must hold {marker} once")
        html = html.replace(marker, _inline(_asset(name)))
    html = html.replace("@DATA@", _json_for_script(data))
    return html.replace("@VERSION@", featurefate.__version__)


def write_explorer(out, *, data=None) -> list[Path]:
    """Write the explorer into ``out``: ``index.html`` and ``theory.mjs``.

    ``index.html`` is self-contained (its scripts inlined; nothing loaded from the network) and
    works from ``file://``. ``theory.mjs`` is the ES module the page computes with, for use
    elsewhere: ``transferability(method, alpha, theta, sigma, {lam, variant, dim, sourceNorm,
    targetNorm, depth})`` and the error functions, named like :mod:`featurefate.theory.linear`.

    Parameters
    ----------
    out : path
        Output directory (created if missing).
    data : path or dict, optional
        A ``linear_phase`` result store whose simulated signs the page overlays
        (:func:`featurefate.explore.store_signs`), or that function's output.

    Returns
    -------
    list of Path
        The files written.
    """
    if data is not None and not isinstance(data, dict):
        from featurefate.explore.signs import store_signs

        data = store_signs(data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.html"
    page.write_text(render_page(data), encoding="utf-8")
    module = out / "theory.mjs"
    module.write_text(_asset("theory.mjs"), encoding="utf-8")
    return [page, module]
