"""Closed forms of Section 3: known values, identities, limits, validation and batching.

Monte-Carlo checks against the ground-truth estimators live in test_estimators.py.
"""

import mpmath
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from featurefate.theory import linear as th

alphas = st.floats(0.01, 3.0).filter(lambda a: abs(a - 1.0) > 1e-3)
thetas = st.floats(0.0, np.pi)
sigmas = st.floats(0.0, 2.0)


# ---------------------------------------------------------------------------------------------
# numbers stated in SPEC section 2 and the paper


def test_spec_example_negative_regions_sigma02_theta_pi4():
    regions = th.negative_transfer_regions(np.pi / 4, 0.2)
    assert_allclose(regions.alpha_lower, 0.5486, atol=5e-5)
    assert_allclose(regions.alpha_upper, 0.9114, atol=5e-5)
    assert_allclose(regions.alpha_threshold, 1.08, rtol=1e-12)
    assert_allclose(regions.finetune_angle_paper, np.pi / 3, rtol=1e-12)


def test_negative_regions_bracket_sign_changes_of_transferability():
    regions = th.negative_transfer_regions(np.pi / 4, 0.2)
    for edge in (regions.alpha_lower, regions.alpha_upper, regions.alpha_threshold):
        just_below, just_above = th.transferability(
            "linear", [edge - 1e-6, edge + 1e-6], np.pi / 4, 0.2
        )
        assert just_below * just_above < 0
        assert abs(th.transferability("linear", edge, np.pi / 4, 0.2)) < 1e-12


def test_finetune_exact_scale_at_sigma1_alpha05():
    # SPEC: c = 1.22 and the break-even angle moves from 60 to 52 degrees.
    assert_allclose(th.finetune_scale(0.5, 1.0), np.sqrt(1.5), rtol=1e-12)
    angle = th.finetune_break_even_angle(0.5, 1.0, variant="exact")
    assert_allclose(np.degrees(angle), 52.2388, atol=1e-4)
    assert_allclose(th.finetune_break_even_angle(0.5, 1.0, variant="paper"), np.pi / 3)


def test_scratch_values_by_hand():
    assert_allclose(th.scratch_error(0.5, 0.2), 0.5 + 0.04, rtol=1e-14)
    assert_allclose(th.scratch_error(2.0, 0.2), 0.04, rtol=1e-14)
    assert_allclose(th.scratch_error(0.5, 0.0, target_norm=2.0), 2.0, rtol=1e-14)
    # finite size: n = 50, D = 100: (1 - 1/2) + sigma^2 50 / 49
    assert_allclose(th.scratch_error(0.5, 0.2, dim=100), 0.5 + 0.04 * 50 / 49, rtol=1e-14)
    assert_allclose(th.scratch_error(1.5, 0.2, dim=100), 0.04 * 100 / 49, rtol=1e-14)


def test_linear_transfer_values_by_hand():
    assert_allclose(th.linear_transfer_error(0.5, np.pi / 2, 0.3), 1.0, rtol=1e-14)
    # exact finite n: sin^2 + (sin^2 + sigma^2)/(n - 2), n = 40
    theta = 0.7
    s2 = np.sin(theta) ** 2
    assert_allclose(
        th.linear_transfer_error(0.4, theta, 0.3, dim=100), s2 + (s2 + 0.09) / 38, rtol=1e-14
    )
    assert th.linear_transfer_error(0.02, theta, 0.3, dim=100) == np.inf  # n = 2


def test_transferability_linear_is_eq13():
    alpha = np.array([0.2, 0.5, 0.9, 1.5, 3.0])
    theta = np.linspace(0, np.pi, 7)[:, None]
    expected = th.scratch_error(alpha, 0.2) - np.sin(theta) ** 2
    assert_allclose(th.transferability("linear", alpha, theta, 0.2), expected, rtol=1e-14)


def test_transferability_finetune_is_eq17():
    alpha = np.array([0.1, 0.5, 0.99, 1.0, 1.5])
    theta = np.linspace(0, np.pi, 9)[:, None]
    expected = np.where(alpha < 1, (1 - alpha) * (2 * np.cos(theta) - 1), 0.0)
    got = th.transferability("finetune", alpha, theta, 0.7)
    assert_allclose(got, expected, atol=1e-15)
    # positive iff theta < pi/3 (paper variant)
    assert np.all((got[:, :3] > 0) == (theta < np.pi / 3))


# ---------------------------------------------------------------------------------------------
# identities and limits


@given(alpha=alphas, theta=thetas, sigma=sigmas)
def test_ridge_at_lam0_is_linear_transfer(alpha, theta, sigma):
    assert_allclose(
        th.ridge_transfer_error(alpha, theta, sigma, 0.0),
        th.linear_transfer_error(alpha, theta, sigma),
        rtol=1e-14,
    )


@pytest.mark.parametrize("dim", [50, 200])
def test_ridge_at_lam0_is_linear_transfer_finite_n(dim):
    alpha = np.array([0.1, 0.5, 1.3])
    assert_allclose(
        th.ridge_transfer_error(alpha, 0.9, 0.4, 0.0, dim=dim),
        th.linear_transfer_error(alpha, 0.9, 0.4, dim=dim),
        rtol=1e-14,
    )


@given(theta=thetas, sigma=sigmas, lam=st.floats(0.0, 10.0), step=st.floats(1e-3, 1.0))
def test_ridge_limit_strictly_increasing_in_lam(theta, sigma, lam, step):
    """Theorem 3.8: in the limit ridge only hurts, strictly while cos(theta) != 0."""
    low = th.ridge_transfer_error(0.5, theta, sigma, lam)
    high = th.ridge_transfer_error(0.5, theta, sigma, lam + step)
    assert high >= low
    if abs(np.cos(theta)) > 1e-3:
        assert high > low


def test_ridge_helps_slightly_at_finite_n():
    """SPEC: at finite n a small lam* ~ (perp^2 + sigma^2)/(n par^2) lowers the error."""
    theta, sigma, dim, alpha = np.pi / 4, 0.5, 100, 0.3
    n = alpha * dim
    lam_star = (np.sin(theta) ** 2 + sigma**2) / (n * np.cos(theta) ** 2)
    lam = np.array([0.0, lam_star, 10 * lam_star])
    err = th.ridge_transfer_error(alpha, theta, sigma, lam, dim=dim)
    assert err[1] < err[0] and err[1] < err[2]


def test_ridge_effective_penalty_scales_with_source_norm_and_depth():
    for depth in (2, 3, 5):
        for norm in (0.5, 2.0):
            lam_eff = 0.3 / norm ** (2 * (depth - 1) / depth)
            assert_allclose(
                th.ridge_transfer_error(0.5, 0.4, 0.1, 0.3, source_norm=norm, depth=depth),
                th.ridge_transfer_error(0.5, 0.4, 0.1, lam_eff),
                rtol=1e-14,
            )


@pytest.mark.parametrize(
    "fn",
    [
        lambda d: th.scratch_error([0.3, 1.7], 0.4, dim=d),
        lambda d: th.linear_transfer_error([0.3, 1.7], 1.0, 0.4, dim=d),
        lambda d: th.ridge_transfer_error([0.3, 1.7], 1.0, 0.4, 0.2, dim=d),
        lambda d: th.finetune_error([0.3, 1.7], 1.0, 0.4, dim=d),
        lambda d: th.finetune_error([0.3, 1.7], 1.0, 0.4, dim=d, variant="exact"),
    ],
)
def test_finite_size_forms_converge_to_limit_like_one_over_dim(fn):
    limit = fn(None)
    gaps = [np.max(np.abs(fn(d) - limit)) for d in (1_000, 10_000, 100_000)]
    assert gaps[0] > 0
    assert_allclose(np.array(gaps[1:]) / gaps[:-1], 0.1, rtol=0.05)  # O(1/D)


def test_theta0_linear_transfer_is_perfect_in_limit_and_beats_scratch():
    assert th.linear_transfer_error(0.3, 0.0, 0.5) == 0.0
    assert np.all(th.transferability("linear", [0.1, 0.5, 2.0, 5.0], 0.0, 0.5) > 0)


def test_sigma0_scratch_and_alpha1_defined_without_warnings():
    # pytest turns NumPy warnings into errors, so these also check that none leak.
    assert th.scratch_error(1.0, 0.0) == 0.0
    assert th.scratch_error(1.0, 0.1) == np.inf
    assert th.scratch_error(1.0, 0.0, dim=100) == 0.0
    assert th.scratch_error(0.995, 0.1, dim=200) == np.inf  # n = 199 = D - 1
    assert th.transferability("linear", 1.0, 0.5, 0.1) == np.inf
    assert th.transferability("linear", 1.0, 0.5, 0.0) == -(np.sin(0.5) ** 2)
    assert th.transferability("finetune", 1.0, 0.5, 0.1) == 0.0
    assert th.finetune_error(1.0, 0.5, 0.1) == np.inf
    assert th.finetune_error(1.0, 0.5, 0.0, variant="exact") == 0.0
    assert th.transferability("ridge", 1.0, 0.5, 0.3, lam=0.1, dim=100) == np.inf


def test_alpha_to_zero_limits():
    assert_allclose(th.scratch_error(1e-12, 0.3, target_norm=1.5), 2.25, rtol=1e-10)
    theta = 1.1
    far = 2 - 2 * np.cos(theta)
    assert_allclose(th.finetune_error(1e-12, theta, 0.3), far, rtol=1e-10)
    assert_allclose(th.finetune_error(1e-12, theta, 0.3, variant="exact"), far, rtol=1e-5)


@given(alpha=st.floats(0.01, 0.99), theta=thetas)
def test_finetune_variants_agree_when_noiseless(alpha, theta):
    assert_allclose(th.finetune_scale(alpha, 0.0), 1.0, rtol=1e-13)
    assert_allclose(
        th.finetune_error(alpha, theta, 0.0, variant="exact"),
        th.finetune_error(alpha, theta, 0.0, variant="paper"),
        rtol=1e-12,
        atol=1e-15,
    )


def test_finetune_variants_disagree_when_noisy():
    paper = th.transferability("finetune", 0.5, 0.95, 1.0, variant="paper")
    exact = th.transferability("finetune", 0.5, 0.95, 1.0, variant="exact")
    assert paper > 0 > exact  # 54.4 degrees: positive for the paper, negative in truth


@given(alpha=alphas, theta=thetas, sigma=sigmas)
def test_finetune_transferability_is_scratch_minus_finetune(alpha, theta, sigma):
    for variant in th.FINETUNE_VARIANTS:
        expected = th.scratch_error(alpha, sigma) - th.finetune_error(
            alpha, theta, sigma, variant=variant
        )
        got = th.transferability("finetune", alpha, theta, sigma, variant=variant)
        assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


@given(
    a=st.floats(0.0, 5.0), b=st.floats(0.0, 50.0), norm=st.floats(0.2, 3.0), depth=st.integers(2, 6)
)
def test_solve_finetune_scale_solves_its_equation(a, b, norm, depth):
    c = th.solve_finetune_scale(a, b, source_norm=norm, depth=depth)
    lhs = norm**2 * c ** (2 * depth / (depth - 1))
    assert c >= 0
    assert_allclose(lhs, a * c**2 + b, rtol=1e-10, atol=1e-12)


def test_finite_source_finetune_limits():
    theta = np.linspace(0, np.pi, 5)
    # a perfect source (alpha_s > 1, no noise) gives the paper's eq. (17)
    assert_allclose(
        th.finetune_transferability_finite_source(0.4, theta, 3.0, 0.0),
        th.transferability("finetune", 0.4, theta, 0.0),
        atol=1e-15,
    )
    # no source data: fine-tuning starts from 0 and is scratch training
    assert_allclose(
        th.finetune_transferability_finite_source(0.4, theta, 1e-12, 0.0), 0.0, atol=1e-11
    )
    assert np.all(th.finetune_transferability_finite_source(1.2, theta, 0.5, 0.3) == 0.0)


# ---------------------------------------------------------------------------------------------
# the regions against the sign of T


@settings(max_examples=300)
@given(alpha=alphas, theta=thetas, sigma=st.floats(0.0, 1.5))
@example(alpha=3.0, theta=9.13976776e-160, sigma=1.0)  # subnormal sin^2: overflowed to a warning
def test_negative_regions_match_sign_of_linear_transferability(alpha, theta, sigma):
    t = th.transferability("linear", alpha, theta, sigma)
    if abs(t) < 1e-9:
        return  # on a boundary
    assert th.negative_transfer_regions(theta, sigma).is_negative(alpha) == (t < 0)


def test_noiseless_region_is_cos2_to_one_and_anomalous_band_at_pi_over_2():
    theta = np.array([0.3, 0.8, 1.3])
    regions = th.negative_transfer_regions(theta, 0.0)
    assert_allclose(regions.alpha_lower, np.cos(theta) ** 2, rtol=1e-12)
    assert_allclose(regions.alpha_upper, 1.0, rtol=1e-12)
    band = th.negative_transfer_regions(np.pi / 2, 0.3)
    assert_allclose([band.alpha_upper, band.alpha_threshold], [1 - 0.09, 1 + 0.09], rtol=1e-12)


def test_region_below_one_empty_iff_one_minus_cos_le_sigma():
    theta = np.array([0.5, np.pi - 0.5])  # 1 - |cos theta| = 0.1224 at both
    assert np.all(np.isnan(th.negative_transfer_regions(theta, 0.13).alpha_lower))
    assert np.all(np.isfinite(th.negative_transfer_regions(theta, 0.12).alpha_lower))


def test_exact_finetune_angle_from_regions():
    regions = th.negative_transfer_regions(0.3, 1.0, alpha=[0.5, 1.5])
    assert_allclose(regions.finetune_angle_exact[0], np.arccos(np.sqrt(1.5) / 2), rtol=1e-12)
    assert np.isnan(regions.finetune_angle_exact[1])
    assert th.negative_transfer_regions(0.3, 1.0).finetune_angle_exact is None


# ---------------------------------------------------------------------------------------------
# the chi-square quadrature behind finite-n ridge


@pytest.mark.parametrize("n", [2.5, 3.0, 10.0, 120.0, 2000.0])
@pytest.mark.parametrize("c", [1e-8, 1e-3, 1.0, 50.0, 1e4])
def test_chi2_moments_against_30_digit_quadrature(n, c):
    mpmath.mp.dps = 30
    k, cc = mpmath.mpf(n), mpmath.mpf(c)
    norm = 2 ** (k / 2) * mpmath.gamma(k / 2)

    def pdf(u):
        return u ** (k / 2 - 1) * mpmath.exp(-u / 2) / norm

    spread = 12 * mpmath.sqrt(2 * k)
    points = sorted({mpmath.mpf(0), max(k - spread, k / 4), k, k + spread, mpmath.inf})
    first = mpmath.quad(lambda u: (cc / (u + cc)) ** 2 * pdf(u), points)
    second = mpmath.quad(lambda u: u / (u + cc) ** 2 * pdf(u), points)
    got = th._chi2_ridge_moments(np.array(n), np.array(c))
    assert_allclose(got, [float(first), float(second)], rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# broadcasting, scalars and validation


def test_broadcasting_equals_one_at_a_time():
    alpha = np.array([0.2, 0.7, 1.4])
    theta = np.array([0.1, 0.9])[:, None]
    for method, opts in [
        ("linear", {}),
        ("ridge", {"lam": 0.2, "dim": 80}),
        ("finetune", {"variant": "exact"}),
    ]:
        grid = th.transferability(method, alpha, theta, 0.3, **opts)
        assert grid.shape == (2, 3)
        for i, t in enumerate(theta[:, 0]):
            for j, a in enumerate(alpha):
                assert_allclose(
                    grid[i, j], th.transferability(method, a, t, 0.3, **opts), rtol=1e-13
                )


def test_scalar_in_scalar_out():
    for value in (
        th.scratch_error(0.5, 0.1),
        th.linear_transfer_error(0.5, 0.3, 0.1),
        th.ridge_transfer_error(0.5, 0.3, 0.1, 0.1, dim=50),
        th.finetune_error(0.5, 0.3, 0.1, variant="exact"),
        th.transferability("finetune", 0.5, 0.3, 0.1),
    ):
        assert np.ndim(value) == 0 and isinstance(value, float)


@pytest.mark.parametrize(
    ("call", "fragments"),
    [
        (lambda: th.scratch_error(0.5, -0.1), ["sigma", "-0.1", "[0, inf)"]),
        (lambda: th.scratch_error(0.0, 0.1), ["alpha", "0", "(0, inf)"]),
        (lambda: th.scratch_error(np.nan, 0.1), ["alpha", "nan"]),
        (lambda: th.linear_transfer_error(0.5, 4.0, 0.1), ["theta", "4", "[0, pi]"]),
        (lambda: th.linear_transfer_error(0.5, [0.1, -1.0], 0.1), ["theta", "-1"]),
        (lambda: th.ridge_transfer_error(0.5, 0.1, 0.1, -1), ["lam", "-1", "[0, inf)"]),
        (lambda: th.ridge_transfer_error(0.5, 0.1, 0.1, np.inf), ["lam", "inf"]),
        (lambda: th.finetune_error(0.5, 0.1, 0.1, variant="new"), ["variant", "'paper'", "'new'"]),
        (lambda: th.transferability("nope", 0.5, 0.1, 0.1), ["method", "'linear'", "'nope'"]),
        (lambda: th.transferability("ridge", 0.5, 0.1, 0.1), ["lam", "required"]),
        (lambda: th.transferability("linear", 0.5, 0.1, 0.1, lam=0.1), ["lam", "ridge"]),
        (lambda: th.transferability("linear", 0.5, 0.1, 0.1, variant="paper"), ["variant"]),
        (lambda: th.scratch_error(0.5, 0.1, dim=0), ["dim", ">= 1", "0"]),
        (lambda: th.scratch_error(0.5, 0.1, dim=2.5), ["dim", "integer"]),
        (lambda: th.ridge_transfer_error(0.5, 0.1, 0.1, 0.1, depth=1), ["depth", ">= 2"]),
        (lambda: th.scratch_error(0.5, 0.1, target_norm=0), ["target_norm", "(0, inf)"]),
        (lambda: th.scratch_error("abc", 0.1), ["alpha", "'abc'"]),
    ],
)
def test_bad_input_names_parameter_value_and_range(call, fragments):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("alpha", [1.0 - 1e-16, 1.0 + 2.3e-16, 0.5 + 1e-16])
def test_finite_size_forms_take_a_whole_sample_count_up_to_rounding(alpha):
    # a grid's alpha = 0.9999999999999999 at D = 500 is n = 500, not a vanishing D - n (which
    # made the fine-tuning quadrature ask for a 2.7e15-point grid)
    exact = round(alpha * 500) / 500
    for sigma in (0.0, 0.2):
        for method, options in (
            ("linear", {}),
            ("ridge", {"lam": 0.1}),
            ("finetune", {"variant": "exact"}),
            ("finetune", {"variant": "paper"}),
        ):
            got = th.transferability(method, alpha, 1.2, sigma, dim=500, **options)
            want = th.transferability(method, exact, 1.2, sigma, dim=500, **options)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_broadcast_shapes_and_signed_zeros_of_the_fast_paths():
    """The grid paths (no spreading copies, fine-tuning's product written where alpha < 1 only)
    keep every input's shape and give +0.0, never -0.0, where the data pin w down."""
    alpha, theta, sigma = np.array([[0.5], [1.0], [1.5]]), np.array([0.3, 2.5]), np.array(0.2)
    assert th.linear_transfer_error(alpha, 0.3, [0.1, 0.2, 0.3, 0.4]).shape == (3, 4)
    assert th.ridge_transfer_error(alpha, 0.3, [0.1, 0.2], 0.1).shape == (3, 2)
    assert th.linear_transfer_error(0.5, theta, 0.2, dim=50).shape == (2,)
    for variant in ("paper", "exact"):
        gain = th.transferability("finetune", alpha, theta, sigma, variant=variant)
        assert gain.shape == (3, 2)
        assert np.all(gain[1:] == 0.0) and not np.any(np.signbit(gain[1:]))
        assert gain[0, 1] < 0.0 < gain[0, 0]
        wide = th.transferability("finetune", 0.5, theta, [[0.1], [0.2], [0.3]], variant=variant)
        assert wide.shape == (3, 2)
    exact = th.transferability("finetune", alpha, theta, sigma, variant="exact", dim=50)
    assert not np.any(np.signbit(exact[1:])) and np.all(exact[1:] == 0.0)
    noiseless = th.linear_transfer_error(alpha, np.array([0.0, 0.3]), 0.0, dim=50)
    assert noiseless[0, 0] == 0.0 and np.all(np.isfinite(noiseless))
