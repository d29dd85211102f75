"""Test-session setup: JAX's compilation cache in a private temporary directory.

Set before any test module imports featurefate (and inherited by the processes tests start), so
that the tests neither read nor fill the user's cache (featurefate._jax).
"""

import os
import shutil
import tempfile

_CACHE = tempfile.mkdtemp(prefix="featurefate-test-jax-cache-")
os.environ["FEATUREFATE_JAX_CACHE"] = _CACHE


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)
