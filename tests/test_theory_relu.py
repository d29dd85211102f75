"""Closed forms of Section 4 / Appendix C: the arc-cosine kernel, exact losses and projections
against Monte Carlo, Mercer identities, the power-law fit, the boundary, teachers, validation.

Monte-Carlo tolerances are set from the standard error of each estimate (five of them), with
fixed seeds.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from featurefate import tasks
from featurefate.theory import relu as th


def _unit(rng, shape):
    g = rng.standard_normal(shape)
    return g / np.linalg.norm(g, axis=-1, keepdims=True)


def _relu_features(X, W):
    return np.maximum(X @ W.T, 0.0)


# ---------------------------------------------------------------------------------------------
# the kernel


def test_kernel_known_values():
    w = np.array([[3.0, 0.0, 0.0]])
    cases = {
        "same direction": (np.array([[2.0, 0.0, 0.0]]), 3.0 * 2.0 / 2.0),
        "opposite": (np.array([[-1.0, 0.0, 0.0]]), 0.0),
        "orthogonal": (np.array([[0.0, 5.0, 0.0]]), 3.0 * 5.0 / (2.0 * np.pi)),
        "zero row": (np.zeros((1, 3)), 0.0),
    }
    for name, (v, expected) in cases.items():
        assert_allclose(th.relu_kernel(w, v)[0, 0], expected, rtol=1e-14, atol=1e-15, err_msg=name)
    # 60 degrees: (sin + (pi - phi) cos) / (2 pi) with phi = pi/3
    v = np.array([[0.5, np.sqrt(3) / 2, 0.0]])
    phi = np.pi / 3
    expected = 3.0 * (np.sin(phi) + (np.pi - phi) * np.cos(phi)) / (2 * np.pi)
    assert_allclose(th.relu_kernel(w, v)[0, 0], expected, rtol=1e-14)


def test_kappa_is_safe_past_the_ends():
    assert th.kappa(1.0) == 0.5
    assert th.kappa(1.0 + 1e-12) == 0.5
    assert th.kappa(-1.0 - 1e-12) == 0.0
    assert_allclose(th.kappa(0.0), 1.0 / (2 * np.pi), rtol=1e-15)
    # identical rows whose computed cosine rounds above 1
    w = np.array([[0.1, 0.2, 0.3]]) * 7.1
    assert np.isfinite(th.relu_kernel(w, w)).all()
    assert_allclose(th.relu_kernel(w, w)[0, 0], np.sum(w**2) / 2, rtol=1e-14)


def test_kernel_against_monte_carlo():
    rng = np.random.default_rng(0)
    d, samples = 5, 400_000
    W = rng.standard_normal((3, d)) * np.array([[0.5], [1.0], [2.0]])
    V = np.concatenate([rng.standard_normal((2, d)), W[:1] * 1.5])  # one pair at zero angle
    X = rng.standard_normal((samples, d))
    products = _relu_features(X, W)[:, :, None] * _relu_features(X, V)[:, None, :]
    estimate = products.mean(axis=0)
    stderr = products.std(axis=0) / np.sqrt(samples)
    exact = th.relu_kernel(W, V)
    assert np.all(np.abs(exact - estimate) < 5 * stderr + 1e-12)


def test_kernel_is_batched_and_gram_matrices_agree():
    rng = np.random.default_rng(1)
    W, V = rng.standard_normal((4, 6, 3)), rng.standard_normal((4, 5, 3))
    batched = th.relu_kernel(W, V)
    for i in range(4):
        assert_allclose(batched[i], th.relu_kernel(W[i], V[i]), rtol=1e-15)
    grams = th.gram_matrices(W, V)
    assert_allclose(grams.model, th.relu_kernel(W, W))
    assert_allclose(grams.cross, batched)
    assert_allclose(grams.teacher, th.relu_kernel(V, V))
    assert_allclose(grams.model, np.swapaxes(grams.model, -1, -2), rtol=1e-15)
    # broadcasting one teacher against a batch of models
    assert_allclose(th.relu_kernel(W, V[0]), th.relu_kernel(W, np.broadcast_to(V[0], V.shape)))


# ---------------------------------------------------------------------------------------------
# losses


def test_generalization_error_against_monte_carlo():
    rng = np.random.default_rng(2)
    d, m, k, samples = 6, 7, 4, 400_000
    W, U = _unit(rng, (m, d)), _unit(rng, (k, d))
    c, a = rng.standard_normal(m), rng.standard_normal(k)
    X = rng.standard_normal((samples, d))
    diff = tasks.relu_network_output(X, W, c) - tasks.relu_network_output(X, U, a)
    squared = diff**2
    exact = th.generalization_error(c, W, a, U)
    assert abs(exact - squared.mean()) < 5 * squared.std() / np.sqrt(samples)
    assert_allclose(th.function_norm(c, W), th.generalization_error(c, W, np.zeros(k), U))


def test_generalization_error_is_zero_for_the_teacher_itself():
    rng = np.random.default_rng(3)
    U, a = _unit(rng, (5, 4)), rng.standard_normal(5)
    # the same function written with duplicated rows: m = 10 rows, each teacher row twice
    W = np.concatenate([U, U])
    c = np.concatenate([a, a])
    assert th.generalization_error(c, W, a, U) < 1e-15
    assert th.generalization_error(a, U, a, U) < 1e-15


def test_generalization_error_is_batched():
    rng = np.random.default_rng(4)
    W, U = _unit(rng, (3, 6, 4)), _unit(rng, (3, 5, 4))
    c, a = rng.standard_normal((3, 6)), rng.standard_normal((3, 5))
    batched = th.generalization_error(c, W, a, U)
    assert batched.shape == (3,)
    for i in range(3):
        assert_allclose(batched[i], th.generalization_error(c[i], W[i], a[i], U[i]), rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# Mercer decomposition and projections


def test_projection_against_monte_carlo_regression():
    """|P_perp f_t|^2 is the residual of the least-squares fit of f_t on the model's features."""
    rng = np.random.default_rng(5)
    d, m, k, samples = 4, 5, 6, 400_000
    W, U = _unit(rng, (m, d)), _unit(rng, (k, d))
    a = rng.uniform(0.5, 1.5, k)
    proj = th.rkhs_projection(W, U, a)
    X = rng.standard_normal((samples, d))
    features = _relu_features(X, W)
    target = tasks.relu_network_output(X, U, a)
    coef, *_ = np.linalg.lstsq(features, target, rcond=None)
    squared = (target - features @ coef) ** 2
    # in-sample residual is biased low by O(m / samples); the MC error dominates
    assert abs(proj.orthogonal - squared.mean()) < 5 * squared.std() / np.sqrt(samples)
    assert proj.orthogonal > 1e-3  # a real test: the teacher is far from the span
    total = th.function_norm(a, U)
    assert_allclose(proj.in_span + proj.orthogonal, total, rtol=1e-12)


def test_projection_of_a_teacher_inside_the_span_is_zero():
    rng = np.random.default_rng(6)
    U = _unit(rng, (3, 5))
    W = np.concatenate([U, _unit(rng, (4, 5))])
    proj = th.rkhs_projection(W, U, np.ones(3))
    assert proj.orthogonal < 1e-13
    assert_allclose(proj.in_span, th.function_norm(np.ones(3), U), rtol=1e-12)


def test_projection_is_robust_to_a_rank_deficient_gram():
    rng = np.random.default_rng(7)
    W, U = _unit(rng, (4, 5)), _unit(rng, (3, 5))
    a = np.ones(3)
    duplicated = np.concatenate([W, W, W[:2]])  # Gram of rank 4 in 10 rows
    assert np.linalg.matrix_rank(th.relu_kernel(duplicated, duplicated)) == 4
    once, thrice = th.rkhs_projection(W, U, a), th.rkhs_projection(duplicated, U, a)
    assert_allclose(thrice.orthogonal, once.orthogonal, rtol=1e-9)
    assert th.mercer_decomposition(duplicated).rank == 4
    # a huge cutoff keeps only the top eigenfunction: less of the teacher is explained
    coarse = th.rkhs_projection(W, U, a, rcond=0.5)
    assert coarse.orthogonal > once.orthogonal


def test_mercer_eigenfunctions_are_orthonormal_and_rebuild_the_kernel():
    rng = np.random.default_rng(8)
    m = 6
    W = _unit(rng, (m, 3))  # m > d + 1: features are still independent (ReLU), full rank
    mercer = th.mercer_decomposition(W)
    assert mercer.rank == m
    K = th.relu_kernel(W, W)
    coefs = mercer.eigenvectors / np.sqrt(m * mercer.eigenvalues)  # psi_a = sum_i coef_ia phi_i
    assert_allclose(coefs.T @ K @ coefs, np.eye(m), atol=1e-10)
    rebuilt = (mercer.eigenvectors * mercer.eigenvalues) @ mercer.eigenvectors.T
    assert_allclose(rebuilt, K / m, atol=1e-14)
    assert np.all(np.diff(mercer.eigenvalues) <= 0)


def test_projection_is_batched():
    rng = np.random.default_rng(9)
    W, U = _unit(rng, (3, 5, 4)), _unit(rng, (3, 6, 4))
    a = np.ones((3, 6))
    batched = th.rkhs_projection(W, U, a)
    for i in range(3):
        single = th.rkhs_projection(W[i], U[i], a[i])
        assert_allclose(batched.orthogonal[i], single.orthogonal, rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# kernel alignment


def test_alignment_identities():
    rng = np.random.default_rng(10)
    W, V = _unit(rng, (5, 4)), _unit(rng, (6, 4))
    assert_allclose(th.kernel_alignment(W, W), 1.0, rtol=1e-14)
    # the same kernel written with each row twice, or with the rows scaled
    assert_allclose(th.kernel_alignment(np.concatenate([W, W]), W), 1.0, rtol=1e-14)
    assert_allclose(th.kernel_alignment(3.0 * W, W), 1.0, rtol=1e-14)
    plain = th.kernel_alignment(W, V)
    centred = th.kernel_alignment(W, V, centered=True)
    assert 0.0 < centred < plain < 1.0
    # zero weight removes a row
    weights = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    assert_allclose(th.kernel_alignment(W, V, weights_b=weights), th.kernel_alignment(W, V[:3]))


def test_alignment_against_test_point_kernels():
    rng = np.random.default_rng(11)
    W, V = _unit(rng, (4, 3)), _unit(rng, (5, 3))
    X = rng.standard_normal((3000, 3))
    Ka, Kb = th.feature_kernel(X, W), th.feature_kernel(X, V)
    off = ~np.eye(len(X), dtype=bool)  # x != x' pairs
    estimate = np.sum(Ka[off] * Kb[off]) / np.sqrt(np.sum(Ka[off] ** 2) * np.sum(Kb[off] ** 2))
    assert abs(th.kernel_alignment(W, V) - estimate) < 0.01


def test_feature_kernel_weights():
    rng = np.random.default_rng(12)
    X, W = rng.standard_normal((7, 3)), rng.standard_normal((4, 3))
    phi = _relu_features(X, W)
    assert_allclose(th.feature_kernel(X, W), phi @ phi.T / 4, rtol=1e-14)
    weights = np.array([2.0, 0.0, 1.0, 1.0])
    expected = (phi * weights / 4) @ phi.T
    assert_allclose(th.feature_kernel(X, W, weights), expected, rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# power law and boundary


def test_power_law_fit_of_exact_data():
    n = np.array([10.0, 20, 40, 80, 160])
    fit = th.fit_power_law(n, 3.0 * n**-1.18)
    assert_allclose(fit.exponent, 1.18, rtol=1e-12)
    assert_allclose(fit.amplitude, 3.0, rtol=1e-12)
    assert fit.residual_std < 1e-12
    assert_allclose(fit(n), 3.0 * n**-1.18, rtol=1e-12)


def test_power_law_fit_recovers_a_known_exponent_with_coverage():
    rng = np.random.default_rng(13)
    n = np.repeat(np.geomspace(20, 2000, 8), 5)
    covered_nu = covered_amplitude = 0
    trials = 400
    for _ in range(trials):
        error = 0.5 * n**-1.05 * np.exp(0.2 * rng.standard_normal(n.size))
        fit = th.fit_power_law(n, error)
        covered_nu += fit.exponent_interval[0] <= 1.05 <= fit.exponent_interval[1]
        covered_amplitude += fit.amplitude_interval[0] <= 0.5 <= fit.amplitude_interval[1]
    assert 0.92 <= covered_nu / trials <= 0.98
    assert 0.92 <= covered_amplitude / trials <= 0.98
    assert abs(fit.exponent - 1.05) < 4 * fit.exponent_stderr


def test_predicted_boundary():
    n_star = th.predicted_boundary(2.0, 1.2, np.array([1e-3, 1e-2, 0.0]))
    assert_allclose(2.0 * n_star[:2] ** -1.2, [1e-3, 1e-2], rtol=1e-12)
    assert n_star[2] == np.inf
    assert n_star[0] > n_star[1]
    assert np.ndim(th.predicted_boundary(1.0, 1.0, 0.5)) == 0


# ---------------------------------------------------------------------------------------------
# teachers


def test_teachers_on_sphere_with_the_right_removals():
    teachers = tasks.relu_teachers(8, 10, 0.3, n_instances=5, seed=0)
    assert teachers.W.shape == (5, 10, 8)
    assert_allclose(np.linalg.norm(teachers.W, axis=-1), 1.0, rtol=1e-15)
    assert np.all(teachers.removed.sum(axis=1) == 3)
    assert np.all(teachers.c_source[teachers.removed] == 0.0)
    assert np.all(teachers.c_source[~teachers.removed] == 1.0)
    assert np.all(teachers.c_target == 1.0)
    # the removed subsets differ between instances
    assert len({tuple(row) for row in teachers.removed}) > 1


def test_teachers_normalisation_and_weight():
    teachers = tasks.relu_teachers(
        4, 8, 0.25, output_weight=2.0, source_normalisation="remaining", seed=1
    )
    assert_allclose(teachers.c_source[~teachers.removed], 2.0 * 8 / 6)
    assert_allclose(teachers.c_source.sum(), teachers.c_target.sum())


def test_teachers_are_seeded():
    first = tasks.relu_teachers(5, 6, 0.5, n_instances=2, seed=7)
    again = tasks.relu_teachers(5, 6, 0.5, n_instances=2, seed=np.random.default_rng(7))
    assert_allclose(first.W, again.W)
    assert np.array_equal(first.removed, again.removed)
    other = tasks.relu_teachers(5, 6, 0.5, n_instances=2, seed=np.random.SeedSequence(8))
    assert not np.allclose(first.W, other.W)


def test_sample_relu_data_labels_are_the_teacher():
    teachers = tasks.relu_teachers(4, 3, 0.0, n_instances=2, seed=2)
    X, y = tasks.sample_relu_data(teachers.W, teachers.c_target, 9, seed=3)
    assert X.shape == (2, 9, 4) and y.shape == (2, 9)
    for i in range(2):
        expected = np.maximum(X[i] @ teachers.W[i].T, 0.0).mean(axis=1)
        assert_allclose(y[i], expected, rtol=1e-14)
    _, noisy = tasks.sample_relu_data(teachers.W, teachers.c_target, 9, sigma=0.5, seed=3)
    assert not np.allclose(noisy, y)


# ---------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: th.relu_kernel(np.ones(3), np.ones((2, 3))), "W must have shape"),
        (lambda: th.relu_kernel(np.ones((2, 3)), np.ones((2, 4))), "same input dimension"),
        (lambda: th.relu_kernel(np.full((2, 3), np.nan), np.ones((2, 3))), "W must be a finite"),
        (
            lambda: th.generalization_error(
                np.ones(3), np.ones((2, 3)), np.ones(2), np.ones((2, 3))
            ),
            "c must have shape",
        ),
        (
            lambda: th.rkhs_projection(np.ones((2, 3)), np.ones((2, 3)), np.ones(2), rcond=1.5),
            r"rcond must be a finite number in \[0, 1\); got 1.5",
        ),
        (
            lambda: th.kernel_alignment(np.ones((2, 3)), np.ones((2, 3)), weights_b=[0, 0]),
            "weights_b must have a positive sum",
        ),
        (
            lambda: th.kernel_alignment(np.ones((2, 3)), np.ones((2, 3)), weights_a=[-1, 2]),
            r"weights_a must be a finite number in \[0, inf\); got -1",
        ),
        (lambda: th.fit_power_law([1, 2], [1, 2]), "at least 3 points"),
        (lambda: th.fit_power_law([1, 1, 1], [1, 2, 3]), "2 distinct"),
        (lambda: th.fit_power_law([1, 2, 3], [1, 0, 3]), r"error must be a finite number in \(0"),
        (lambda: th.fit_power_law([1, 2, 3], [1, 2, 3], confidence=1.0), "confidence"),
        (
            lambda: th.predicted_boundary(1.0, 0.0, 0.1),
            r"exponent must be a finite number in \(0, inf\); got 0",
        ),
        (lambda: th.predicted_boundary(1.0, 1.0, -0.1), "residual"),
        (lambda: tasks.relu_teachers(3, 4, 1.5), r"rho must be a finite number in \[0, 1\]"),
        (lambda: tasks.relu_teachers(3, 0, 0.5), "width must be an integer >= 1"),
        (lambda: tasks.relu_teachers(3, 4, 0.5, source_normalisation="x"), "source_normalisation"),
        (
            lambda: tasks.relu_teachers(3, 4, 1.0, source_normalisation="remaining"),
            "at least one source neuron",
        ),
        (lambda: tasks.sample_relu_data(np.ones((2, 3)), np.ones(3), 4), "W must have shape"),
    ],
)
def test_validation(call, match):
    with pytest.raises(ValueError, match=match):
        call()
