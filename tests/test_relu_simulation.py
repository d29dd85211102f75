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


def test_unconverged_instances_are_reported(teachers):
    t = teachers[0.0]
    result = rt.pretrain(
        t.W, t.c_source, key=KEY, width=M, options=dataclasses.replace(FAST, max_steps=7)
    )
    assert np.all(result.steps == 7)
    assert not np.any(result.converged)


def test_divergence_raises(teachers):
    t = teachers[0.0]
    with pytest.raises(TrainingDivergedError, match="lr = 500 is too large"):
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


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"m": 0}, "m must be an integer >= 1"),
        ({"n_instances": 1}, "n_instances must be an integer >= 2"),
        ({"lr_pretrain": -1.0}, "lr_pretrain"),
        ({"source_normalisation": "sum"}, "source_normalisation"),
        ({"rcond": 1.0}, "rcond"),
        ({"pretraining_seed": -2}, "pretraining_seed"),
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
