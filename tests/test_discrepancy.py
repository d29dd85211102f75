"""Section 2.1: closed-form KL and W2 between the joints, Theorem 2.2, the experiment and Fig. 5.

Closed forms are checked against full (D + 1)-dimensional matrix computations (scipy.linalg.sqrtm,
log-determinants) and against Monte Carlo with tolerances of 4 standard errors; the experiment's
simulated transferability against the finite-size theory the same way.
"""

import dataclasses
import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from numpy.testing import assert_allclose
from scipy.stats import multivariate_normal

import featurefate
import featurefate.reproduce
from featurefate import distances
from featurefate.experiments import discrepancy as exp
from featurefate.figures.discrepancy import plot_fig5
from featurefate.tasks import teacher_pair
from featurefate.theory import discrepancy as th
from featurefate.theory import linear as lin

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMALL = settings(max_examples=30, deadline=None)

thetas = st.floats(0.0, np.pi)
norms = st.floats(0.1, 3.0)
noises = st.floats(0.05, 2.0)


def _teachers(dim, theta, a, b, seed=0):
    return teacher_pair(dim, theta, source_norm=a, target_norm=b, seed=seed)


def _full_covariances(dim, theta, a, b, sigma_s, sigma_t, seed=0):
    beta_s, beta_t = _teachers(dim, theta, a, b, seed)
    return th.joint_covariance(beta_s, sigma_s), th.joint_covariance(beta_t, sigma_t)


def _bures_full(A, B):
    """W2 between N(0, A) and N(0, B) from the textbook formula with scipy.linalg.sqrtm."""
    root = scipy.linalg.sqrtm(A).real
    cross = scipy.linalg.sqrtm(root @ B @ root).real
    return np.sqrt(max(np.trace(A) + np.trace(B) - 2 * np.trace(cross), 0.0))


def _kl_full(A, B):
    """KL(N(0, A) || N(0, B)) from the general Gaussian formula."""
    d = len(A)
    return 0.5 * (
        np.trace(np.linalg.solve(B, A)) - d + np.linalg.slogdet(B)[1] - np.linalg.slogdet(A)[1]
    )


# ---------------------------------------------------------------------------------------------
# KL


def test_kl_known_values():
    # unit norms: (1 - cos theta) / sigma^2 (Appendix B.1)
    assert_allclose(th.kl_divergence(np.pi / 3, 0.2), 0.5 / 0.04, rtol=1e-14)
    assert_allclose(th.kl_divergence(np.pi / 2, 0.5), 4.0, rtol=1e-14)
    assert_allclose(th.kl_divergence(np.pi, 1.0), 2.0, rtol=1e-14)
    # general norms: |beta_s - beta_t|^2 / (2 sigma^2); beta_t = 2 beta_s gives 1 / (2 sigma^2)
    assert_allclose(th.kl_divergence(0.0, 0.5, target_norm=2.0), 2.0, rtol=1e-14)
    assert th.kl_divergence(0.0, 0.3) == 0.0
    # tiny angles without cancellation: (1 - cos t)/s^2 ~ t^2 / (2 s^2)
    assert_allclose(th.kl_divergence(1e-9, 1.0), 0.5e-18, rtol=1e-12)


@SMALL
@given(theta=thetas, a=norms, b=norms, s=noises, t=noises, dim=st.integers(2, 6))
def test_kl_equals_the_full_gaussian_formula(theta, a, b, s, t, dim):
    A, B = _full_covariances(dim, theta, a, b, s, t)
    value = th.kl_divergence(theta, s, source_norm=a, target_norm=b, target_sigma=t)
    assert_allclose(value, _kl_full(A, B), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(
    ("theta", "a", "b", "s", "t"), [(1.0, 1.0, 1.0, 0.5, None), (2.5, 1.5, 0.7, 0.8, 1.1)]
)
def test_kl_matches_monte_carlo_of_the_log_density_ratio(theta, a, b, s, t):
    # E_{p_s}[log p_s - log p_t] over 20000 draws of the full joint in D + 1 = 5 dimensions.
    A, B = _full_covariances(4, theta, a, b, s, s if t is None else t, seed=1)
    z = np.random.default_rng(2).multivariate_normal(np.zeros(5), A, size=20_000)
    ratio = multivariate_normal(cov=A).logpdf(z) - multivariate_normal(cov=B).logpdf(z)
    exact = th.kl_divergence(theta, s, source_norm=a, target_norm=b, target_sigma=t)
    assert abs(ratio.mean() - exact) < 4 * ratio.std(ddof=1) / np.sqrt(len(ratio))


def test_kl_without_noise_is_infinite_unless_the_joints_coincide():
    assert th.kl_divergence(0.5, 0.0) == np.inf
    assert th.kl_divergence(0.0, 0.0) == 0.0
    assert th.kl_divergence(0.0, 0.0, target_norm=2.0) == np.inf
    assert th.kl_divergence(0.5, 0.3, target_sigma=0.0) == np.inf
    assert th.kl_divergence(0.0, 0.0, target_sigma=0.3) == np.inf


def test_kl_with_unequal_noise_at_equal_teachers():
    # KL(N(0, s^2) || N(0, t^2)) = (s^2/t^2 - 1)/2 + ln(t/s)
    s, t = 0.4, 0.9
    assert_allclose(th.kl_divergence(0.0, s, target_sigma=t), (s**2 / t**2 - 1) / 2 + np.log(t / s))


# ---------------------------------------------------------------------------------------------
# W2


@SMALL
@given(theta=thetas, a=norms, b=norms, s=noises, t=noises, dim=st.integers(2, 8))
def test_w2_equals_bures_on_the_full_matrices(theta, a, b, s, t, dim):
    A, B = _full_covariances(dim, theta, a, b, s, t, seed=dim)
    value = th.wasserstein2(theta, s, source_norm=a, target_norm=b, target_sigma=t)
    # sqrtm's trace formula loses ~sqrt(eps) near 0; the block form does not
    assert_allclose(value, _bures_full(A, B), rtol=1e-6, atol=1e-6)


def test_w2_is_independent_of_dimension_and_of_orientation():
    values = []
    for dim, seed in ((2, 0), (3, 1), (10, 2), (40, 3)):
        A, B = _full_covariances(dim, 1.1, 1.3, 0.8, 0.4, 0.4, seed=seed)
        values.append(_bures_full(A, B))
    assert_allclose(values, th.wasserstein2(1.1, 0.4, source_norm=1.3, target_norm=0.8), rtol=1e-7)


def test_w2_limits_and_bounds():
    assert th.wasserstein2(0.0, 0.2) == pytest.approx(0.0, abs=1e-15)
    assert th.wasserstein2(0.0, 0.0) == pytest.approx(0.0, abs=1e-15)
    # small angles to full precision: W2 ~ c * theta (no sqrt(eps) floor)
    small = th.wasserstein2(1e-10, 0.3)
    assert 0.0 < small < 1e-9
    assert_allclose(th.wasserstein2(2e-10, 0.3) / small, 2.0, rtol=1e-5)
    # two Gaussians with proportional covariances: W2 = |a - b| sqrt(d) (hand formula)
    assert_allclose(th.bures_wasserstein2(np.eye(3), 4.0 * np.eye(3)), np.sqrt(3.0), rtol=1e-14)
    theta, a, b, s = np.linspace(0, np.pi, 7), 1.2, 0.6, 0.3
    w2 = th.wasserstein2(theta, s, source_norm=a, target_norm=b)
    gap = np.sqrt(a**2 + b**2 - 2 * a * b * np.cos(theta))
    # the coupling "same x, same noise" costs |beta_s - beta_t|; y's marginals bound it below
    assert np.all(w2 <= gap + 1e-12)
    assert np.all(w2 >= abs(np.hypot(a, s) - np.hypot(b, s)) - 1e-12)
    # symmetric in the two joints
    assert_allclose(w2, th.wasserstein2(theta, s, source_norm=b, target_norm=a), rtol=1e-12)


def test_w2_matches_the_transport_cost_of_the_optimal_map_on_samples():
    # T = A^{-1/2} (A^{1/2} B A^{1/2})^{1/2} A^{-1/2} pushes N(0, A) to N(0, B) optimally. On a
    # sample z, the identity coupling of z and T z is optimal (T is the gradient of a convex
    # function), so exact OT between them equals mean |z - T z|^2, whose expectation is W2^2.
    A, B = _full_covariances(3, 2.0, 1.0, 1.5, 0.5, 0.5, seed=4)
    root = scipy.linalg.sqrtm(A).real
    inv_root = np.linalg.inv(root)
    T = inv_root @ scipy.linalg.sqrtm(root @ B @ root).real @ inv_root
    z = np.random.default_rng(5).multivariate_normal(np.zeros(4), A, size=400)
    cost = np.sum((z - z @ T.T) ** 2, axis=1)
    n = len(z)
    exact_ot = distances.ot.emd2(
        np.full(n, 1 / n), np.full(n, 1 / n), distances.ot.dist(z, z @ T.T)
    )
    assert_allclose(exact_ot, cost.mean(), rtol=1e-9)
    w2 = th.wasserstein2(2.0, 0.5, target_norm=1.5)
    assert abs(cost.mean() - w2**2) < 4 * cost.std(ddof=1) / np.sqrt(n)


def test_w2_of_independent_samples_through_gaussian_fits():
    # Plug-in Bures distance of fitted covariances, 10 replicates of 3000 draws per joint.
    A, B = _full_covariances(3, 1.2, 1.0, 2.0, 0.3, 0.3, seed=6)
    rng = np.random.default_rng(7)
    values = []
    for _ in range(10):
        za = rng.multivariate_normal(np.zeros(4), A, size=3000)
        zb = rng.multivariate_normal(np.zeros(4), B, size=3000)
        values.append(th.bures_wasserstein2(np.cov(za.T), np.cov(zb.T)))
    se = np.std(values, ddof=1) / np.sqrt(len(values))
    assert abs(np.mean(values) - th.wasserstein2(1.2, 0.3, target_norm=2.0)) < 4 * se


def test_w1_and_dudley_of_samples_stay_below_w2():
    # W1 <= W2 for the population; sample W1 in the 3-coordinate block from 300 draws is close.
    beta_s, beta_t = _teachers(3, 2.0, 1.0, 1.5, seed=8)
    rng = np.random.default_rng(9)
    X = rng.standard_normal((2, 300, 3))
    y_s = X[0] @ beta_s + 0.3 * rng.standard_normal(300)
    y_t = X[1] @ beta_t + 0.3 * rng.standard_normal(300)
    zs, zt = np.column_stack([X[0], y_s]), np.column_stack([X[1], y_t])
    w2 = th.wasserstein2(2.0, 0.3, target_norm=1.5)
    w1 = distances.wasserstein1(zs, zt)
    assert distances.dudley(zs, zt, method="transport") <= w1 < 1.1 * w2


def test_broadcasting_matches_one_at_a_time():
    theta = np.linspace(0, np.pi, 5)[:, None]
    sigma = np.array([0.2, 0.5, 1.0])
    for fn in (th.kl_divergence, th.wasserstein2):
        batched = fn(theta, sigma, target_norm=1.5)
        assert batched.shape == (5, 3)
        loop = [[fn(float(t), float(s), target_norm=1.5) for s in sigma] for t in theta[:, 0]]
        assert_allclose(batched, loop, rtol=1e-13)
        assert np.ndim(fn(0.3, 0.2)) == 0


@pytest.mark.parametrize("fn", [th.kl_divergence, th.wasserstein2])
@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((4.0, 0.2), {}, r"theta must be a finite number in \[0, pi\]; got 4"),
        ((-0.1, 0.2), {}, r"theta must be a finite number in \[0, pi\]; got -0.1"),
        ((0.5, -0.2), {}, r"sigma must be a finite number in \[0, inf\); got -0.2"),
        ((0.5, np.nan), {}, "sigma must be a finite number"),
        ((0.5, 0.2), {"source_norm": 0.0}, r"source_norm must be a finite number in \(0, inf\)"),
        ((0.5, 0.2), {"target_norm": -1.0}, "target_norm must be a finite number"),
        ((0.5, 0.2), {"target_sigma": -1.0}, "target_sigma must be a finite number"),
        (("a", 0.2), {}, "theta must be a real number"),
    ],
)
def test_invalid_arguments_are_named(fn, args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fn(*args, **kwargs)


def test_bures_validation():
    with pytest.raises(
        ValueError, match=r"cov_b must have shape \(..., d, d\), both with the same d"
    ):
        th.bures_wasserstein2(np.eye(3), np.eye(2))
    with pytest.raises(ValueError, match=r"cov_a must have shape"):
        th.bures_wasserstein2(np.ones(3), np.eye(3))


def test_joint_covariance_validation_and_shape():
    cov = th.joint_covariance(np.ones((2, 3)), [0.1, 0.2])
    assert cov.shape == (2, 4, 4)
    assert_allclose(cov[1, 3, 3], 3 + 0.04)
    with pytest.raises(ValueError, match=r"beta must have shape \(..., D\)"):
        th.joint_covariance(1.0, 0.1)


# ---------------------------------------------------------------------------------------------
# Theorem 2.2


def test_theorem22_family_far_in_distance_positive_linear_transfer():
    k = np.array([0.5, 1.0, 3.0, 10.0, 100.0, 1000.0])
    for dim in (None, 50):
        fam = th.theorem22_family(k, 0.5, 0.2, dim=dim)
        assert_allclose(fam.kl, (1 + k) ** 2 / (2 * 0.04), rtol=1e-12)
        assert np.all(np.diff(fam.kl) > 0) and np.all(np.diff(fam.w2) > 0)
        assert fam.w2[-1] > 900.0
        assert np.all(fam.w2 >= np.abs(np.hypot(k, 0.2) - np.hypot(1.0, 0.2)) - 1e-9)
        assert np.all(fam.transferability_linear > 0)
        assert np.all(fam.transferability_finetune < 0)
        # Dudley is bounded: the paper's convention below 2W2/(2 + W2) < 2, the other min(2, W2)
        assert_allclose(fam.dudley_upper, 2 * fam.w2 / (2 + fam.w2))
        assert np.all(fam.dudley_upper < 2.0) and fam.dudley_max_upper[-1] == 2.0
        assert_allclose(
            fam.transferability_linear,
            lin.transferability("linear", 0.5, np.pi, 0.2, target_norm=k, dim=dim),
        )
    # above alpha = 1 linear transfer stays positive (by the noise term), fine-tuning is 0
    fam = th.theorem22_family(k, 2.0, 0.2)
    assert np.all(fam.transferability_linear > 0)
    assert np.all(fam.transferability_finetune == 0)


def test_theorem22_family_validation():
    with pytest.raises(ValueError, match=r"k must be a finite number in \(0, inf\); got 0"):
        th.theorem22_family([1.0, 0.0], 0.5, 0.2)
    with pytest.raises(ValueError, match=r"sigma must be a finite number in \(0, inf\); got 0"):
        th.theorem22_family(1.0, 0.5, 0.0)
    with pytest.raises(ValueError, match="variant must be one of"):
        th.theorem22_family(1.0, 0.5, 0.2, variant="other")


# ---------------------------------------------------------------------------------------------
# the experiment


TINY = exp.DiscrepancyConfig(dim=6, n_instances=2, n_samples=8, family_k=(1.0, 10.0))


def test_config_defaults_are_valid_and_toml_representable():
    config = exp.DiscrepancyConfig()
    for value in dataclasses.asdict(config).values():
        if isinstance(value, tuple):
            assert all(isinstance(x, float) for x in value)
        else:
            assert isinstance(value, int | float | str | bool)
    assert json.loads(json.dumps(dataclasses.asdict(config))) == json.loads(
        json.dumps(dataclasses.asdict(config))
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 2}, "dim must be an integer >= 3; got 2"),
        ({"n_instances": 1}, "n_instances must be an integer >= 2; got 1"),
        ({"n_samples": 1}, "n_samples must be an integer >= 2; got 1"),
        ({"depth": 1}, "depth must be an integer >= 2; got 1"),
        ({"source_norm": -1.0}, "source_norm must be a finite number"),
        ({"dudley_method": "exact"}, "dudley_method must be one of 'lp', 'transport'"),
        ({"max_points": 3}, "max_points must be an integer >= 4; got 3"),
        (
            {"n_samples": 400, "dudley_method": "lp"},
            "2 \\* n_samples must be at most max_points = 600",
        ),
        ({"dim": 10.5}, "dim must be an integer >= 3; got 10.5"),
        ({"family_k": (1.0, 0.0)}, r"family_k must be a finite number in \(0, inf\); got 0"),
        ({"family_k": (1.0, 1.0)}, "family_k must not repeat a value"),
        ({"family_k": [1.0]}, "family_k must be a tuple of numbers > 0"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        exp.DiscrepancyConfig(**kwargs)


def test_large_samples_are_fine_with_the_transport_form():
    assert exp.DiscrepancyConfig(n_samples=400, dudley_method="transport").n_samples == 400


def _cell(alpha=0.5, theta=0.7, target_norm=1.0, sigma=0.2):
    return {"alpha": alpha, "theta": theta, "target_norm": target_norm, "sigma": sigma}


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (
            {"alpha": 0.5, "theta": 0.1, "target_norm": 1.0},
            "cell must give alpha, theta, target_norm, sigma; missing 'sigma'",
        ),
        (_cell(theta=4.0), "theta must be a finite number in"),
        (_cell(target_norm=0.0), "target_norm must be a finite number"),
        (_cell(sigma=0.0), r"sigma must be a finite number in \(0, inf\)"),
        (_cell(alpha=0.0), r"alpha must be a finite number in \(0, inf\); got 0"),
        (_cell(alpha=0.3), r"at least 3 target samples; got alpha = 0.3, dim = 6 \(n = 2\)"),
        (_cell(alpha=1.0), r"out of \[dim - 1, dim \+ 1\] = \[5, 7\].*alpha = 1, n = 6"),
    ],
)
def test_invalid_cells_are_named(cell, message):
    with pytest.raises(ValueError, match=message):
        exp.run_cell(TINY, cell, 0)


def test_run_cell_dataset_contract():
    cell = _cell(theta=0.7, target_norm=1.5, sigma=0.3)
    ds = exp.run_cell(TINY, cell, 3)
    assert exp.CELL_AXES == ("alpha", "theta", "target_norm", "sigma")
    for axis in exp.CELL_AXES:
        assert ds[axis].ndim == 0 and float(ds[axis]) == cell[axis]
    assert int(ds["n"]) == 3
    assert dict(ds.sizes) == {"instance": 2, "k": 2}
    for name in exp.DISTANCES + exp.TRANSFERABILITIES:
        assert name in ds
    for name in ("sample_w1", "sample_dudley", "sample_dudley_max", "error_finetune_exact"):
        assert ds[name].dims == ("instance",)
    assert ds.attrs["featurefate_version"] == featurefate.__version__
    assert ds.attrs["experiment"] == "discrepancy"
    assert json.loads(ds.attrs["config"]) == json.loads(json.dumps(dataclasses.asdict(TINY)))
    assert ds.attrs["seed"] == "3" and ds.attrs["dim"] == 6
    assert "no network is trained" in ds.attrs["simulation"]
    assert "||h||_inf + Lip(h) <= 1" in ds.attrs["dudley"]
    assert_allclose(ds.theory_kl, th.kl_divergence(0.7, 0.3, target_norm=1.5))
    assert_allclose(ds.theory_w2, th.wasserstein2(0.7, 0.3, target_norm=1.5))
    assert_allclose(
        ds.theory_transferability_linear,
        lin.transferability("linear", 0.5, 0.7, 0.3, target_norm=1.5, dim=6),
    )
    # metric relations hold per instance, between the conventions too
    for suffix in ("", "_subspace"):
        total, both = ds[f"sample_dudley{suffix}"], ds[f"sample_dudley_max{suffix}"]
        assert np.all(both <= 2.0) and np.all(total < 2.0)
        assert np.all(both / 2 - 1e-12 <= total) and np.all(total <= both + 1e-12)
        assert np.all(both <= ds[f"sample_w1{suffix}"] + 1e-9)
    paired = ds.error_scratch - ds.error_linear
    assert_allclose(ds.transferability_linear, paired.mean())
    assert_allclose(ds.transferability_linear_stderr, paired.std(ddof=1) / np.sqrt(2))
    # the family's Dudley estimates are the experiment's function, at this cell's sigma
    family = exp.theorem22_dudley(
        (1.0, 10.0), 0.3, n_samples=8, n_replicates=2, seed=0, method="transport"
    )
    xr.testing.assert_allclose(ds[list(family.data_vars)].reset_coords(drop=True), family)


def test_run_cell_is_reproducible_from_its_seed():
    cell = _cell(theta=1.0, sigma=0.5)
    a = exp.run_cell(TINY, cell, 11)
    xr.testing.assert_identical(a, exp.run_cell(TINY, cell, 11))
    xr.testing.assert_identical(a, exp.run_cell(TINY, cell, np.random.SeedSequence(11)))
    b = exp.run_cell(TINY, cell, 12)
    assert not np.allclose(a.sample_w1, b.sample_w1)
    # both Dudley solvers give the same cell, in both conventions
    c = exp.run_cell(dataclasses.replace(TINY, dudley_method="lp"), cell, 11)
    for name in ("sample_dudley_subspace", "sample_dudley_max_subspace", "family_dudley"):
        assert_allclose(c[name], a[name], atol=1e-7)
    # without family_k no family is computed
    assert "family_dudley" not in exp.run_cell(dataclasses.replace(TINY, family_k=()), cell, 11)


def test_simulated_transferability_matches_the_finite_size_theory():
    # The exact endpoints' errors average to the closed forms at finite D (Section 3): 60
    # instances, within 4 paired standard errors.
    config = exp.DiscrepancyConfig(dim=20, n_instances=60, n_samples=4, family_k=())
    ds = exp.run_cell(config, _cell(theta=1.0, target_norm=1.3, sigma=0.4), 5)
    for method in ("linear", "finetune_paper"):
        gap = float(ds[f"transferability_{method}"] - ds[f"theory_transferability_{method}"])
        assert abs(gap) < 4 * float(ds[f"transferability_{method}_stderr"])


def test_aligned_joints_have_zero_distance():
    ds = exp.run_cell(TINY, _cell(theta=0.0), 1)
    assert float(ds.theory_kl) == 0.0
    assert float(ds.theory_w2) == pytest.approx(0.0, abs=1e-14)


# ---------------------------------------------------------------------------------------------
# Theorem 2.2: the Dudley half


def test_theorem22_dudley_grows_towards_two_and_respects_the_bounds():
    k = (0.5, 2.0, 10.0, 100.0)
    ds = exp.theorem22_dudley(k, 0.2, n_samples=60, n_replicates=3, seed=1)
    total, both = ds.family_dudley.values, ds.family_dudley_max.values
    assert np.all(np.diff(total) > 0) and np.all(np.diff(both) > 0)
    assert np.all(total < 2.0) and np.all(both <= 2.0) and both[-1] > 1.9
    assert np.all(both / 2 <= total + 1e-12) and np.all(total <= both + 1e-12)
    # far above the same-law plug-in floor; below the closed-form bound 2W2/(2 + W2) up to the
    # plug-in's upward bias (the floor) at the far end, where the bound is tight
    assert total[0] > 2 * float(ds.family_dudley_floor)
    bound = th.theorem22_family(np.array(k), 0.5, 0.2).dudley_upper
    assert np.all(total <= bound + float(ds.family_dudley_floor))
    # seeded and memoised: the same call gives the same numbers, another seed others
    again = exp.theorem22_dudley(k, 0.2, n_samples=60, n_replicates=3, seed=1)
    xr.testing.assert_identical(ds, again)
    other = exp.theorem22_dudley(k, 0.2, n_samples=60, n_replicates=3, seed=2)
    assert not np.allclose(other.family_dudley, ds.family_dudley)
    with pytest.raises(ValueError, match="method must be one of 'lp', 'transport'"):
        exp.theorem22_dudley(k, 0.2, method="simplex")
    with pytest.raises(ValueError, match=r"k must be a finite number in \(0, inf\); got -1"):
        exp.theorem22_dudley((-1.0,), 0.2)


# ---------------------------------------------------------------------------------------------
# correlations


def _sweep(config, alphas, thetas, target_norms, sigmas, seed=0):
    cells = []
    grid = [(a, t, n, s) for a in alphas for t in thetas for n in target_norms for s in sigmas]
    for i, (alpha, theta, norm, sigma) in enumerate(grid):
        ds = exp.run_cell(config, _cell(alpha, theta, norm, sigma), seed + i)
        cells.append(ds.reset_coords("n").expand_dims(list(exp.CELL_AXES)))
    return xr.combine_by_coords(cells, coords="minimal", combine_attrs="drop_conflicts")


@pytest.fixture(scope="module")
def sweep():
    """An extended grid: one alpha, theta up to pi, two target norms."""
    return _sweep(TINY, [0.5], np.linspace(0, np.pi, 4), [0.5, 1.5], [0.3])


@pytest.fixture(scope="module")
def paper_sweep():
    """A paper's grid: unit norms, sigma = 0.2, theta up to pi/2, alpha below and above 1."""
    config = dataclasses.replace(TINY, dim=10)
    return _sweep(config, [0.5, 2.0], np.linspace(0.2, np.pi / 2, 4), [1.0], [0.2])


def test_cells_combine_along_their_axes(sweep):
    assert dict(sweep.sizes) == {
        "alpha": 1, "theta": 4, "target_norm": 2, "sigma": 1, "instance": 2, "k": 2,
    }  # fmt: skip
    assert sweep.theory_kl.dims == ("alpha", "theta", "target_norm", "sigma")


def test_grid_names(sweep, paper_sweep):
    assert exp.grid_name(paper_sweep) == "paper's grid"
    assert exp.grid_name(sweep) == "extended grid"


def test_correlations_of_a_sweep(sweep):
    corr = exp.correlations(sweep, n_boot=200)
    assert corr.pearson.dims == ("distance", "transferability")
    assert list(corr.distance.values) == list(exp.DISTANCES)
    assert list(corr.transferability.values) == list(exp.TRANSFERABILITIES)
    assert np.all(corr.n_cells == 8)
    finite = np.isfinite(corr.pearson.values)
    assert np.all(np.abs(corr.pearson.values[finite]) <= 1.0)
    # KL and theory W2 are increasing functions of each other at fixed norms: compare ranks
    one = sweep.sel(target_norm=0.5, sigma=0.3)
    inner = exp.correlations(one, distances=("theory_kl",), transferabilities=("theory_w2",))
    assert inner.spearman.item() == pytest.approx(1.0)


def test_rank_correlation_is_minus_one_at_each_alpha_on_the_paper_grid(paper_sweep):
    # At fixed alpha, T_linear = R_sc(alpha, sigma) - sin^2 theta - (sin^2 theta + sigma^2)/(n - 2)
    # falls strictly with theta while KL = (1 - cos theta)/sigma^2 rises: rho = -1 exactly, and
    # every bootstrap resample of a perfectly monotone set is monotone too.
    names = {"distances": ("theory_kl", "theory_w2"), "transferabilities": TRANSFER_THEORY}
    corr = exp.correlations(paper_sweep, by="alpha", n_boot=100, **names)
    assert corr.spearman.dims == ("distance", "transferability", "alpha")
    linear = corr.sel(transferability="theory_transferability_linear")
    assert_allclose(linear.spearman, -1.0, atol=1e-12)
    assert_allclose(linear.spearman_low, -1.0, atol=1e-12)
    assert_allclose(linear.spearman_high, -1.0, atol=1e-12)
    assert np.all(linear.n_cells == 4)
    # fine-tuning: rho = -1 below alpha = 1; T = 0 above (equal endpoints): undefined, not noise
    finetune = corr.sel(transferability="theory_transferability_finetune_exact")
    assert_allclose(finetune.spearman.sel(alpha=0.5), -1.0, atol=1e-12)
    assert np.all(np.isnan(finetune.spearman.sel(alpha=2.0)))
    simulated = exp.correlations(
        paper_sweep.sel(alpha=[2.0]), transferabilities=("transferability_finetune_exact",)
    )
    assert np.all(np.isnan(simulated.spearman))  # rounding noise of order 1e-16 is no correlation
    # Pearson at fixed alpha by hand: T_linear is affine in sin^2 theta = 1 - cos^2 theta, KL in
    # cos theta; so r = corr(1 - cos theta, -(1 - cos^2 theta)) over the four angles
    c = np.cos(np.linspace(0.2, np.pi / 2, 4))
    expected = np.corrcoef(1 - c, c**2 - 1)[0, 1]
    assert_allclose(linear.pearson.sel(distance="theory_kl"), expected, rtol=1e-10)


TRANSFER_THEORY = ("theory_transferability_linear", "theory_transferability_finetune_exact")


def test_correlations_known_values_and_degenerate_inputs():
    theta = np.linspace(0.1, 1.0, 6)
    ds = xr.Dataset(
        {
            "theory_kl": (("theta",), theta),
            "sample_w1": (("theta", "instance"), np.stack([theta, theta + 0.2], axis=1)),
            "theory_w2": (("theta",), np.full(6, 2.0)),
            "transferability_linear": (("theta",), -(theta**3)),
            "theory_transferability_linear": (("theta",), 3 * theta + 1),
            "transferability_finetune_paper": (("theta",), np.where(theta > 0.5, np.nan, theta)),
        },
        coords={"theta": theta},
    )
    corr = exp.correlations(ds)
    assert float(
        corr.pearson.sel(distance="theory_kl", transferability="theory_transferability_linear")
    ) == pytest.approx(1.0)
    assert float(
        corr.spearman.sel(distance="sample_w1", transferability="transferability_linear")
    ) == pytest.approx(-1.0)
    assert (
        -1.0
        < float(corr.pearson.sel(distance="theory_kl", transferability="transferability_linear"))
        < -0.9
    )
    assert np.isnan(
        float(corr.pearson.sel(distance="theory_w2", transferability="transferability_linear"))
    )
    # NaN cells are left out: 3 finite pairs remain
    sel = {"distance": "theory_kl", "transferability": "transferability_finetune_paper"}
    assert int(corr.n_cells.sel(sel)) == 3
    assert float(corr.pearson.sel(sel)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one distance and one transferability"):
        exp.correlations(ds[["theory_kl"]])
    with pytest.raises(ValueError, match="by must name a dimension of ds; got 'alpha'"):
        exp.correlations(ds, by="alpha")
    with pytest.raises(ValueError, match="n_boot must be an integer >= 2; got 1"):
        exp.correlations(ds, n_boot=1)
    with pytest.raises(ValueError, match=r"level must be a finite number in \(0, 1\); got 1"):
        exp.correlations(ds, level=1.0)


def test_pearson_by_hand_and_bootstrap_intervals():
    # x = (0, 1, 2, 3), y = (0, 1, 1, 3): means 1.5 and 1.25; sum of products of deviations
    # 4.5, sums of squares 5 and 4.75: r = 4.5 / sqrt(23.75) = 0.9234; ranks of y are
    # (1, 2.5, 2.5, 4): rho = 4.5 / sqrt(5 * 4.5) = 0.9487
    ds = xr.Dataset(
        {
            "theory_kl": (("theta",), [0.0, 1.0, 2.0, 3.0]),
            "transferability_linear": (("theta",), [0.0, 1.0, 1.0, 3.0]),
        },
        coords={"theta": np.arange(4.0)},
    )
    pair = ["distance", "transferability"]
    corr = exp.correlations(ds, n_boot=400, seed=3).squeeze(pair)
    assert float(corr.pearson) == pytest.approx(4.5 / np.sqrt(23.75), rel=1e-12)
    assert float(corr.spearman) == pytest.approx(4.5 / np.sqrt(22.5), rel=1e-12)
    # the interval contains the estimate, and is fixed by its seed
    for name in ("pearson", "spearman"):
        low, high = float(corr[f"{name}_low"]), float(corr[f"{name}_high"])
        assert -1.0 <= low <= float(corr[name]) <= high <= 1.0
    xr.testing.assert_identical(corr, exp.correlations(ds, n_boot=400, seed=3).squeeze(pair))
    other = exp.correlations(ds, n_boot=400, seed=4, level=0.5).squeeze(pair)
    assert float(other.pearson) == float(corr.pearson)
    assert float(other.pearson_low) >= float(corr.pearson_low)  # a narrower level


def test_spearman_averages_tied_ranks():
    x = np.array([1.0, 2.0, 2.0, 3.0])
    assert_allclose(exp._ranks(x), [1.0, 2.5, 2.5, 4.0])


# ---------------------------------------------------------------------------------------------
# configs


BUNDLED = {
    "quick-discrepancy": "paper's grid",
    "paper-discrepancy": "paper's grid",
    "quick-discrepancy-extended": "extended grid",
    "paper-discrepancy-extended": "extended grid",
}


@pytest.mark.parametrize("name", list(BUNDLED))
def test_config_files(name):
    loader = pytest.importorskip("featurefate.sweep.config")
    data = tomllib.loads((CONFIGS / f"{name}.toml").read_text())
    assert data["experiment"] == "discrepancy" and isinstance(data["seed"], int)
    sweep = loader.load_config(CONFIGS / f"{name}.toml")
    assert sweep.axes == exp.CELL_AXES
    grid = sweep.grid
    paper = BUNDLED[name] == "paper's grid"
    if paper:  # unit norms, sigma = 0.2, theta in [0, pi/2], alpha in [0.1, 2] varying
        assert grid["target_norm"] == (1.0,) and grid["sigma"] == (0.2,)
        assert max(grid["theta"]) == pytest.approx(np.pi / 2) and len(grid["alpha"]) >= 6
        assert min(grid["alpha"]) >= 0.1 and max(grid["alpha"]) == 2.0
    else:  # theta up to pi, several norms and noise levels, alpha = 0.5
        assert grid["alpha"] == (0.5,) and max(grid["theta"]) == pytest.approx(np.pi)
        assert len(grid["target_norm"]) >= 3 and len(grid["sigma"]) >= 2
    assert sweep.config.dudley_method == "transport"  # the fast exact forms
    if name.startswith("quick"):
        assert math.prod(sweep.shape) <= 60
        cell = dict(zip(sweep.axes, (v[-1] for v in grid.values()), strict=True))
        ds = exp.run_cell(dataclasses.replace(sweep.config, n_instances=2), cell, 0)
        one = ds.expand_dims(list(exp.CELL_AXES))
        assert exp.grid_name(one) == BUNDLED[name]


# ---------------------------------------------------------------------------------------------
# Fig. 5


_TINY_FIXED = {"dim": 10, "n_instances": 2, "n_samples": 8, "family_k": [1.0, 10.0]}
_TINY_GRIDS = {
    "paper": {
        "alpha": [0.5, 2.0],
        "theta": {"start": 0.5, "stop": 1.0, "num": 3, "scale": "pi/2"},
        "target_norm": [1.0],
        "sigma": [0.2],
    },
    "extended": {
        "alpha": [0.5],
        "theta": {"start": 0.0, "stop": 1.0, "num": 3, "scale": "pi"},
        "target_norm": [0.5, 2.0],
        "sigma": [0.2],
    },
}


@pytest.fixture(scope="module", params=list(_TINY_GRIDS))
def tiny_store(request, tmp_path_factory):
    """A tiny sweep store of each grid, written and read by the sweep machinery."""
    from concurrent.futures import ThreadPoolExecutor

    from featurefate import sweep as sweeps

    data = {"experiment": "discrepancy", "seed": 0, "fixed": _TINY_FIXED}
    config = sweeps.config.from_dict(data | {"grid": _TINY_GRIDS[request.param]})
    store = tmp_path_factory.mktemp(request.param) / "s.zarr"
    with ThreadPoolExecutor(1) as pool:
        assert sweeps.run_sweep(config, store, executor=pool).ok
    return request.param, sweeps.open_results(store)


def _texts(ax):
    return ax.get_title() + " " + " ".join(t.get_text() for t in ax.texts)


def test_fig5_draws_from_a_tiny_store_of_each_grid(tiny_store, tmp_path):
    grid, ds = tiny_store
    fig = plot_fig5(ds)
    assert isinstance(fig, Figure)
    ax_kl, ax_w1, ax_dudley, ax_max, ax_rho, ax_family = fig.axes[:6]
    assert "KL" in ax_kl.get_xlabel() and "W₁" in ax_w1.get_xlabel()
    assert "‖h‖∞ + Lip(h) ≤ 1 (paper's)" in ax_dudley.get_xlabel()
    assert "|h| ≤ 1 and Lip(h) ≤ 1" in ax_max.get_xlabel()
    assert "Theorem 2.2" in ax_family.get_title()
    name = "paper's grid" if grid == "paper" else "extended grid"
    assert name in fig.get_suptitle()
    corr = exp.correlations(
        ds,
        distances=("theory_kl",),
        transferabilities=("transferability_linear", "transferability_finetune_exact"),
    )
    cell = corr.sel(distance="theory_kl", transferability="transferability_linear")
    assert f"linear: ρ = {float(cell.spearman):+.2f} [{float(cell.spearman_low):+.2f}," in (
        ax_kl.get_title()
    )
    # every cell x 2 methods in each scatter panel, coloured by alpha where it varies
    cells = int(np.prod([ds.sizes[a] for a in exp.CELL_AXES]))
    for ax in (ax_kl, ax_w1, ax_dudley, ax_max):
        colour = [c for c in ax.collections if getattr(c, "get_array", lambda: None)() is not None]
        assert sum(len(c.get_offsets()) for c in colour) == 2 * cells
    (bar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    label = bar.get_ylabel()
    assert ("α" in label) if grid == "paper" else ("θ" in label)
    if grid == "paper":
        assert "each fixed α" in ax_rho.get_title() and "α" in ax_rho.get_xlabel()
    else:
        assert "Spearman" in ax_rho.get_xlabel()
    # the family's Dudley estimates are drawn from the store with error bars
    assert len(ax_family.containers) == 2
    paths = featurefate.reproduce.make_figure("fig5", ds, tmp_path)
    stem = "fig5_discrepancy_" + ("paper-grid" if grid == "paper" else "extended-grid")
    assert {p.name for p in paths} == {f"{stem}.png", f"{stem}.pdf"}


def test_fig5_key_numbers_say_where_the_claim_fails(tiny_store):
    grid, ds = tiny_store
    numbers = featurefate.reproduce.discrepancy_key_numbers(ds)
    name = "paper's grid" if grid == "paper" else "extended grid"
    assert numbers[0].quantity.startswith(f"{name}: the paper's claim")
    kl = next(n for n in numbers if "KL (closed form) against T of linear transfer" in n.quantity)
    if grid == "paper":
        # exact -1 at each alpha from the closed forms; 3 angles: the interval is [-1, -1]
        assert "fails at" in kl.predicted and "at fixed α: ρ from -1.00 to -1.00" in kl.simulated
    assert any("Theorem 2.2 family β_t = −10 β_s" in n.quantity for n in numbers)
    assert any("paper's" in n.simulated and "Dudley" in n.simulated for n in numbers)


def test_fig5_options(sweep):
    fig = plot_fig5(sweep, w1="sample_w1", finetune_variant="paper", family_k=[1.0, 10.0])
    assert "D + 1 dims" in fig.axes[1].get_xlabel()
    assert "paper's endpoint" in " ".join(
        t.get_text() for t in fig.axes[4].get_legend().get_texts()
    )
    with pytest.raises(ValueError, match="finetune_variant must be one of"):
        plot_fig5(sweep, finetune_variant="both")
    with pytest.raises(ValueError, match="w1 must name a variable of ds; got 'w3'"):
        plot_fig5(sweep, w1="w3")
