"""Teachers, sampling and sufficient statistics."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from featurefate import tasks


@pytest.mark.parametrize("theta", [0.0, 0.7, np.pi / 2, np.pi])
def test_teacher_pair_angle_and_norms(theta):
    beta_s, beta_t = tasks.teacher_pair(
        50, theta, source_norm=2.0, target_norm=0.5, n_instances=6, seed=1
    )
    assert beta_s.shape == beta_t.shape == (6, 50)
    assert_allclose(np.linalg.norm(beta_s, axis=1), 2.0, rtol=1e-12)
    assert_allclose(np.linalg.norm(beta_t, axis=1), 0.5, rtol=1e-12)
    cos = np.sum(beta_s * beta_t, axis=1) / 1.0
    assert_allclose(cos, np.cos(theta), atol=1e-12)


def test_teacher_orientation_is_random_and_seeded():
    a, _ = tasks.teacher_pair(30, 0.5, n_instances=200, seed=3)
    b, _ = tasks.teacher_pair(30, 0.5, n_instances=200, seed=3)
    assert_array_equal(a, b)
    # Haar orientation: each coordinate of a unit vector has mean 0 and variance 1/D
    assert abs(a.mean()) < 4 * np.sqrt(1 / 30 / a.size)
    assert_allclose((a**2).mean(), 1 / 30, rtol=0.05)
    single_s, single_t = tasks.teacher_pair(30, 0.5, seed=3)
    assert single_s.shape == single_t.shape == (30,)


def test_sample_data_statistics():
    beta = np.array([1.0, -2.0, 0.5])
    X, y = tasks.sample_data(beta, 20_000, 0.3, seed=4)
    assert X.shape == (20_000, 3) and y.shape == (20_000,)
    S, b = tasks.sufficient_statistics(X, y)
    # E[S] = I, E[b] = beta, each with standard error ~ 1/sqrt(n)
    assert_allclose(S, np.eye(3), atol=5 * np.sqrt(2 / 20_000))
    assert_allclose(b, beta, atol=5 * np.sqrt(6 / 20_000))
    residual = y - X @ beta
    assert_allclose(residual.std(), 0.3, rtol=0.03)


def test_sufficient_statistics_reproduce_the_empirical_loss():
    inst = tasks.draw_instances(8, 5, 0.3, 0.2, 3, seed=5)
    S, b = tasks.sufficient_statistics(inst.X, inst.y)
    w = np.random.default_rng(6).standard_normal((3, 8))
    direct = np.mean((np.einsum("knd,kd->kn", inst.X, w) - inst.y) ** 2, axis=1)
    via_stats = (
        np.einsum("kd,kde,ke->k", w, S, w) - 2 * np.sum(b * w, axis=1) + np.mean(inst.y**2, axis=1)
    )
    assert_allclose(via_stats, direct, rtol=1e-12)


def test_draw_instances_is_one_seed_one_draw():
    a = tasks.draw_instances(10, 7, 0.4, 0.1, 2, seed=9)
    b = tasks.draw_instances(10, 7, 0.4, 0.1, 2, seed=9)
    c = tasks.draw_instances(10, 7, 0.4, 0.1, 2, seed=10)
    assert_array_equal(a.X, b.X)
    assert_array_equal(a.y, b.y)
    assert not np.allclose(a.X, c.X)
    assert (a.dim, a.n, a.alpha) == (10, 7, 0.7)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: tasks.teacher_pair(1, 0.3), "dim"),
        (lambda: tasks.teacher_pair(10, -0.3), "theta"),
        (lambda: tasks.teacher_pair(10, 0.3, source_norm=0.0), "source_norm"),
        (lambda: tasks.teacher_pair(10, 0.3, n_instances=0), "n_instances"),
        (lambda: tasks.sample_data(np.ones(3), 0, 0.1), "n"),
        (lambda: tasks.sample_data(np.ones(3), 5, -0.1), "sigma"),
        (lambda: tasks.sufficient_statistics(np.ones((4, 3)), np.ones(3)), "shape"),
    ],
)
def test_bad_input(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()
