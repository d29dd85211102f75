"""The mean-field ReLU network in JAX: kernel numerics, hand-written gradients against autodiff
and Monte Carlo, training on the sphere, linear transfer, the cell experiment and Fig. 4.

Tiny scales (d <= 8, m <= 24) and shared shapes keep compilation and running fast.
"""

import dataclasses
import io
import json

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure
from numpy.testing import assert_allclose

import featurefate
from featurefate import relu_training as rt
from featurefate import tasks
from featurefate._jax import jax, jnp
from featurefate.experiments import relu_phase
from featurefate.experiments.relu_phase import CELL_AXES, ReluPhaseConfig, run_cell
from featurefate.figures import relu as fig4
from featurefate.nets import relu as nets
from featurefate.reproduce import bundled_config
from featurefate.sweep import load_config
from featurefate.theory import relu as th
from featurefate.training import TrainingDivergedError

KEY = jax.random.PRNGKey(0)
D, M, K = 8, 24, 6
POPULATION = jax.jit(nets.population_value_and_grad)
FAST = rt.ReluTrainOptions(lr=2.0, tol=1e-6, max_steps=1500, check_every=500)


def _network(seed, m=M, d=D, scale=1.0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, d))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    return nets.ReluParams(W=jnp.asarray(W), c=jnp.asarray(scale * rng.standard_normal(m)))


@pytest.fixture(scope="module")
def teachers():
    return {rho: tasks.relu_teachers(D, K, rho, n_instances=2, seed=0) for rho in (0.0, 0.5)}


@pytest.fixture(scope="module")
def pretrained(teachers):
    return {
        rho: rt.pretrain(t.W, t.c_source, key=KEY, width=M, options=FAST)
        for rho, t in teachers.items()
    }


# ---------------------------------------------------------------------------------------------
# kernel numerics


def test_arccos_is_accurate_to_an_ulp():
    rng = np.random.default_rng(0)
    u = np.concatenate(
        [
            rng.uniform(-1, 1, 20_000),
            [-1.0, 1.0, 0.0, 0.5, -0.5, 0.5 + 1e-16, 1 - 1e-16, -1 + 1e-16, 1e-300, 0.9999999],
        ]
    )
    got = np.asarray(nets.arccos(jnp.asarray(u)))
    assert np.max(np.abs(got - np.arccos(u))) <= 4.5e-16
    assert float(nets.arccos(1.0 + 1e-12)) == 0.0  # clipped


def test_jax_kernel_equals_numpy_kernel():
    W = np.asarray(_network(1).W) * np.linspace(0.5, 2, M)[:, None]
    V = np.asarray(_network(2, m=5).W)
    assert_allclose(
        nets.relu_kernel(jnp.asarray(W), jnp.asarray(V)), th.relu_kernel(W, V), rtol=1e-14
    )


def test_kernel_gradient_is_finite_at_zero_angle():
    W = _network(3).W
    # the diagonal has u = 1 exactly; autodiff through arccos / sqrt would give NaN there
    grad = jax.jit(jax.grad(lambda W: jnp.sum(nets.relu_kernel(W, W))))(W)
    assert np.all(np.isfinite(grad))
    values, slopes = jax.jit(jax.vmap(jax.value_and_grad(nets.kappa)))(jnp.array([1.0, -1.0]))
    assert values.tolist() == [0.5, 0.0] and slopes.tolist() == [0.5, 0.0]
    # a pair of rows at exactly zero angle: finite and equal to the finite-difference slope
    w = W[0]

    def k(t):
        v = w + t * W[1]
        return nets.relu_kernel(w[None], v[None])[0, 0]

    h = 1e-6
    kernel, slope = jax.jit(jax.vmap(jax.value_and_grad(k)))(jnp.array([0.0, h, -h]))
    assert np.isfinite(slope[0])
    assert_allclose(slope[0], (kernel[1] - kernel[2]) / (2 * h), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# gradients


def test_population_gradient_equals_autodiff_of_the_exact_loss(teachers):
    params = _network(4)
    t = teachers[0.5]
    U, a = jnp.asarray(t.W[0]), jnp.asarray(t.c_source[0])
    loss, grads = POPULATION(params, U, a, nets.teacher_norm(U, a))
    auto_loss, auto = jax.jit(jax.value_and_grad(nets.population_loss))(params, U, a)
    assert_allclose(loss, auto_loss, rtol=1e-13)
    assert_allclose(loss, th.generalization_error(params.c, params.W, a, U), rtol=1e-13)
    assert_allclose(grads.c, auto.c, rtol=1e-12, atol=1e-16)
    assert_allclose(grads.W, nets.tangent(params.W, auto.W), rtol=1e-10, atol=1e-15)
    assert np.max(np.abs(grads.W)) > 1e-3  # not trivially zero


def test_population_gradient_against_monte_carlo_with_common_random_numbers(teachers):
    """Autodiff of a sampled loss on one fixed sample: unbiased for the exact gradient."""
    params = _network(5, scale=2.0)
    t = teachers[0.0]
    U, a = jnp.asarray(t.W[0]), jnp.asarray(t.c_target[0])
    _, grads = POPULATION(params, U, a, nets.teacher_norm(U, a))
    X = jnp.asarray(np.random.default_rng(7).standard_normal((20, 5_000, D)))

    def sampled(p, X):
        return jnp.mean((nets.forward(p, X) - nets.forward(nets.ReluParams(U, a), X)) ** 2)

    # standard error from 20 independent batches of the same estimator
    grads_mc = jax.jit(jax.vmap(jax.grad(sampled), in_axes=(None, 0)))(params, X)
    batches = [jax.tree_util.tree_map(lambda g, i=i: g[i], grads_mc) for i in range(20)]
    for name in ("c", "W"):
        per = np.stack([np.asarray(getattr(b, name)) for b in batches])
        if name == "W":
            per = np.stack([np.asarray(nets.tangent(params.W, jnp.asarray(p))) for p in per])
        mean, se = per.mean(0), per.std(0, ddof=1) / np.sqrt(len(per))
        assert np.all(np.abs(mean - np.asarray(getattr(grads, name))) < 5 * se + 1e-12), name


def test_empirical_gradient_equals_autodiff():
    params = _network(6)
    X = np.random.default_rng(9).standard_normal((30, D))
    X, y = jnp.asarray(X), jnp.asarray(np.sin(X[:, 0]) + X[:, 1] ** 2)
    loss, grads = jax.jit(nets.empirical_value_and_grad)(params, X, y)
    auto = jax.jit(jax.grad(nets.empirical_loss))(params, X, y)
    assert_allclose(loss, nets.empirical_loss(params, X, y), rtol=1e-14)
    assert_allclose(grads.c, auto.c, rtol=1e-12, atol=1e-16)
    assert_allclose(grads.W, nets.tangent(params.W, auto.W), rtol=1e-10, atol=1e-16)


# ---------------------------------------------------------------------------------------------
# the semi-implicit step


def test_low_harmonics_are_the_mean_and_linear_part_against_monte_carlo():
    params = _network(6, scale=2.0)
    mu, beta = jax.jit(nets.low_harmonics)(params)
    X = np.random.default_rng(6).standard_normal((400_000, D))
    f = np.asarray(nets.forward(params, jnp.asarray(X)))
    fx = f[:, None] * X
    se_mu = f.std() / np.sqrt(len(f))
    se_beta = fx.std(axis=0) / np.sqrt(len(f))
    assert abs(f.mean() - float(mu)) < 4 * se_mu
    assert np.all(np.abs(fx.mean(axis=0) - np.asarray(beta)) < 4 * se_beta)


def test_low_harmonics_split_the_loss_and_a_linear_pair_is_all_linear(teachers):
    t = teachers[0.5]
    U, a = jnp.asarray(t.W[0]), jnp.asarray(t.c_source[0])
    params = _network(7)
    loss = POPULATION(params, U, a, nets.teacher_norm(U, a))[0]
    mu, beta = nets.low_harmonics(params)
    mu_t, beta_t = nets.low_harmonics(nets.ReluParams(W=U, c=a))
    low = (mu - mu_t) ** 2 + jnp.sum((beta - beta_t) ** 2)
    assert 0.0 < low < loss  # Parseval: the rest of the Hermite expansion is not empty
    # relu(z) - relu(-z) = z: rows w, -w with weights c, -c are the linear function c w.x / m
    w = np.asarray(params.W[:1])
    pair = nets.ReluParams(W=jnp.asarray(np.vstack([w, -w])), c=jnp.array([1.5, -1.5]))
    mu, beta = nets.low_harmonics(pair)
    zero = nets.ReluParams(W=U[:1], c=jnp.zeros(1))
    norm2 = POPULATION(pair, zero.W, zero.c, 0.0)[0]
    assert float(mu) == 0.0
    assert_allclose(beta, 1.5 * w[0] / 2, rtol=1e-15)
    assert_allclose(norm2, jnp.sum(beta**2), rtol=1e-13)


@pytest.mark.parametrize("lr", [0.0, 0.3, 40.0])
def test_semi_implicit_gradient_is_the_implicit_step_on_the_low_harmonics(teachers, lr):
    """Woodbury against the dense (I + 2 lr m J^T J)^{-1} g, J by autodiff of low_harmonics."""
    t = teachers[0.5]
    U, a = jnp.asarray(t.W[0]), jnp.asarray(t.c_source[0])
    params = _network(8, scale=3.0)
    _, grads = POPULATION(params, U, a, nets.teacher_norm(U, a))
    got = jax.jit(nets.semi_implicit_gradient)(params, grads, lr)

    def harmonics(flat):
        mu, beta = nets.low_harmonics(
            nets.ReluParams(W=flat[: M * D].reshape(M, D), c=flat[M * D :])
        )
        return jnp.concatenate([mu[None], beta])

    flat = jnp.concatenate([params.W.ravel(), params.c])
    J = np.asarray(jax.jacfwd(harmonics)(flat))
    W = np.asarray(params.W)
    tangent = np.eye(M * D + M)
    for i in range(M):  # J restricted to the tangent spaces of the rows
        rows = slice(i * D, (i + 1) * D)
        tangent[rows, rows] -= np.outer(W[i], W[i])
    J = J @ tangent
    g = np.concatenate([np.asarray(grads.W).ravel(), np.asarray(grads.c)])
    dense = np.linalg.solve(np.eye(len(g)) + 2 * lr * M * J.T @ J, g)
    assert_allclose(
        np.concatenate([np.asarray(got.W).ravel(), got.c]), dense, rtol=1e-10, atol=1e-15
    )
    assert_allclose(nets.tangent(params.W, got.W), got.W, atol=1e-15)  # still tangent
    if lr > 0:
        assert np.max(np.abs(np.asarray(got.c) - np.asarray(grads.c))) > 1e-3 * np.max(
            np.abs(grads.c)
        )


def _run(t, options):
    return rt.pretrain(t.W, t.c_source, key=KEY, width=M, options=options)


def test_semi_implicit_steps_are_stable_where_explicit_ones_diverge(teachers):
    """The mean of f has curvature 1/pi in mean-field time: explicit steps above 2 pi diverge."""
    t = teachers[0.5]
    explicit = rt.ReluTrainOptions(lr=8.0, tol=1e-6, max_steps=600, check_every=300)
    with pytest.raises(TrainingDivergedError):
        _run(t, explicit)
    semi = _run(t, dataclasses.replace(explicit, method="semi-implicit"))
    assert np.all(np.isfinite(semi.loss)) and np.all(semi.relative_loss < 1e-3)
    assert semi.sphere_error.max() < 1e-12


def _at_time(t, time, lr, method):
    """Pretrain to mean-field time ``time`` with steps ``lr`` (no warm-up, no stopping)."""
    steps = round(time / lr)
    options = rt.ReluTrainOptions(
        lr=lr, tol=0.0, max_steps=steps, check_every=min(steps, 5000), method=method
    )
    return th.rkhs_projection(_run(t, options).W, t.W, t.c_target).orthogonal


def test_semi_implicit_pretraining_converges_to_the_gradient_flow_at_first_order(teachers):
    """|P_perp f_t|^2 at mean-field time 2400 against the flow (explicit, lr 1/8): the semi-
    implicit step's error halves with the step, as a consistent first-order integrator's does.
    (An inconsistent step, a wrong Jacobian or a missing factor, plateaus: the ratio goes to 1.)
    At this tiny scale (d = 8, m = 24) its error constant is about 2% per unit of lr, ten times
    the explicit method's; at paper scale lr 32 ends within 2e-4 of explicit lr 2
    (benchmarks/relu_bench.py --reference)."""
    t = teachers[0.5]
    flow = _at_time(t, 2400.0, 0.125, "explicit")
    gaps = np.array(
        [np.abs(_at_time(t, 2400.0, lr, "semi-implicit") / flow - 1.0) for lr in (0.5, 1.0, 2.0)]
    )
    assert np.all(gaps[0] > 1e-3)  # well above the reference's own error (about 2.5e-4)
    ratios = gaps[1:] / gaps[:-1]
    assert np.all((ratios > 1.6) & (ratios < 2.4)), ratios


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"method": "newton"}, "method must be one of"),
        ({"warmup": -1}, "warmup must be an integer >= 0"),
        ({"lr_start": 3.0}, "lr_start"),
        ({"lr_start": 0.0}, "lr_start"),
    ],
)
def test_train_options_validation(change, match):
    with pytest.raises(ValueError, match=match):
        rt.ReluTrainOptions(**{"lr": 2.0, **change})


def test_warm_up_defaults_follow_the_learning_rate():
    small = rt.ReluTrainOptions(lr=0.1)
    assert small.first_lr == 0.1
    assert dataclasses.replace(rt.ReluTrainOptions(lr=4.0), lr=0.2).first_lr == 0.2
    assert rt.ReluTrainOptions(lr=4.0).first_lr == 0.5


@pytest.mark.parametrize(("warmup", "lr_start"), [(0, None), (5, None), (64, 0.25), (3, 8.0)])
def test_mean_field_time_is_the_sum_of_the_steps_taken(warmup, lr_start):
    options = rt.ReluTrainOptions(lr=8.0, warmup=warmup, lr_start=lr_start)
    rates = np.asarray(
        rt._learning_rate(
            jnp.arange(100), lr=options.lr, lr_start=options.first_lr, warmup=options.warmup
        )
    )
    steps = np.array([0, 1, 2, 4, 63, 64, 65, 100])
    expected = [rates[:s].sum() for s in steps]
    assert_allclose(options.mean_field_time(steps), expected, rtol=1e-12)


def test_semi_implicit_needs_a_population_loss(teachers):
    t = teachers[0.0]
    X, y = tasks.sample_relu_data(t.W, t.c_target, 10, seed=1)
    with pytest.raises(ValueError, match="semi-implicit' needs a population loss"):
        rt.scratch(X, y, key=KEY, width=M, options=rt.ReluTrainOptions(method="semi-implicit"))


# ---------------------------------------------------------------------------------------------
# training


def test_pretraining_converges_on_the_sphere_and_learns_the_source(teachers, pretrained):
    for rho, result in pretrained.items():
        assert result.sphere_error.max() < 1e-12
        # the exact loss of the trained networks is the reported one
        t = teachers[rho]
        exact = rt.errors(result.W, result.c, t.W, t.c_source)
        assert_allclose(exact, result.loss, rtol=1e-8, atol=1e-14)
        assert np.all(result.relative_loss < 1e-5)
        assert np.all(result.converged == (result.relative_loss <= FAST.tol))


def test_rho_zero_leaves_no_residual_and_removal_leaves_one(teachers, pretrained):
    residual = {}
    for rho, result in pretrained.items():
        proj = th.rkhs_projection(result.W, teachers[rho].W, teachers[rho].c_target)
        residual[rho] = proj.orthogonal / (proj.in_span + proj.orthogonal)
    assert np.all(residual[0.0] < 1e-5)
    assert np.all(residual[0.5] > 1e-2)


def test_scratch_training_interpolates_on_the_sphere(teachers):
    t = teachers[0.0]
    X, y = tasks.sample_relu_data(t.W, t.c_target, 40, seed=1)
    result = rt.scratch(X, y, key=KEY, width=M, options=FAST)
    assert result.sphere_error.max() < 1e-12
    assert np.all(result.converged)
    assert np.all(result.steps > 1)
    # the loss reported is the empirical loss of the returned networks
    fitted = tasks.relu_network_output(X, result.W, result.c)
    assert_allclose(np.mean((fitted - y) ** 2, axis=1), result.loss, rtol=1e-10)
    # and the network learned something: its error is well below the teacher's norm
    errors = rt.errors(result.W, result.c, t.W, t.c_target)
    assert np.all(errors < 0.2 * th.function_norm(t.c_target, t.W))


def test_pinned_pretraining(pretrained):
    """Steps and final losses of the fixture's pretraining, recorded before the engines shared
    one chunked loop (featurefate._chunked): unchanged."""
    assert pretrained[0.0].steps.tolist() == [1336, 1500]
    assert pretrained[0.5].steps.tolist() == [1500, 1500]
    assert_allclose(
        pretrained[0.0].loss, [2.3393233652968526e-07, 2.7395768445459545e-07], rtol=1e-10
    )
    assert_allclose(
        pretrained[0.5].loss, [2.0774204551043951e-07, 1.7862762563547463e-07], rtol=1e-10
    )


def test_unconverged_instances_are_reported(teachers):
    t = teachers[0.0]
    result = rt.pretrain(
        t.W, t.c_source, key=KEY, width=M, options=dataclasses.replace(FAST, max_steps=7)
    )
    assert np.all(result.steps == 7)
    assert not np.any(result.converged)


def test_divergence_raises(teachers):
    t = teachers[0.0]
    with pytest.raises(
        TrainingDivergedError, match=r"^pretraining diverged.*lr = 500 is too large"
    ):
        rt.pretrain(t.W, t.c_source, key=KEY, width=M, options=dataclasses.replace(FAST, lr=500.0))


# ---------------------------------------------------------------------------------------------
# linear transfer


def test_linear_transfer_is_kernel_ridge_regression():
    rng = np.random.default_rng(8)
    W = rng.standard_normal((2, M, D))
    W /= np.linalg.norm(W, axis=-1, keepdims=True)
    X, y = rng.standard_normal((2, 15, D)), rng.standard_normal((2, 15))
    lam = 1e-2
    c = rt.linear_transfer(W, X, y, lam=lam)
    X_test = rng.standard_normal((2, 7, D))
    for i in range(2):
        phi, phi_test = np.maximum(X[i] @ W[i].T, 0), np.maximum(X_test[i] @ W[i].T, 0)
        K_nn, K_tn = phi @ phi.T / M, phi_test @ phi.T / M
        expected = K_tn @ np.linalg.solve(K_nn + 15 * lam * np.eye(15), y[i])
        assert_allclose(phi_test @ c[i] / M, expected, rtol=1e-10)
    # lam = 0 with n < m: kernel interpolation
    c0 = rt.linear_transfer(W, X, y)
    assert_allclose(tasks.relu_network_output(X, W, c0), y, atol=1e-9)


def test_linear_transfer_on_the_teachers_own_features_is_exact(teachers):
    t = teachers[0.5]
    X, y = tasks.sample_relu_data(t.W, t.c_target, 50, seed=2)
    c = rt.linear_transfer(t.W, X, y)
    assert np.all(rt.errors(t.W, c, t.W, t.c_target) < 1e-14 * th.function_norm(t.c_target, t.W))


# ---------------------------------------------------------------------------------------------
# the experiment and the figure

CONFIG = ReluPhaseConfig(
    d=D,
    m=M,
    k=K,
    n_instances=2,
    tol_pretrain=1e-5,
    max_steps_pretrain=1500,
    max_steps_scratch=3000,
    n_test=10,
)
GRID = {"rho": [0.0, 0.5], "n": [10, 20, 40]}


@pytest.fixture(scope="module")
def sweep():
    """The tiny grid, combined the way a sweep combines cells."""
    cells = []
    for i, rho in enumerate(GRID["rho"]):
        for j, n in enumerate(GRID["n"]):
            ds = run_cell(CONFIG, {"rho": rho, "n": n}, np.random.SeedSequence(5, spawn_key=(i, j)))
            cells.append(ds.expand_dims(list(CELL_AXES)))
    return xr.combine_by_coords(cells, combine_attrs="drop_conflicts")


def test_cell_dataset_layout():
    ds = run_cell(CONFIG, {"rho": 0.5, "n": 20}, 3)
    assert CELL_AXES == ("rho", "n")
    for axis in CELL_AXES:
        assert ds[axis].ndim == 0
    assert float(ds.rho) == 0.5 and int(ds.n) == 20
    per_instance = [
        "error_scratch",
        "error_linear",
        "theory_residual",
        "kernel_alignment",
        "kernel_alignment_centered",
        "steps_pretrain",
        "converged_pretrain",
        "steps_scratch",
        "converged_scratch",
        "sphere_error_scratch",
    ]
    for name in per_instance:
        assert ds[name].dims == ("instance",), name
    assert ds.transferability_linear.ndim == 0 and ds.transferability_linear_stderr.ndim == 0
    assert ds.kernel_model.shape == (10, 10)
    assert_allclose(
        float(ds.transferability_linear), float((ds.error_scratch - ds.error_linear).mean())
    )
    assert ds.attrs["experiment"] == "relu_phase"
    assert ds.attrs["featurefate_version"] == featurefate.__version__
    assert json.loads(ds.attrs["config"]) == dataclasses.asdict(CONFIG)
    assert (ds.attrs["d"], ds.attrs["m"], ds.attrs["k"]) == (D, M, K)
    assert ds.attrs["seed"] == "3"
    assert float(ds.sphere_error_pretrain.max()) < 1e-12
    # errors are consistent with the theory: linear transfer cannot beat the residual
    assert np.all(ds.error_linear >= ds.theory_residual - 1e-12)


def test_cell_is_reproducible_from_its_seed():
    seq = np.random.SeedSequence(11)
    first = run_cell(CONFIG, {"rho": 0.0, "n": 10}, seq)
    again = run_cell(CONFIG, {"rho": 0.0, "n": 10}, seq)
    xr.testing.assert_identical(first, again)
    other = run_cell(CONFIG, {"rho": 0.0, "n": 10}, 12)
    assert not np.allclose(first.error_scratch, other.error_scratch)


def test_shared_pretraining_is_the_same_in_every_cell_of_a_row():
    config = dataclasses.replace(CONFIG, pretraining_seed=4)
    a = run_cell(config, {"rho": 0.5, "n": 10}, 1)
    b = run_cell(config, {"rho": 0.5, "n": 20}, 2)
    assert_allclose(a.theory_residual, b.theory_residual, rtol=0)
    assert not np.allclose(a.error_scratch, b.error_scratch)
    # nested sources: the same target teachers at every rho
    zero = run_cell(config, {"rho": 0.0, "n": 10}, 1)
    assert_allclose(zero.target_norm, a.target_norm, rtol=1e-14)


def test_shared_scratch_is_the_same_in_every_cell_of_a_column():
    from featurefate.experiments import relu_phase

    config = dataclasses.replace(CONFIG, pretraining_seed=4)
    a = run_cell(config, {"rho": 0.0, "n": 12}, 1)
    b = run_cell(config, {"rho": 0.5, "n": 12}, 2)
    # the same scratch networks on the same samples at every rho; linear transfer differs
    assert_allclose(a.error_scratch, b.error_scratch, rtol=0)
    assert not np.allclose(a.error_linear, b.error_linear)
    # the caches change nothing: a fresh process (cleared caches) running cells in another order
    relu_phase._shared_scratch.cache_clear()
    relu_phase._shared_pretraining.cache_clear()
    again_b = run_cell(config, {"rho": 0.5, "n": 12}, 2)
    again_a = run_cell(config, {"rho": 0.0, "n": 12}, 1)
    xr.testing.assert_identical(a, again_a)
    xr.testing.assert_identical(b, again_b)
    # and the shared draws differ between n and between pretraining seeds
    other_n = run_cell(config, {"rho": 0.0, "n": 13}, 1)
    assert not np.allclose(other_n.error_scratch, a.error_scratch)
    other_seed = run_cell(dataclasses.replace(config, pretraining_seed=5), {"rho": 0.0, "n": 12}, 1)
    assert not np.allclose(other_seed.error_scratch, a.error_scratch)


def test_semi_implicit_pretraining_in_a_cell():
    config = dataclasses.replace(
        CONFIG, method_pretrain="semi-implicit", lr_pretrain=8.0, warmup_pretrain=16
    )
    options = config.options("pretrain")
    assert (options.method, options.lr, options.warmup) == ("semi-implicit", 8.0, 16)
    assert config.options("scratch").method == "explicit"  # scratch is an empirical loss
    ds = run_cell(config, {"rho": 0.5, "n": 20}, 3)
    assert bool(ds.converged_pretrain.all()) and bool(ds.converged_scratch.all())
    assert json.loads(ds.attrs["config"])["method_pretrain"] == "semi-implicit"
    explicit = run_cell(CONFIG, {"rho": 0.5, "n": 20}, 3)
    assert int(ds.steps_pretrain.max()) < int(explicit.steps_pretrain.min()) / 2


def test_paper_config_pretrains_semi_implicitly():
    paper = load_config(bundled_config("paper-relu")).config
    assert (paper.d, paper.m, paper.k) == (100, 1000, 100)
    options = paper.options("pretrain")
    assert (options.method, options.lr, options.warmup) == ("semi-implicit", 32.0, 64)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"m": 0}, "m must be an integer >= 1"),
        ({"n_instances": 1}, "n_instances must be an integer >= 2"),
        ({"lr_pretrain": -1.0}, "lr_pretrain"),
        ({"source_normalisation": "sum"}, "source_normalisation"),
        ({"rcond": 1.0}, "rcond"),
        ({"pretraining_seed": -2}, "pretraining_seed"),
        ({"method_pretrain": "newton"}, "method_pretrain must be one of"),
        ({"warmup_pretrain": -1}, "warmup_pretrain"),
    ],
)
def test_config_validation(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(CONFIG, **change)


@pytest.mark.parametrize(
    ("cell", "match"),
    [
        ({"rho": 0.5}, "missing n"),
        ({"rho": 1.5, "n": 10}, "rho must be a finite number in"),
        ({"rho": 1.0, "n": 10}, "at least one source neuron"),
        ({"rho": 0.5, "n": 2.5}, "n must be an integer"),
    ],
)
def test_cell_validation(cell, match):
    with pytest.raises(ValueError, match=match):
        run_cell(CONFIG, cell, 0)


def test_sweep_shows_the_story(sweep):
    assert dict(sweep.sizes)["rho"] == 2 and dict(sweep.sizes)["n"] == 3
    residual = sweep.theory_residual.mean(["instance", "n"])
    assert float(residual.sel(rho=0.5)) > 100 * float(residual.sel(rho=0.0))
    # with nothing removed linear transfer beats scratch training at every n
    assert np.all(sweep.transferability_linear.sel(rho=0.0) > 0)
    assert np.all(sweep.converged_scratch)


def test_relu_figure(sweep):
    fig = fig4.plot_relu_figure(sweep)
    assert isinstance(fig, Figure)
    titles = " ".join(ax.get_title() for ax in fig.axes)
    for panel in ("(a)", "(b)", "(c)", "(d)", "(e)"):
        assert panel in titles
    fit = fig4.scratch_power_law(sweep)
    assert fit is not None and fit.exponent > 0
    (e_ax,) = [ax for ax in fig.axes if ax.get_title().startswith("(e)")]
    circles = [line for line in e_ax.get_lines() if line.get_label() == "predicted n*(ρ)"]
    assert len(circles) == 1
    expected = th.predicted_boundary(
        fit.amplitude, fit.exponent, sweep.theory_residual.mean(["instance", "n"]).values
    )
    shown = np.isfinite(expected)
    assert_allclose(circles[0].get_ydata(), expected[shown])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)
    assert buffer.getvalue()[:4] == b"\x89PNG"


def test_figure_panels_alone(sweep):
    for plot in (fig4.plot_scratch_power_law, fig4.plot_residual, fig4.plot_transfer_sign):
        assert isinstance(plot(sweep), Figure)
    assert isinstance(fig4.plot_kernels(sweep, rho=0.0, n=20), Figure)
    # a single n: no fit and no boundary, still a figure
    single = sweep.isel(n=[0])
    assert fig4.scratch_power_law(single) is None
    assert isinstance(fig4.plot_relu_figure(single), Figure)


def test_summary_is_json_ready():
    ds = run_cell(CONFIG, {"rho": 0.0, "n": 10}, 0)
    summary = relu_phase.summarize(ds)
    json.dumps(summary)
    assert summary["converged_scratch"].endswith("/2")


@pytest.mark.slow
def test_quick_scale_story():
    """The quick configuration's defaults: the sign of T flips with rho at large n (about 30 s)."""
    config = ReluPhaseConfig()
    cells = {
        (rho, n): run_cell(config, {"rho": rho, "n": n}, np.random.SeedSequence(1, spawn_key=(i,)))
        for i, (rho, n) in enumerate([(0.0, 400), (0.6, 400), (0.6, 25), (0.0, 100), (0.0, 25)])
    }
    for ds in cells.values():
        assert np.all(ds.converged_scratch)
        assert float(ds.sphere_error_pretrain.max()) < 1e-12
    T = {key: (float(ds.transferability_linear), float(ds.transferability_linear_stderr))
         for key, ds in cells.items()}  # fmt: skip
    assert T[0.0, 400][0] > 2 * T[0.0, 400][1]
    assert T[0.6, 400][0] < -2 * T[0.6, 400][1]
    assert T[0.6, 25][0] > 2 * T[0.6, 25][1]
    residual = {key: float(ds.theory_residual.mean()) for key, ds in cells.items()}
    assert residual[0.6, 400] > 100 * residual[0.0, 400]
    n = np.array([25, 100, 400])
    errors = [float(cells[0.0, int(k)].error_scratch.mean()) for k in n]
    fit = th.fit_power_law(n, errors)
    assert 0.8 < fit.exponent < 1.5
    assert float(cells[0.0, 400].kernel_alignment.mean()) > 0.95
