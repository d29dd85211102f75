"""The integrators of :mod:`featurefate.training`: step rules and the semi-implicit step.

Small D and few instances keep this fast. The semi-implicit step is checked against a dense
linear solve, against small-step gradient descent where that converges, against the exact
endpoint X^+ y at alpha = 1 where it does not, and against the gradient-flow endpoint that the
conservation laws (35) fix for a rank-one chain.
"""

import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from numpy.testing import assert_allclose

from featurefate import estimators as est
from featurefate import training as tr
from featurefate import transfer
from featurefate._jax import jax, jnp
from featurefate.nets.linear import (
    RankOneParams,
    end_to_end,
    init_params,
    rank_one_to_dense,
    upstream_rows,
)
from featurefate.tasks import draw_instances

KEY = jax.random.PRNGKey(0)


def _single(stats, i=0):
    """Instance ``i`` of batched statistics."""
    return tr.Statistics(*(None if a is None else a[i] for a in stats))


def _flat_jacobian(params):
    """:math:`J = \\partial w / \\partial \\theta`, shape (D, number of parameters)."""
    jac = jax.jacobian(end_to_end)(params)
    return np.concatenate([np.asarray(j).reshape(j.shape[0], -1) for j in jac], axis=1)


# ---------------------------------------------------------------------------------------------
# the curvature bound of the step rule


def _hessian_radius(params, R, b, c):
    """Spectral radius of the Hessian of the loss in all the parameters, by autodiff."""
    flat, unravel = ravel_pytree(params)
    hessian = jax.hessian(lambda f: tr.quadratic_loss(unravel(f), R, b, c))(flat)
    return np.max(np.abs(np.linalg.eigvalsh(np.asarray(hessian))))


def _bound_inputs(params, R, b):
    w = end_to_end(params)
    grad_w = 2.0 * ((R @ w) @ R - b)
    norms2 = [jnp.sum(layer**2) for layer in params]
    return norms2, jnp.linalg.norm(grad_w)


@pytest.mark.parametrize(("depth", "n"), [(2, 4), (2, 9), (3, 9), (4, 4)])
def test_curvature_bound_covers_the_hessian_at_random_points(depth, n):
    """H_t >= |eigenvalues| of the loss Hessian, so eta < 2 is a stable explicit step."""
    inst = draw_instances(6, n, 0.7, 0.5, 3, seed=depth + n)
    stats = tr.empirical_statistics(inst.X, inst.y)
    for i, scale in enumerate([0.3, 0.8, 1.5]):
        one = _single(stats, i)
        params = init_params(jax.random.PRNGKey(10 * depth + i), 6, depth, scale)
        norms2, grad_norm = _bound_inputs(params, one.R, one.b)
        bound = float(tr.curvature_bound(norms2, grad_norm, one.lam_max))
        radius = _hessian_radius(params, one.R, one.b, one.c)
        assert radius <= bound * (1 + 1e-12)
        # the explicit step is eta / H_t
        lr, _ = tr._step_size(
            jnp.asarray(1.0), jnp.asarray(True), norms2=norms2, grad_w_norm=grad_norm,
            lam_max=one.lam_max, grad_norm=None,
            rule=tr.StepRule(eta=1.9, lr=0.0, tol=0.0, max_move=0.0),
            fixed=False, capped=False, semi_implicit=False,
        )  # fmt: skip
        assert float(lr) * radius < 1.9 * (1 + 1e-12)


@pytest.mark.parametrize("depth", [2, 3])
def test_curvature_bound_is_attained_by_an_aligned_chain_at_its_minimum(depth):
    """A rank-one chain along S's top eigenvector, at a minimum (g = 0): the Hessian is the
    Gauss-Newton matrix 2 J^T S J, whose top eigenvalue is exactly the Gauss-Newton part of
    H_t, 2 lam_max sum_l prod_{k != l} |W_k|^2. A bound off by any factor fails here."""
    inst = draw_instances(6, 9, 0.7, 0.5, 1, seed=3)
    one = _single(tr.empirical_statistics(inst.X, inst.y))
    top = np.asarray(one.V)[0]  # eigenvector rows, largest eigenvalue first
    chain = RankOneParams(
        s=jnp.asarray(0.9 * top), amplitudes=jnp.asarray([1.3, -0.7][: depth - 1])
    )
    params = rank_one_to_dense(KEY, chain)
    R = one.R
    b = (R @ end_to_end(params)) @ R  # the loss is minimal here
    norms2, grad_norm = _bound_inputs(params, R, b)
    assert float(grad_norm) < 1e-12
    bound = float(tr.curvature_bound(norms2, grad_norm, one.lam_max))
    radius = _hessian_radius(params, R, b, 0.0)
    assert_allclose(bound, radius, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# the semi-implicit direction


def _exact_direction(params, one, lr):
    """:math:`(I + 2\\, lr\\, S P)^{-1} g` by a dense solve, with :math:`P = J J^\\top`."""
    V, lam = np.asarray(one.V), np.asarray(one.lam)
    S = V.T @ (lam[:, None] * V)
    w = np.asarray(end_to_end(params))
    J = _flat_jacobian(params)
    g = 2.0 * (S @ w - np.asarray(one.b))
    return np.linalg.solve(np.eye(w.size) + 2.0 * lr * S @ (J @ J.T), g)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_dense_semi_implicit_direction_solves_its_system(depth):
    """Conjugate gradients against a dense solve, for networks far from rank one."""
    inst = draw_instances(12, 8, 0.7, 0.3, 2, seed=depth)
    stats = tr.empirical_statistics(inst.X, inst.y)
    for i, scale in enumerate([0.3, 1.0]):
        one = _single(stats, i)
        params = init_params(jax.random.PRNGKey(depth + 7 * i), 12, depth, scale)
        lam, V = one.lam, one.V
        rotated = (params[0] @ V.T, *params[1:])  # the first layer's inputs in S's eigenbasis
        ups, w_rot = upstream_rows(rotated)
        grad_rot = 2.0 * (lam * w_rot - V @ one.b)
        for lr in (1e-2, 1.0, 1e4):
            got = tr._dense_direction(
                rotated, ups, grad_rot, lam=lam, inv_lam=tr._inverse(lam), lr=lr
            )
            got = got @ V
            exact = _exact_direction(params, one, lr)
            assert_allclose(got, exact, rtol=0, atol=1e-9 * np.abs(exact).max())


@pytest.mark.parametrize("depth", [2, 3])
def test_rank_one_semi_implicit_direction_solves_its_system(depth):
    """Sherman-Morrison in S's eigenbasis against a dense solve with the chain's own Jacobian."""
    inst = draw_instances(10, 6, 0.7, 0.3, 1, seed=5)
    one = _single(tr.empirical_statistics(inst.X, inst.y))
    chain = RankOneParams(
        s=jax.random.normal(KEY, (10,)), amplitudes=jnp.asarray([0.8, -1.2][: depth - 1])
    )
    V, lam = np.asarray(one.V), np.asarray(one.lam)
    z = V @ np.asarray(chain.s)
    grad_rot = tr._rank_one_gradient(z, chain.amplitudes, lam, V @ np.asarray(one.b))
    gain = jnp.prod(chain.amplitudes)
    for lr in (1e-2, 1.0, 1e4):
        got, s_dot = tr._rank_one_direction(
            grad_rot, z, lam=lam, gain=gain, others=tr._others(chain.amplitudes), lr=lr
        )
        exact = _exact_direction(rank_one_to_dense(KEY, chain), one, lr)
        assert_allclose(np.asarray(got) @ V, exact, atol=1e-11 * np.abs(exact).max())
        assert_allclose(s_dot, np.asarray(chain.s) @ exact, rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# endpoints


def _init(init, count, dim, depth=2, scale=1e-5):
    return transfer._init_batch(
        KEY, n_instances=count, dim=dim, depth=depth, init_scale=scale, init=init
    )


@pytest.mark.parametrize(
    ("init", "dim", "n"), [("rank_one", 50, 25), ("rank_one", 50, 80), ("random", 30, 15)]
)
def test_semi_implicit_reaches_the_endpoints_of_small_step_descent(init, dim, n):
    """Where gradient descent at a small step converges (alpha != 1), the semi-implicit step
    lands on the same endpoints, per instance, in far fewer steps: pretraining and scratch."""
    inst = draw_instances(dim, n, 0.8, 0.5, 4, seed=n)
    tight = {"tol": 1e-16, "max_steps": 40_000}
    problems = {
        "pretrain": tr.population_statistics(inst.beta_s),
        "scratch": tr.empirical_statistics(inst.X, inst.y),
    }
    for stats in problems.values():
        params = _init(init, 4, dim)
        small = tr.train(params, stats, eta=0.25, method="explicit", **tight)
        fast = tr.train(params, stats, eta=1.0, **tight)
        assert small.converged.all() and fast.converged.all()
        assert np.max(np.linalg.norm(fast.w - small.w, axis=1)) < 1e-6
        assert np.max(fast.steps) * 5 < np.max(small.steps)


@pytest.mark.parametrize("init", ["rank_one", "random"])
def test_every_instance_converges_at_alpha_1_to_the_min_norm_endpoint(init):
    """n = D: S has eigenvalues down to ~1e-5, explicit descent stalls, the semi-implicit step
    converges in a few dozen steps to X^+ y (Theorem 3.5; no null space, so exactly)."""
    inst = draw_instances(40, 40, 0.8, 0.3, 4, seed=40)
    stats = tr.empirical_statistics(inst.X, inst.y)
    lam = np.asarray(stats.lam)
    assert np.min(lam[:, -1] / lam[:, 0]) < 1e-4
    params = _init(init, 4, 40)
    limits = {"tol": 1e-20, "max_steps": 400}
    fast = tr.train(params, stats, eta=1.0, **limits)
    assert fast.converged.all()
    assert np.max(np.linalg.norm(fast.w - est.min_norm_fit(inst.X, inst.y), axis=1)) < 1e-6
    slow = tr.train(params, stats, eta=1.0, method="explicit", **limits)
    assert not slow.converged.any()


def _chain_flow_endpoint(params: RankOneParams, X, y):
    r"""The exact endpoint of gradient flow from a rank-one chain, from the conservation laws.

    The first factor moves only in the row space of X, so :math:`w_\infty = X^+ y + A_\infty
    s_\perp` with :math:`s_\perp` its fixed null-space part; the invariants (35) keep
    :math:`a_l^2 = |s|^2 - K_l`, and :math:`|s_\infty|^2 = |s_\perp|^2 + |X^+ y|^2 / A_\infty^2`
    fixes :math:`q = |s_\infty|^2` (bisection on a monotone equation).
    """
    s, amps = np.asarray(params.s), np.asarray(params.amplitudes)
    interpolant = est.min_norm_fit(X, y)
    Vt = np.linalg.svd(X, full_matrices=False)[2]
    s_null = s - np.einsum("krd,kr->kd", Vt, np.einsum("krd,kd->kr", Vt, s))
    shift = np.sum(s**2, axis=1, keepdims=True) - amps**2  # K_l
    fixed, target = np.sum(s_null**2, axis=1), np.sum(interpolant**2, axis=1)
    low, high = np.max(shift, axis=1), np.full(len(s), 1e6)
    for _ in range(200):
        q = 0.5 * (low + high)
        excess = fixed + target / np.prod(q[:, None] - shift, axis=1) - q
        low, high = np.where(excess > 0, q, low), np.where(excess > 0, high, q)
    gain = np.prod(np.sign(amps) * np.sqrt(q[:, None] - shift), axis=1)
    return interpolant + gain[:, None] * s_null


def test_semi_implicit_fine_tuning_follows_the_flow_at_first_order_in_max_move():
    """Fine-tuning below alpha = 1 has a path-dependent endpoint. For a rank-one chain the
    conservation laws fix it exactly (:func:`_chain_flow_endpoint`); the semi-implicit step
    reaches it with an error that halves with ``max_move``, and is within the accuracy of
    explicit descent at the same cap (the corrected endpoint of Theorem 3.9 within 2e-3)."""
    inst = draw_instances(50, 40, 0.7, 0.5, 6, seed=9)
    pre = transfer.pretrain(inst.beta_s, key=KEY, init="rank_one")
    stats = tr.empirical_statistics(inst.X, inst.y)
    flow = _chain_flow_endpoint(pre.params, inst.X, inst.y)
    gaps = []
    for max_move in (4e-3, 2e-3):
        result = tr.train(pre.params, stats, eta=1.0, max_move=max_move)
        assert result.converged.all()
        gaps.append(np.max(np.linalg.norm(result.w - flow, axis=1)))
    assert_allclose(gaps[1] / gaps[0], 0.5, rtol=0.2)
    explicit = tr.train(pre.params, stats, eta=1.0, max_move=2e-3, method="explicit")
    assert gaps[1] < 2 * np.max(np.linalg.norm(explicit.w - flow, axis=1))
    corrected = est.finetune_fit(inst.X, inst.y, inst.beta_s, variant="exact")
    assert np.max(np.linalg.norm(result.w - corrected, axis=1)) < 2e-3


def test_bad_method():
    inst = draw_instances(10, 5, 0.7, 0.3, 2, seed=1)
    with pytest.raises(ValueError, match="method"):
        tr.train(_init("rank_one", 2, 10), tr.population_statistics(inst.beta_s), method="rk4")
    with pytest.raises(ValueError, match="method"):
        transfer.TrainingOptions(method="implicit")


def test_excess_loss_from_the_gradient_is_the_loss_minus_its_minimum():
    inst = draw_instances(20, 12, 0.7, 0.3, 3, seed=2)
    stats = tr.empirical_statistics(inst.X, inst.y)
    params = init_params(KEY, 20, 2, 0.5)
    for i in range(3):
        one = _single(stats, i)
        loss = float(tr.quadratic_loss(params, one.R, one.b, one.c))
        w = end_to_end(params)
        grad_rot = 2.0 * (one.lam * (one.V @ w) - one.V @ one.b)
        excess = float(tr.excess_from_gradient(grad_rot, tr._inverse(one.lam)))
        assert_allclose(excess, loss - float(one.loss_min), rtol=1e-10)


# values recorded before the engines shared one chunked loop (featurefate._chunked)
PINNED = {
    "random": (
        [21, 20, 19, 20],
        [4711.504713881708, 38956.760497468094, 3583.029222391358, 7140.352194761212],
        [[0.07211090173679835, -0.030852028652756807], [0.13789584435824137, -0.045493519310384534],
         [0.03792020407447076, -0.30412550695711876], [-0.004065234070245884, -0.09830358538631953]],
    ),
    "rank_one": (
        [23, 22, 21, 22],
        [1112.0725700457456, 10765.377375999378, 351.0796906242866, 683.357377809531],
        [[0.07211142818602727, -0.030851489600934652], [0.1378987613085092, -0.04549582645447955],
         [0.03791524300170069, -0.3041248007505808], [-0.004063233280224743, -0.09830587798389828]],
    ),
}  # fmt: skip


@pytest.mark.parametrize("init", ["random", "rank_one"])
def test_pinned_semi_implicit_run(init):
    """Steps, flow time and endpoint of a small run over several chunks: unchanged (the shapes
    and flags of the dense run are those of the small-step test above: no new compilation)."""
    rng = np.random.default_rng(7)
    stats = tr.empirical_statistics(rng.standard_normal((4, 15, 30)), rng.standard_normal((4, 15)))
    result = tr.train(_init(init, 4, 30), stats, eta=1.0, check_every=7)
    steps, time, w = PINNED[init]
    assert result.steps.tolist() == steps and result.converged.all()
    # to rounding: the dense engine folds its deferred updates in blocks, so it sums in another
    # order than the step-by-step updates these values were recorded with (2e-12 apart)
    assert_allclose(result.time, time, rtol=1e-10)
    assert_allclose(result.w[:, :2], w, rtol=1e-10, atol=1e-15)


def test_train_checkpoints_validates_every_option_once_before_training():
    """Bad step options fail at the call, not at the first segment (the generator trusts them)."""
    params, stats = None, tr.population_statistics(np.ones((2, 10)))  # never reached
    with pytest.raises(ValueError, match=r"eta must be a finite number in \(0, 2\); got 2.5"):
        tr.train_checkpoints(params, stats, [1.0], eta=2.5)
    with pytest.raises(ValueError, match="check_every must be an integer >= 1; got 0"):
        tr.train_checkpoints(params, stats, [1.0], check_every=0)
    with pytest.raises(TypeError, match="lr"):
        tr.train_checkpoints(params, stats, [1.0], lr=0.1)
