"""The exact finite-D expectation of the corrected fine-tuning error, against Monte Carlo.

Three independent routes to E|w - beta_t|^2 for w = X^+ y + c (I - P) beta_s:
brute force on Gaussian data (estimators.finetune_fit), O(1)-per-draw draws from the 3 x 3
Wishart reduction (estimators.finetune_error_draws, checked here against brute force), and the
five-dimensional quadrature behind finetune_error(variant="exact", dim=D). Tolerances are
3.5 standard errors; the plug-in value of c (the old closed form) must fail the same checks.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate, stats

from featurefate import estimators as est
from featurefate import transfer
from featurefate._jax import jax
from featurefate.tasks import draw_instances
from featurefate.theory import _finetune_law as law
from featurefate.theory import linear as th


def _known_terms(dim, n, sigma, target_norm):
    """E|X^+ eps|^2 + E|(I - P) beta_t|^2: the part of the error c does not touch."""
    return sigma**2 * n / (dim - n - 1) + target_norm**2 * (1 - n / dim)


def _coupled(dim, n, theta, sigma, source_norm=1.0, target_norm=1.0, depth=2, **kwargs):
    return law.coupled_term(
        float(n),
        dim,
        theta,
        sigma,
        source_norm,
        target_norm,
        depth,
        th.solve_finetune_scale,
        **kwargs,
    )


def _plug_in_coupled(dim, n, theta, sigma, source_norm=1.0, target_norm=1.0, depth=2):
    """The old closed form's coupled term: c at its typical value (finetune_scale)."""
    c = th.finetune_scale(
        n / dim, sigma, source_norm=source_norm, target_norm=target_norm, depth=depth, dim=dim
    )
    overlap = source_norm * target_norm * np.cos(theta)
    return (1 - n / dim) * ((c * source_norm) ** 2 - 2 * c * overlap)


def _mean_se(x):
    return x.mean(), x.std(ddof=1) / np.sqrt(x.size)


def _brute_force(dim, n, theta, sigma, count, seed, source_norm=1.0, target_norm=1.0, depth=2):
    """Errors and coupled terms of the corrected endpoint on Gaussian data, in chunks."""
    errors, coupled = [], []
    rng = np.random.default_rng(seed)
    for _ in range(count // 5000):
        inst = draw_instances(
            dim, n, theta, sigma, 5000, source_norm=source_norm, target_norm=target_norm, seed=rng
        )
        interpolant, residual, c = est.finetune_components(inst.X, inst.y, inst.beta_s, depth=depth)
        w = interpolant + c[:, None] * residual
        errors.append(est.generalization_error(w, inst.beta_t))
        a = np.sum(residual**2, axis=1)
        g = np.sum(residual * inst.beta_t, axis=1)  # beta_s^T (I - P) beta_t
        coupled.append(c**2 * a - 2 * c * g)
    return np.concatenate(errors), np.concatenate(coupled)


# ---------------------------------------------------------------------------------------------
# the reduced sampler has the law of the brute-force endpoint


def test_wishart_draws_have_the_brute_force_law():
    dim, n, theta, sigma = 12, 5, 0.9, 1.5
    brute_error, brute_coupled = _brute_force(dim, n, theta, sigma, 40_000, seed=1)
    error, coupled = est.finetune_error_draws(dim, n, theta, sigma, 200_000, seed=2)
    for name, x, y in [("error", brute_error, error), ("coupled", brute_coupled, coupled)]:
        (mx, sx), (my, sy) = _mean_se(x), _mean_se(y)
        assert abs(mx - my) < 3.5 * np.hypot(sx, sy), (
            f"{name}: {mx:.4f}±{sx:.4f} vs {my:.4f}±{sy:.4f}"
        )
    # the whole law, not only the mean: two-sample Kolmogorov-Smirnov on the coupled term
    assert stats.ks_2samp(brute_coupled, coupled[:40_000]).pvalue > 1e-3


def test_wishart_draws_reject_bad_sizes():
    with pytest.raises(ValueError, match=r"n must be an integer in \[3, dim - 2\]"):
        est.finetune_error_draws(12, 11, 0.5, 1.0, 10)


# ---------------------------------------------------------------------------------------------
# the quadrature against Monte Carlo


CASES = [
    # dim, n, theta, sigma, source_norm, target_norm, depth, plug-in 8 s.e. off
    (12, 5, 0.9, 1.5, 1.0, 1.0, 2, True),
    (20, 10, 0.7, 1.0, 1.0, 1.0, 2, True),
    (30, 9, 1.2, 1.5, 1.5, 0.8, 2, False),
    (16, 6, 0.6, 1.0, 1.0, 1.0, 3, True),
    (20, 14, 0.4, 1.2, 0.7, 1.3, 3, True),
]


@pytest.mark.parametrize(("dim", "n", "theta", "sigma", "ns", "nt", "depth", "far"), CASES)
def test_exact_finite_size_finetune_matches_monte_carlo(dim, n, theta, sigma, ns, nt, depth, far):
    norms = {"source_norm": ns, "target_norm": nt, "depth": depth}
    error, coupled = est.finetune_error_draws(dim, n, theta, sigma, 300_000, seed=dim + n, **norms)
    mean, se_coupled = _mean_se(coupled)
    expected = _coupled(dim, n, theta, sigma, ns, nt, depth)
    assert abs(mean - expected) < 3.5 * se_coupled, (
        f"coupled: MC {mean:.5f} ± {se_coupled:.5f} vs {expected:.5f}"
    )
    closed = th.finetune_error(n / dim, theta, sigma, variant="exact", dim=dim, **norms)
    assert_allclose(closed, _known_terms(dim, n, sigma, nt) + expected, rtol=1e-12)
    mean, se = _mean_se(error)
    assert abs(mean - closed) < 3.5 * se, f"error: MC {mean:.5f} ± {se:.5f} vs {closed:.5f}"
    # the typical-c plug-in is O(1/D) off: many standard errors at the smallest sizes
    gap = abs(_plug_in_coupled(dim, n, theta, sigma, ns, nt, depth) - expected)
    assert (gap > 8 * se_coupled) == far, f"plug-in gap {gap:.5f}, s.e. {se_coupled:.5f}"


def test_quadrature_by_hand_when_aligned_and_noiseless():
    """theta = 0, sigma = 0: a = g = gamma, b = 1 - gamma with gamma ~ Beta((D-n)/2, n/2)."""
    dim, n = 15, 6

    def integrand(gamma):
        c = th.solve_finetune_scale(gamma, 1.0 - gamma)
        return (c**2 * gamma - 2 * c * gamma) * stats.beta.pdf(gamma, (dim - n) / 2, n / 2)

    reference = integrate.quad(integrand, 0.0, 1.0, epsabs=1e-13, epsrel=1e-12)[0]
    assert_allclose(_coupled(dim, n, 0.0, 0.0), reference, rtol=1e-10)


def test_transferability_is_minus_the_coupled_term_and_finite_in_the_band():
    dim = 40
    alpha = np.array([0.2, 0.6, 39.5 / 40, 1.0, 1.5])  # 39.5: between D - 1 and D
    t = th.transferability("finetune", alpha, 0.8, 1.0, variant="exact", dim=dim)
    assert_allclose(t[:2], [-_coupled(dim, a * dim, 0.8, 1.0) for a in alpha[:2]], rtol=1e-12)
    assert np.isfinite(t[2]) and t[2] < 0  # both errors infinite, their difference is not
    assert np.all(t[3:] == 0.0)
    errors = th.finetune_error(alpha, 0.8, 1.0, variant="exact", dim=dim)
    assert_allclose(th.scratch_error(alpha[:2], 1.0, dim=dim) - errors[:2], t[:2], rtol=1e-12)
    assert np.all(np.isinf(errors[2:4])) and np.isfinite(errors[4])


def test_noiseless_equal_norms_still_differ_from_the_paper_at_finite_size():
    """c = 1 only in the limit: at finite D its fluctuations cost error even without noise."""
    exact = th.finetune_error(0.5, 0.3, 0.0, variant="exact", dim=20)
    paper = th.finetune_error(0.5, 0.3, 0.0, variant="paper", dim=20)
    assert exact > paper
    assert_allclose(th.finetune_error(0.5, 0.3, 0.0, variant="exact", dim=20_000), paper, rtol=1e-3)


# ---------------------------------------------------------------------------------------------
# depth 3: closed form, estimator and real gradient descent


def test_depth3_gradient_descent_matches_the_finite_size_closed_form():
    """Fine-tuning by gradient descent at L = 3 (rank-one chains) lands on the corrected endpoint
    instance by instance, and the instances' mean error agrees with finetune_error(depth=3)."""
    dim, n, theta, sigma, count = 16, 6, 0.6, 1.0, 64
    inst = draw_instances(dim, n, theta, sigma, count, seed=5)
    key = jax.random.PRNGKey(1)
    pre = transfer.pretrain(inst.beta_s, key=key, depth=3, init="rank_one")
    options = transfer.TrainingOptions(eta=1.0, max_move=2e-3, max_steps=20_000)
    ft = transfer.fine_tune(pre.params, inst.X, inst.y, inst.beta_t, options=options)
    assert ft.training.converged.all()
    exact = est.finetune_fit(inst.X, inst.y, inst.beta_s, variant="exact", depth=3)
    assert np.max(np.linalg.norm(ft.w - exact, axis=1)) < 3e-3
    mean, se = _mean_se(ft.error)
    closed = th.finetune_error(n / dim, theta, sigma, variant="exact", depth=3, dim=dim)
    assert abs(mean - closed) < 3.5 * se
    # depth matters: L = 3 and L = 2 differ by far more than the quadrature's accuracy
    two = th.finetune_error(n / dim, theta, sigma, variant="exact", depth=2, dim=dim)
    assert abs(closed - two) > 1e-3


def test_depth_in_the_limit_solves_the_depth_equation():
    alpha, sigma, depth, norm = 0.4, 0.8, 4, 1.3
    c = th.finetune_scale(alpha, sigma, source_norm=norm, depth=depth)
    a, b = (1 - alpha) * norm**2, alpha + sigma**2 * alpha / (1 - alpha)
    assert_allclose(norm**2 * c ** (2 * depth / (depth - 1)), a * c**2 + b, rtol=1e-12)
    t = th.transferability(
        "finetune", alpha, 0.5, sigma, variant="exact", source_norm=norm, depth=depth
    )
    assert_allclose(t, (1 - alpha) * (2 * c * norm * np.cos(0.5) - (c * norm) ** 2), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# large versions


@pytest.mark.slow
@pytest.mark.parametrize(("dim", "n", "theta", "sigma"), [(20, 8, 0.9, 1.5), (50, 20, 1.0, 1.5)])
def test_exact_finite_size_finetune_against_large_brute_force(dim, n, theta, sigma):
    error, coupled = _brute_force(dim, n, theta, sigma, 400_000, seed=dim)
    for x, expected in [
        (coupled, _coupled(dim, n, theta, sigma)),
        (error, th.finetune_error(n / dim, theta, sigma, variant="exact", dim=dim)),
    ]:
        mean, se = _mean_se(x)
        assert abs(mean - expected) < 3.5 * se


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dim", "n", "theta", "sigma"), [(20, 3, 0.7, 1.0), (20, 17, 0.7, 1.0), (150, 75, 1.0, 1.5)]
)
def test_quadrature_converges_on_refinement(dim, n, theta, sigma):
    assert_allclose(
        _coupled(dim, n, theta, sigma, refine=2),
        _coupled(dim, n, theta, sigma),
        rtol=1e-9,
        atol=1e-12,
    )


def test_exact_finetune_at_n_equal_dim_from_a_rounded_grid_alpha():
    """alpha = 1 from a linspace grid is 0.9999999999999999: n = D, where c plays no role.

    Before n was snapped to the integer it misses by rounding, the quadrature saw
    D - n = 6e-14 and tried to allocate petabytes.
    """
    alpha = np.linspace(0.1, 2.0, 20)[9]
    assert alpha < 1.0 and round(alpha * 500) == 500
    for fn in (th.finetune_error, lambda *a, **k: th.transferability("finetune", *a, **k)):
        got = fn(alpha, 0.7854, 0.2, variant="exact", dim=500)
        assert_allclose(got, fn(1.0, 0.7854, 0.2, variant="exact", dim=500), rtol=1e-12)
