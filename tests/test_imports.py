"""Start-up: the command line and the package import only what they need (lazy imports)."""

import subprocess
import sys

import pytest

HEAVY = ("jax", "xarray", "scipy.stats", "matplotlib", "zarr", "dask", "pandas")


def _loaded(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("statement", ["import featurefate.cli", "import featurefate"])
def test_cli_and_package_import_no_heavy_module(statement):
    assert not _loaded(statement) & set(HEAVY)


def test_lazy_names_resolve():
    import featurefate
    from featurefate import theory
    from featurefate.theory import linear

    assert featurefate.transferability is linear.transferability
    assert theory.fit_power_law.__module__ == "featurefate.theory.relu"
    assert set(featurefate.__all__) <= set(dir(featurefate))
    assert set(theory.__all__) <= set(dir(theory))
    assert isinstance(featurefate.__version__, str)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = theory.no_such_name
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = featurefate.no_such_name
    for name in theory.__all__:
        assert getattr(theory, name) is not None
