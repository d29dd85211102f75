"""Pretraining on finite source data: closed forms against Monte Carlo of the endpoints, limits, errors."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from featurefate import estimators as est
from featurefate import theory as th
from featurefate.tasks import draw_instances, sample_data

LAM = 0.1


def _transfer_gains(dim, alpha, theta, sigma, alpha_s, sigma_s, instances, seed):
    """Paired T = R_scratch - R_method per instance, from the exact endpoints with beta_s -> X_s^+ y_s."""
    n, n_s = round(alpha * dim), round(alpha_s * dim)
    inst = draw_instances(dim, n, theta, sigma, instances, seed=seed)
    X_s, y_s = sample_data(inst.beta_s, n_s, sigma_s, seed=seed + 1)
    fit = est.min_norm_fit(X_s, y_s)  # where pretraining from small init ends (Theorem 3.5)
    scratch = est.generalization_error(est.min_norm_fit(inst.X, inst.y), inst.beta_t)
    ends = {
        "linear": est.linear_transfer_fit(inst.X, inst.y, fit),
        "ridge": est.linear_transfer_fit(inst.X, inst.y, fit, lam=LAM),
        "paper": est.finetune_fit(inst.X, inst.y, fit, variant="paper"),
        "exact": est.finetune_fit(inst.X, inst.y, fit, variant="exact"),
    }
    return {k: scratch - est.generalization_error(w, inst.beta_t) for k, w in ends.items()}


def _theory(name, alpha, theta, sigma, alpha_s, sigma_s, dim):
    kw = {"alpha_source": alpha_s, "sigma_source": sigma_s, "dim": dim}
    if name in ("paper", "exact"):
        return th.transferability("finetune", alpha, theta, sigma, variant=name, **kw)
    lam = LAM if name == "ridge" else None
    return th.transferability(name, alpha, theta, sigma, lam=lam, **kw)


# (alpha, theta, sigma, alpha_source, sigma_source)
CASES = [
    (0.5, 0.6, 0.3, 0.5, 0.5),
    (0.3, 1.0, 0.2, 2.0, 1.0),
    (0.7, 0.3, 0.0, 0.3, 0.3),
    (0.4, 1.2, 0.5, 0.6, 0.0),
]


@pytest.mark.parametrize("case", CASES)
def test_finite_d_forms_match_monte_carlo(case):
    """Paper fine-tuning is exact at finite D, and so are linear and ridge transfer when the
    source is noiseless: 4 standard errors. With source noise the source fit's angle (linear,
    ridge) and the corrected endpoint's source side enter at their typical values, off by
    O(1/D): allowed 0.4 / D on top (the MC residuals measured 0.1-0.25 / D at D = 40, while the
    finite source moves these T by 0.05-0.4 from population pretraining)."""
    dim = 40
    gains = _transfer_gains(dim, *case, instances=2000, seed=101)
    for name, gain in gains.items():
        mean, se = gain.mean(), gain.std(ddof=1) / np.sqrt(gain.size)
        exact = name == "paper" or (name in ("linear", "ridge") and case[4] == 0.0)
        tol = 4.0 * se + (0.0 if exact else 0.4 / dim)
        expected = _theory(name, *case, dim)
        assert abs(mean - expected) < tol, f"{name}: MC {mean:.4f} ± {se:.4f} vs {expected:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_forms_match_large_monte_carlo(case):
    """At D = 150: the finite-D forms within 4 s.e. + 0.4 / D, the limit within 4 s.e. + 4 / D
    (its O(1/D) gap measured about 3 / D at D = 40-160)."""
    dim = 150
    gains = _transfer_gains(dim, *case, instances=800, seed=202)
    for name, gain in gains.items():
        mean, se = gain.mean(), gain.std(ddof=1) / np.sqrt(gain.size)
        finite = _theory(name, *case, dim)
        limit = _theory(name, *case, None)
        assert abs(mean - finite) < 4.0 * se + 0.4 / dim, f"{name}: {mean:.4f} vs {finite:.4f}"
        assert abs(mean - limit) < 4.0 * se + 4.0 / dim, f"{name}: {mean:.4f} vs {limit:.4f}"


def test_paper_finetune_finite_d_is_exact_with_tight_tolerance():
    """A case whose finite-D and limiting source moments differ by several standard errors."""
    dim, case = 30, (0.4, 0.5, 0.2, 0.7, 0.6)
    gain = _transfer_gains(dim, *case, instances=4000, seed=7)["paper"]
    mean, se = gain.mean(), gain.std(ddof=1) / np.sqrt(gain.size)
    finite = _theory("paper", *case, dim)
    limit = _theory("paper", *case, None)
    assert abs(mean - finite) < 4.0 * se
    assert abs(mean - limit) > 4.0 * se  # the finite-size moments matter here


def test_geometry_limit_values():
    # alpha_s < 1: |fit|^2 = a_s + s^2 a_s/(1 - a_s) = 0.5 + 0.25, <fit, e> = a_s
    theta_eff, norm = th.finite_source_geometry(0.0, 0.5, 0.5)
    assert_allclose(norm**2, 0.75, rtol=1e-14)
    assert_allclose(np.cos(theta_eff), 0.5 / np.sqrt(0.75), rtol=1e-14)
    # alpha_s > 1: |fit|^2 = 1 + s^2/(a_s - 1), norm of beta_s 2
    theta_eff, norm = th.finite_source_geometry(np.pi / 3, 3.0, 1.0, source_norm=2.0)
    assert_allclose(norm**2, 4.5, rtol=1e-14)
    assert_allclose(np.cos(theta_eff), 2.0 * 0.5 / np.sqrt(4.5), rtol=1e-14)
    # finite D: n_s / D and the inverse-Wishart term
    _, norm = th.finite_source_geometry(0.3, 0.5, 0.5, dim=40)
    assert_allclose(norm**2, 0.5 + 0.25 * 20 / 19, rtol=1e-14)
    # alpha_s = 1 with noise: a pure-noise fit
    theta_eff, norm = th.finite_source_geometry(0.3, 1.0, 0.1)
    assert np.isinf(norm) and theta_eff == pytest.approx(np.pi / 2)


@pytest.mark.parametrize("dim", [None, 50])
def test_large_noiseless_source_recovers_population_pretraining(dim):
    alpha = np.array([0.3, 0.7, 1.5])
    theta, sigma = 0.8, 0.3
    big = 1e9 if dim is None else 3.0  # n_s > D + 1 and no noise: the fit is beta_s exactly
    for method, kw in (
        ("linear", {}),
        ("ridge", {"lam": 0.2}),
        ("finetune", {"variant": "paper"}),
        ("finetune", {"variant": "exact"}),
    ):
        population = th.transferability(method, alpha, theta, sigma, dim=dim, **kw)
        finite = th.transferability(method, alpha, theta, sigma, dim=dim, alpha_source=big, **kw)
        assert_allclose(finite, population, rtol=1e-8, atol=1e-12, err_msg=f"{method} {kw}")
    assert_allclose(
        th.finetune_error(0.4, theta, sigma, alpha_source=1e9, dim=dim),
        th.finetune_error(0.4, theta, sigma, dim=dim),
        rtol=1e-8,
    )


def test_limit_closed_forms_by_hand():
    alpha, theta, sigma, a_s, s_s = 0.4, 0.7, 0.2, 0.6, 0.5
    kappa, noise = a_s, s_s**2 * a_s / (1 - a_s)
    cos2 = kappa**2 * np.cos(theta) ** 2 / (kappa + noise)
    assert_allclose(
        th.linear_transfer_error(alpha, theta, sigma, alpha_source=a_s, sigma_source=s_s),
        1.0 - cos2,
        rtol=1e-12,
    )
    c = th.solve_finetune_scale(
        (1 - alpha) * (kappa + noise),
        alpha + sigma**2 * alpha / (1 - alpha),
        source_norm=np.sqrt(kappa + noise),
    )
    expected = (1 - alpha) * (2 * c * kappa * np.cos(theta) - c**2 * (kappa + noise))
    got = th.transferability(
        "finetune", alpha, theta, sigma, variant="exact", alpha_source=a_s, sigma_source=s_s
    )
    assert_allclose(got, expected, rtol=1e-12)
    # the old wrapper is the paper variant: -(1 - alpha)[kappa (1 - 2 cos) + noise]
    assert_allclose(
        th.finetune_transferability_finite_source(alpha, theta, a_s, s_s),
        -(1 - alpha) * (kappa * (1 - 2 * np.cos(theta)) + noise),
        rtol=1e-12,
    )


def test_linear_transfer_stays_finite_at_alpha_source_one():
    value = th.linear_transfer_error(0.5, 0.4, 0.2, alpha_source=1.0, sigma_source=0.3)
    assert value == pytest.approx(1.0)  # the fit is pure noise: no feature along beta_t
    ridge = th.ridge_transfer_error(0.5, 0.4, 0.2, 0.1, alpha_source=1.0, sigma_source=0.3)
    assert ridge == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha_source": 0.0}, "alpha_source must be a finite number in \\(0, inf\\); got 0"),
        ({"alpha_source": -1.0}, "alpha_source .* got -1"),
        ({"alpha_source": np.nan}, "alpha_source"),
        ({"alpha_source": 0.5, "sigma_source": -0.1}, "sigma_source .*\\[0, inf\\); got -0.1"),
        ({"sigma_source": 0.3}, "sigma_source applies with alpha_source only"),
    ],
)
def test_bad_source_arguments_raise(kwargs, match):
    for call in (
        lambda: th.linear_transfer_error(0.5, 0.3, 0.1, **kwargs),
        lambda: th.ridge_transfer_error(0.5, 0.3, 0.1, 0.1, **kwargs),
        lambda: th.finetune_error(0.5, 0.3, 0.1, **kwargs),
        lambda: th.transferability("linear", 0.5, 0.3, 0.1, **kwargs),
    ):
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("dim", [None, 40])
def test_finetune_at_alpha_source_one_with_noise_raises(dim):
    with pytest.raises(
        ValueError, match=r"alpha_source must avoid 1 .* infinite .* got alpha_source = 1"
    ):
        th.finetune_error(0.5, 0.3, 0.1, alpha_source=1.0, sigma_source=0.2, dim=dim)
    with pytest.raises(ValueError, match="alpha_source must avoid 1"):
        th.transferability("finetune", 0.5, 0.3, 0.1, alpha_source=[0.5, 1.0], sigma_source=0.2)
    # noiseless: finite, the fit is beta_s itself
    assert np.isfinite(th.finetune_error(0.5, 0.3, 0.1, alpha_source=1.0, dim=dim))
