"""Ground-truth estimators: known exact solutions, gradient-flow endpoints, and Monte Carlo
against every closed form of theory/linear.py with tolerances from the standard error."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.integrate import solve_ivp

from featurefate import estimators as est
from featurefate.tasks import draw_instances
from featurefate.theory import linear as th

# ---------------------------------------------------------------------------------------------
# known solutions


@pytest.fixture(params=[(30, 12), (12, 30)], ids=["overparameterized", "underparameterized"])
def problem(request):
    dim, n = request.param
    return draw_instances(dim, n, 0.8, 0.3, 4, seed=11)


def test_min_norm_fit_is_pseudo_inverse_solution(problem):
    w = est.min_norm_fit(problem.X, problem.y)
    for k in range(4):
        assert_allclose(w[k], np.linalg.pinv(problem.X[k]) @ problem.y[k], atol=1e-12)
    if problem.n < problem.dim:  # interpolates, and lies in the row space of X
        assert_allclose(np.einsum("knd,kd->kn", problem.X, w), problem.y, atol=1e-10)
        rows = np.linalg.qr(np.swapaxes(problem.X, 1, 2))[0]
        assert_allclose(np.einsum("kdn,ken,ke->kd", rows, rows, w), w, atol=1e-12)


@pytest.mark.parametrize("shape", [(20, 50), (50, 50), (80, 50)], ids=["wide", "square", "tall"])
def test_gram_svd_agrees_with_lapack(shape):
    X = np.random.default_rng(3).standard_normal((3, *shape))
    U, s, Vt = est.gram_svd(X)
    s0 = est.thin_svd(X)[1]
    # square Gaussian matrices have sigma_min / sigma_max ~ 1e-3: relative error ~ eps / 1e-6
    assert_allclose(s, s0, rtol=1e-9)
    assert_allclose((U * s[:, None, :]) @ Vt, X, atol=1e-12)
    assert_allclose(
        Vt @ np.swapaxes(Vt, 1, 2),
        np.broadcast_to(np.eye(s.shape[1]), U.shape[:1] + (s.shape[1],) * 2),
        atol=1e-8,
    )
    y = np.random.default_rng(4).standard_normal((3, shape[0]))
    assert_allclose(
        est._pinv_solve(X, y[..., None], (U, s, Vt)), est._pinv_solve(X, y[..., None]), atol=1e-8
    )


def test_gram_svd_drops_unresolvable_directions():
    """A rank-3 (10, 40) matrix: 7 exact zeros, zero vectors, and the same pseudo-inverse."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((1, 10, 3)) @ rng.standard_normal((1, 3, 40))
    U, s, Vt = est.gram_svd(X)
    assert np.count_nonzero(s) == 3 and np.all(s[0, 3:] == 0.0)
    assert np.all(Vt[0, 3:] == 0.0) and np.all(U[0, :, 3:] == 0.0)
    y = rng.standard_normal((1, 10))
    assert_allclose(
        est._pinv_solve(X, y[..., None], (U, s, Vt)), est._pinv_solve(X, y[..., None]), atol=1e-10
    )


@pytest.mark.parametrize("shape", [(20, 50), (50, 50), (51, 50), (80, 50)])
def test_gram_svd_without_left_vectors_is_the_same_fit(shape):
    """left=False: no U for tall X, the same s and V, and X^+ Y through V diag(s^-2) V^T X^T Y
    equal to the U form (the old path) and to LAPACK's pseudo-inverse to rounding."""
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((3, *shape)), rng.standard_normal((3, shape[0]))
    full, fast = est.gram_svd(X), est.gram_svd(X, left=False)
    assert (fast[0] is None) == (shape[0] > shape[1])
    for got, want in zip(fast, full, strict=True):
        assert got is None or np.array_equal(got, want)
    # (51, 50): sigma_min / sigma_max ~ 1e-2, the worst conditioning a tall sweep cell sees
    w = est.min_norm_fit(X, y, svd=fast)
    assert_allclose(w, est.min_norm_fit(X, y, svd=full), rtol=0, atol=1e-11 * np.abs(w).max())
    assert_allclose(w, (np.linalg.pinv(X) @ y[..., None])[..., 0], atol=1e-9 * np.abs(w).max())
    assert_allclose(
        est.exact_endpoints(X, y, np.ones(shape[1]), svd=fast)["finetune_exact"],
        est.exact_endpoints(X, y, np.ones(shape[1]))["finetune_exact"],
        atol=1e-9 * np.abs(w).max(),
    )


def test_gram_svd_without_left_vectors_drops_unresolvable_directions():
    """A rank-3 tall (40, 10) matrix: the V form of X^+ skips the 7 null directions."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((1, 40, 3)) @ rng.standard_normal((1, 3, 10))
    y = rng.standard_normal((1, 40))
    U, s, Vt = est.gram_svd(X, left=False)
    assert U is None and np.count_nonzero(s) == 3 and np.all(Vt[0, 3:] == 0.0)
    assert_allclose(est.min_norm_fit(X, y, svd=(U, s, Vt)), est.min_norm_fit(X, y), atol=1e-10)


def test_frozen_identity_features_are_min_norm_and_ridge():
    inst = draw_instances(20, 15, 0.4, 0.2, 3, seed=2)
    eye = np.eye(20)
    assert_allclose(
        est.frozen_feature_fit(inst.X, inst.y, eye),
        est.min_norm_fit(inst.X, inst.y),
        atol=1e-11,
    )
    lam = 0.3
    for k in range(3):
        X, y = inst.X[k], inst.y[k]
        ridge = np.linalg.solve(X.T @ X + 15 * lam * eye, X.T @ y)
        assert_allclose(est.frozen_feature_fit(X, y, eye, lam=lam), ridge, atol=1e-12)


def test_frozen_feature_fit_over_a_lam_sequence_is_each_fit():
    """A sequence of penalties: one projection, the same fits bit for bit as one call each."""
    inst = draw_instances(30, 12, 0.4, 0.2, 3, seed=8)
    features = np.random.default_rng(9).standard_normal((3, 2, 30))
    lams = [0.0, 0.1, 0.5]
    together = est.frozen_feature_fit(inst.X, inst.y, features, lam=lams)
    assert together.shape == (3, 3, 30)
    for lam, w in zip(lams, together, strict=True):
        assert np.array_equal(w, est.frozen_feature_fit(inst.X, inst.y, features, lam=lam))
    assert not np.allclose(together[1], together[2])
    with pytest.raises(ValueError, match="features must be finite"):
        est.frozen_feature_fit(inst.X, inst.y, np.full((2, 30), np.nan), lam=0.1)
    with pytest.raises(ValueError, match="lam"):
        est.frozen_feature_fit(inst.X, inst.y, features, lam=[[0.1]])


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("lam", [0.0, 0.25])
def test_linear_transfer_fit_is_one_coefficient_along_beta_s(depth, lam):
    inst = draw_instances(40, 25, 1.0, 0.5, 3, source_norm=1.7, seed=5)
    w = est.linear_transfer_fit(inst.X, inst.y, inst.beta_s, lam=lam, depth=depth)
    e = inst.beta_s / np.linalg.norm(inst.beta_s, axis=1, keepdims=True)
    z = np.einsum("knd,kd->kn", inst.X, e)
    lam_eff = lam / 1.7 ** (2 * (depth - 1) / depth)
    coef = np.sum(z * inst.y, axis=1) / (np.sum(z * z, axis=1) + 25 * lam_eff)
    assert_allclose(w, coef[:, None] * e, atol=1e-12)


@pytest.mark.parametrize("variant", ["paper", "exact"])
def test_finetune_fit_interpolates_and_keeps_beta_s_outside_rows(variant):
    inst = draw_instances(30, 12, 0.9, 0.6, 3, seed=8)
    w = est.finetune_fit(inst.X, inst.y, inst.beta_s, variant=variant)
    assert_allclose(np.einsum("knd,kd->kn", inst.X, w), inst.y, atol=1e-10)
    projector = np.eye(30) - np.linalg.pinv(inst.X) @ inst.X
    outside = np.einsum("kde,ke->kd", projector, w)
    residual = np.einsum("kde,ke->kd", projector, inst.beta_s)
    scale = np.sum(outside * residual, axis=1) / np.sum(residual**2, axis=1)
    assert_allclose(outside, scale[:, None] * residual, atol=1e-12)
    if variant == "paper":
        assert_allclose(scale, 1.0, rtol=1e-12)
    else:
        a, b = np.sum(residual**2, axis=1), np.sum(est.min_norm_fit(inst.X, inst.y) ** 2, axis=1)
        assert_allclose(scale**4, a * scale**2 + b, rtol=1e-10)
        assert np.all(scale > 1.0)  # noisy labels inflate c (SPEC section 2)


def test_finetune_fit_forgets_initialisation_when_underparameterized():
    inst = draw_instances(12, 30, 0.9, 0.6, 2, seed=8)
    least_squares = est.min_norm_fit(inst.X, inst.y)
    for variant in th.FINETUNE_VARIANTS:
        w = est.finetune_fit(inst.X, inst.y, inst.beta_s, variant=variant)
        assert_allclose(w, least_squares, atol=1e-12)


@pytest.mark.parametrize("depth", [2, 3])
def test_exact_finetune_endpoint_matches_integrated_gradient_flow(depth):
    """The corrected endpoint is where balanced gradient flow from beta_s really goes.

    After pretraining from small init the layers are balanced and rank one, and the end-to-end
    vector follows dw/dt = -|w|^(2-2/L) (g + (L-1) w_hat w_hat^T g) (Arora et al., 2018), with
    g the gradient of the empirical loss. Integrated to convergence, it must land on
    X^+ y + c (I - P) beta_s with the c of solve_finetune_scale, not on the paper's c = 1.
    """
    inst = draw_instances(12, 6, np.pi / 3, 0.8, 1, seed=3)
    X, y, beta_s = inst.X[0], inst.y[0], inst.beta_s[0]
    S, b = X.T @ X / 6, X.T @ y / 6

    def flow(_, w):
        g = S @ w - b
        norm = np.linalg.norm(w)
        w_hat = w / norm
        return -(norm ** (2 - 2 / depth)) * (g + (depth - 1) * w_hat * (w_hat @ g))

    end = solve_ivp(flow, (0, 2000), beta_s, method="LSODA", rtol=1e-11, atol=1e-13).y[:, -1]
    exact = est.finetune_fit(X, y, beta_s, variant="exact", depth=depth)
    paper = est.finetune_fit(X, y, beta_s, variant="paper", depth=depth)
    assert_allclose(end, exact, atol=1e-9)
    assert np.max(np.abs(end - paper)) > 1e-2


def test_all_finite_is_isfinite_all_including_overflow():
    """The dot-product shortcut of the data check agrees with np.all(np.isfinite(a)), also
    where the sum of squares overflows (entries ~1e200) and on non-contiguous views."""
    from featurefate._validation import all_finite

    rng = np.random.default_rng(12)
    for a in (
        rng.standard_normal((3, 5, 4)),
        np.full((2, 3), 1e200),
        np.array([1e200, -1e200, np.nan]),
        np.array([1.0, np.inf]),
        np.array([-np.inf, np.inf]),
        np.zeros((0, 4)),
        rng.standard_normal((6, 8))[::2, ::3],
    ):
        assert all_finite(a) == bool(np.all(np.isfinite(a)))
    with pytest.raises(ValueError, match="finite"):
        est.min_norm_fit(np.ones((3, 4)), np.array([1e200, 1e200, np.nan]))


def test_estimators_reject_bad_shapes_and_values():
    with pytest.raises(ValueError, match="shape"):
        est.min_norm_fit(np.ones((3, 4)), np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        est.min_norm_fit(np.full((3, 4), np.nan), np.ones(3))
    with pytest.raises(ValueError, match="non-zero"):
        est.linear_transfer_fit(np.ones((3, 4)), np.ones(3), np.zeros(4))
    with pytest.raises(ValueError, match="variant"):
        est.finetune_fit(np.ones((3, 4)), np.ones(3), np.ones(4), variant="fast")


# ---------------------------------------------------------------------------------------------
# Monte Carlo against the closed forms (finite-size forms at the simulated D)

DIM = 100
INSTANCES = 300


def _errors(alpha, theta, sigma, lam, seed):
    inst = draw_instances(DIM, round(alpha * DIM), theta, sigma, INSTANCES, seed=seed)
    fits = {
        "scratch": est.min_norm_fit(inst.X, inst.y),
        "linear": est.linear_transfer_fit(inst.X, inst.y, inst.beta_s),
        "ridge": est.linear_transfer_fit(inst.X, inst.y, inst.beta_s, lam=lam),
        "finetune-paper": est.finetune_fit(inst.X, inst.y, inst.beta_s, variant="paper"),
        "finetune-exact": est.finetune_fit(inst.X, inst.y, inst.beta_s, variant="exact"),
    }
    return {name: est.generalization_error(w, inst.beta_t) for name, w in fits.items()}


def _theory(name, alpha, theta, sigma, lam):
    if name == "scratch":
        return th.scratch_error(alpha, sigma, dim=DIM)
    if name == "linear":
        return th.linear_transfer_error(alpha, theta, sigma, dim=DIM)
    if name == "ridge":
        return th.ridge_transfer_error(alpha, theta, sigma, lam, dim=DIM)
    variant = name.split("-")[1]
    return th.finetune_error(alpha, theta, sigma, variant=variant, dim=DIM)


CASES = [
    # alpha, theta, sigma, lam
    (0.3, np.pi / 4, 1.0, 0.1),
    (0.5, np.pi / 3, 0.3, 0.5),
    (0.7, 1.2, 0.5, 0.05),
    (1.5, np.pi / 8, 0.3, 0.3),
]


@pytest.mark.parametrize(("alpha", "theta", "sigma", "lam"), CASES)
def test_closed_forms_match_monte_carlo(alpha, theta, sigma, lam):
    errors = _errors(alpha, theta, sigma, lam, seed=1000 + int(100 * alpha))
    for name, err in errors.items():
        mean, se = err.mean(), err.std(ddof=1) / np.sqrt(err.size)
        expected = _theory(name, alpha, theta, sigma, lam)
        assert abs(mean - expected) < 4.0 * se, (
            f"{name}: MC {mean:.5f} ± {se:.5f} vs {expected:.5f}"
        )


def test_finite_source_finetune_matches_monte_carlo():
    """Pretraining on n_s noiseless source samples gives w_s = X_s^+ y_s; the formula is then exact."""
    alpha, alpha_s, theta = 0.4, 0.6, 0.7
    n, n_s = round(alpha * DIM), round(alpha_s * DIM)
    inst = draw_instances(DIM, n, theta, 0.3, INSTANCES, seed=77)
    rng = np.random.default_rng(78)
    X_s = rng.standard_normal((INSTANCES, n_s, DIM))
    w_s = est.min_norm_fit(X_s, np.einsum("knd,kd->kn", X_s, inst.beta_s))
    w_ft = est.finetune_fit(inst.X, inst.y, w_s)  # the paper's endpoint from the source model
    gain = est.generalization_error(est.min_norm_fit(inst.X, inst.y), inst.beta_t)
    gain -= est.generalization_error(w_ft, inst.beta_t)
    expected = th.finetune_transferability_finite_source(alpha, theta, alpha_s, 0.0)
    se = gain.std(ddof=1) / np.sqrt(INSTANCES)
    assert abs(gain.mean() - expected) < 4.0 * se


def test_exact_finetune_c_is_one_when_noiseless_and_large():
    inst = draw_instances(400, 200, 0.5, 0.0, 4, seed=9)
    interpolant = est.min_norm_fit(inst.X, inst.y)
    residual = est.finetune_fit(inst.X, inst.y, inst.beta_s, variant="exact") - interpolant
    paper = est.finetune_fit(inst.X, inst.y, inst.beta_s, variant="paper") - interpolant
    c = np.sum(residual * paper, axis=1) / np.sum(paper**2, axis=1)
    assert_allclose(c, 1.0, atol=0.03)  # O(D^-1/2) fluctuations of |X^+ y|^2 and |(I-P)beta_s|^2


@pytest.mark.parametrize("depth", [2, 3])
def test_exact_endpoints_are_each_methods_fit(depth):
    inst = draw_instances(30, 12, 0.6, 0.3, 4, seed=5)
    ends = est.exact_endpoints(inst.X, inst.y, inst.beta_s, depth=depth)
    assert set(ends) == {"scratch", "linear", "finetune_paper", "finetune_exact"}
    assert_allclose(ends["scratch"], est.min_norm_fit(inst.X, inst.y), atol=1e-12)
    assert_allclose(
        ends["linear"], est.linear_transfer_fit(inst.X, inst.y, inst.beta_s, depth=depth)
    )
    for variant in ("paper", "exact"):
        expected = est.finetune_fit(inst.X, inst.y, inst.beta_s, variant=variant, depth=depth)
        assert_allclose(ends[f"finetune_{variant}"], expected, atol=1e-12)
    # sigma > 0 and n < D: the corrected endpoint differs from the paper's
    assert np.abs(ends["finetune_exact"] - ends["finetune_paper"]).max() > 1e-3
