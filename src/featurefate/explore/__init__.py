"""An interactive phase-diagram explorer: a static page that computes the closed forms in the browser.

:func:`write_explorer` writes ``index.html`` (self-contained: works from ``file://`` with no
network) and ``theory.mjs`` (the closed forms of :mod:`featurefate.theory.linear` as a JavaScript
module, which the page carries inlined); :func:`store_signs` exports a result store's simulated
signs into the page; :func:`serve` serves the folder on 127.0.0.1.
"""

from featurefate.explore.page import write_explorer
from featurefate.explore.serve import serve
from featurefate.explore.signs import store_signs

__all__ = ["serve", "store_signs", "write_explorer"]
