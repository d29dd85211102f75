"""The theory phase-diagram dataset: grid, values, labels and attrs."""

import numpy as np
import pytest

import featurefate
from featurefate.experiments.theory_phase import grid, phase_diagram, phase_stem, theory_point
from featurefate.theory import (
    finetune_break_even_angle,
    finetune_error,
    linear_transfer_error,
    negative_transfer_regions,
    ridge_transfer_error,
    scratch_error,
    transferability,
)


def test_grid_alpha_multiples_and_theta_endpoints():
    alpha, theta = grid(2.0, 400, 300)
    assert alpha.shape == (400,) and theta.shape == (300,)
    assert alpha[0] == 2.0 / 400 and alpha[-1] == 2.0
    assert alpha[199] == 1.0  # the double-descent point lies on the grid exactly
    assert theta[0] == 0.0 and theta[-1] == np.pi / 2


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"alpha_max": 0.0}, "alpha_max"),
        ({"num_alpha": 0}, "num_alpha"),
        ({"num_theta": 1}, "num_theta"),
        ({"theta_max": 4.0}, "theta_max"),
    ],
)
def test_grid_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        grid(**kwargs)


@pytest.mark.parametrize(
    ("method", "options", "transfer"),
    [
        ("linear", {}, lambda a, t, s: linear_transfer_error(a, t, s)),
        ("ridge", {"lam": 0.1}, lambda a, t, s: ridge_transfer_error(a, t, s, 0.1)),
        ("finetune", {}, lambda a, t, s: finetune_error(a, t, s, variant="paper")),
        (
            "finetune",
            {"variant": "exact"},
            lambda a, t, s: finetune_error(a, t, s, variant="exact"),
        ),
    ],
)
def test_values_equal_the_theory(method, options, transfer):
    alpha, theta = grid(2.0, 40, 20)
    ds = phase_diagram(method, 0.2, alpha=alpha, theta=theta, **options)
    assert ds["theory_transferability"].dims == ("alpha", "theta")
    a, t = alpha[:, None], theta[None, :]
    np.testing.assert_array_equal(
        ds["theory_transferability"], transferability(method, a, t, 0.2, **options)
    )
    np.testing.assert_array_equal(ds["theory_scratch_error"], scratch_error(alpha, 0.2))
    np.testing.assert_array_equal(
        ds["theory_transfer_error"], np.broadcast_to(transfer(a, t, 0.2), (40, 20))
    )


def test_finite_size_values_equal_the_theory():
    alpha, theta = grid(2.0, 20, 10)
    ds = phase_diagram("ridge", 0.3, lam=0.5, alpha=alpha, theta=theta, dim=50)
    expected = transferability("ridge", alpha[:, None], theta[None, :], 0.3, lam=0.5, dim=50)
    np.testing.assert_array_equal(ds["theory_transferability"], expected)
    assert ds.attrs["dim"] == 50 and ds.attrs["limit"] == "finite D"


def test_attrs_are_netcdf_safe_and_name_the_configuration():
    for method, options in [("linear", {}), ("ridge", {"lam": 0.1}), ("finetune", {})]:
        ds = phase_diagram(method, 0.2, alpha=[0.5, 1.5], theta=[0.0, 1.0], **options)
        attrs = ds.attrs
        assert attrs["featurefate_version"] == featurefate.__version__
        assert attrs["method"] == method and attrs["sigma"] == 0.2
        assert attrs["limit"] == "D -> infinity"
        assert ("lam" in attrs) == (method == "ridge")
        assert ("variant" in attrs) == (method == "finetune")
        assert "dim" not in attrs
        for value in attrs.values():
            assert type(value) in (str, int, float)
    assert ds.attrs["variant"] == "paper"  # fine-tuning's default
    assert "paper's endpoint" in ds.attrs["description"]
    exact = phase_diagram("finetune", 0.2, variant="exact", alpha=[0.5], theta=[0.0, 1.0])
    assert "corrected endpoint" in exact.attrs["description"]
    assert ds["theta"].attrs["units"] == "rad"


def test_infinite_transferability_at_alpha_one_with_noise():
    ds = phase_diagram("linear", 0.2, alpha=[0.5, 1.0], theta=[0.0, 1.0])
    assert np.all(np.isposinf(ds["theory_transferability"].sel(alpha=1.0)))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: phase_diagram("foo", 0.2), "method"),
        (lambda: phase_diagram("linear", -1.0), "sigma"),
        (lambda: phase_diagram("linear", [0.1, 0.2]), "sigma must be a single number"),
        (lambda: phase_diagram("linear", 0.2, lam=0.1), "lam applies"),
        (lambda: phase_diagram("ridge", 0.2), "lam is required"),
        (lambda: phase_diagram("linear", 0.2, variant="exact"), "variant applies"),
        (lambda: phase_diagram("linear", 0.2, alpha=[[0.5]]), "alpha must be a non-empty 1-D"),
        (lambda: phase_diagram("linear", 0.2, theta=[4.0]), "theta"),
    ],
)
def test_phase_diagram_rejects_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_stems():
    assert phase_stem("linear", 0.2) == "phase_linear_sigma0.2"
    assert phase_stem("ridge", 0.2, lam=0.1) == "phase_ridge_sigma0.2_lam0.1"
    assert phase_stem("finetune", 0.2, variant="exact") == "phase_finetune-exact_sigma0.2"
    assert phase_stem("finetune", 0.0) == "phase_finetune-paper_sigma0"
    assert phase_stem("linear", 0.0, dim=500) == "phase_linear_sigma0_dim500"


def test_point_linear_matches_the_api():
    theta = np.pi / 4
    out = theory_point("linear", 0.7, theta, 0.2)
    assert out["transferability"] == transferability("linear", 0.7, theta, 0.2)
    assert out["scratch_error"] == scratch_error(0.7, 0.2)
    assert out["transfer_error"] == linear_transfer_error(0.7, theta, 0.2)
    regions = negative_transfer_regions(theta, 0.2)
    assert out["negative_transfer"]["alpha_lower"] == pytest.approx(0.5486, abs=1e-4)
    assert out["negative_transfer"]["alpha_upper"] == regions.alpha_upper
    assert out["negative_transfer"]["alpha_threshold"] == pytest.approx(1.08)
    assert out["negative_transfer"]["is_negative"] is True


def test_point_finetune_break_even_angle():
    out = theory_point("finetune", 0.5, 1.0, 1.0, variant="exact")
    assert out["variant"] == "exact"
    assert out["break_even_angle"] == finetune_break_even_angle(0.5, 1.0, variant="exact")
    assert out["break_even_angle_deg"] == pytest.approx(52.2, abs=0.1)
    assert theory_point("finetune", 0.5, 1.0, 1.0)["break_even_angle"] == pytest.approx(np.pi / 3)


def test_point_rejects_arrays():
    with pytest.raises(ValueError, match="alpha must be a single number"):
        theory_point("linear", [0.5, 0.6], 1.0, 0.2)


def test_one_finite_size_point_needs_a_whole_sample_count():
    """n = alpha * dim = 7.5 is refused with the two nearest whole n; 0.8 (n = 8) is computed."""
    with pytest.raises(ValueError, match=r"n = 7.5: take alpha = 0.7 \(n = 7\) or 0.8 \(n = 8\)"):
        theory_point("linear", 0.75, 0.5, 0.2, dim=10)
    assert theory_point("linear", 0.8, 0.5, 0.2, dim=10)["scratch_error"] == pytest.approx(0.52)
