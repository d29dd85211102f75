"""MkDocs hook: show the docstrings' Sphinx roles (``:func:`x```, ``:math:`x```) as plain code.

The docstrings are NumPy style with reST roles, which Markdown renders literally as
``:func:<code>x</code>``; this drops the role and keeps the code.
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:math|func|class|mod|meth|attr|data|obj|exc|ref):(<code>)")


def on_page_content(html: str, **kwargs) -> str:
    """Drop the role prefix in front of every inline code span of a rendered page."""
    return _ROLE.sub(r"\1", html)
