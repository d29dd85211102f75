"""featurefate._jax: float64, and where the persistent compilation cache lives."""

from pathlib import Path

import pytest

from featurefate import _jax


def test_float64_is_on():
    assert _jax.jnp.ones(2).dtype == _jax.jnp.float64


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"FEATUREFATE_JAX_CACHE": "/data/jc"}, Path("/data/jc")),
        ({"FEATUREFATE_JAX_CACHE": "/data/jc", "XDG_CACHE_HOME": "/x"}, Path("/data/jc")),
        ({"FEATUREFATE_JAX_CACHE": ""}, None),
        ({"FEATUREFATE_JAX_CACHE": " 0 "}, None),
        ({"XDG_CACHE_HOME": "/x"}, Path("/x/featurefate/jax")),
        ({}, Path.home() / ".cache" / "featurefate" / "jax"),
        ({"XDG_CACHE_HOME": ""}, Path.home() / ".cache" / "featurefate" / "jax"),
    ],
)
def test_cache_dir_follows_the_environment(environ, expected):
    assert _jax.cache_dir(environ) == expected


def test_tests_use_a_private_cache():
    """conftest.py points the cache away from the user's: this session's JAX uses it."""
    configured = _jax.jax.config.jax_compilation_cache_dir
    assert configured == str(_jax.cache_dir())
    assert "featurefate-test-jax-cache-" in configured
    assert not configured.startswith(str(_jax.cache_dir({})))
