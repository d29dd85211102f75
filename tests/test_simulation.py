"""Deep linear networks trained by gradient descent, checked against the exact endpoints.

Small D (40-60) and few instances keep this fast; the theorems are checked per instance against
the ground-truth estimators, and on average against the closed forms.
"""

import json
from functools import partial

import numpy as np
import pytest
from numpy.testing import assert_allclose

from featurefate import estimators as est
from featurefate import training as tr
from featurefate import transfer
from featurefate._jax import jax, jnp
from featurefate.cli import main
from featurefate.experiments.linear_phase import LinearPhaseConfig, run_cell, summarize
from featurefate.nets.linear import (
    RankOneParams,
    conserved_quantities,
    end_to_end,
    init_params,
    init_rank_one,
    rank_one_conserved,
)
from featurefate.tasks import draw_instances
from featurefate.theory import linear as th

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def problem():
    """Eight instances at D = 50, alpha = 0.5, sigma = 1 (noise makes c clearly above 1)."""
    return draw_instances(50, 25, 0.8, 1.0, 8, seed=21)


@pytest.fixture(scope="module")
def pretrained(problem):
    return transfer.pretrain(problem.beta_s, key=KEY)


# ---------------------------------------------------------------------------------------------
# networks and gradients


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_layer_gradients_equal_autodiff(depth):
    params = init_params(KEY, 7, depth, 0.7)
    inst = draw_instances(7, 5, 0.4, 0.3, 1, seed=1)
    stats = tr.empirical_statistics(inst.X, inst.y)
    R, b, c = stats.R[0], stats.b[0], stats.c[0]
    auto = jax.grad(tr.quadratic_loss)(params, R, b, c)
    w = end_to_end(params)
    ups, downs, w_again = tr.layer_gradients(params, 2.0 * ((R @ w) @ R - b))
    assert_allclose(w_again, w, rtol=1e-13)
    for layer, up, down in zip(auto, ups, downs, strict=True):
        assert_allclose(up[:, None] * down[None, :], layer, rtol=1e-10, atol=1e-14)


def test_balanced_init_satisfies_assumption_22():
    scale = 1e-2
    params = init_params(KEY, 12, 4, scale, init="balanced")
    for invariant in conserved_quantities(params):
        eigenvalues = np.linalg.eigvalsh(np.asarray(invariant))
        assert_allclose(eigenvalues, scale**2, rtol=1e-8)


def test_random_init_shapes_and_scale():
    params = init_params(KEY, 300, 3, 1e-3)
    assert [p.shape for p in params] == [(300, 300), (300, 300), (1, 300)]
    assert params[0].dtype == jnp.float64
    assert_allclose(np.std(np.asarray(params[0])) * np.sqrt(300), 1e-3, rtol=0.02)


def test_statistics_reproduce_the_loss_and_its_minimum():
    inst = draw_instances(20, 30, 0.4, 0.3, 2, seed=4)
    stats = tr.empirical_statistics(inst.X, inst.y)
    w = est.min_norm_fit(inst.X, inst.y)
    direct = np.mean((np.einsum("knd,kd->kn", inst.X, w) - inst.y) ** 2, axis=1)
    assert_allclose(stats.loss_min, direct, rtol=1e-10)
    S = np.einsum("knd,kne->kde", inst.X, inst.X) / 30
    assert_allclose(stats.lam_max, np.linalg.eigvalsh(S)[:, -1], rtol=1e-12)
    R = np.asarray(stats.R)
    assert_allclose(np.swapaxes(R, 1, 2) @ R, S, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the theorems, per instance


@pytest.mark.parametrize("depth", [2, 3])
def test_pretraining_recovers_beta_s_with_rank_one_aligned_features(problem, depth):
    """Lemma 3.3 and Theorem 3.4."""
    result = transfer.pretrain(problem.beta_s, key=KEY, depth=depth)
    assert result.training.converged.all()
    assert np.max(np.linalg.norm(result.w - problem.beta_s, axis=1)) < 1e-4
    s = tr.feature_singular_values(result.params, k=3)
    assert_allclose(s[:, 0], 1.0, rtol=1e-4)  # |beta_s|^((L-1)/L) with |beta_s| = 1
    assert np.all(s[:, 1] < 1e-3)  # O(init_scale): rank one
    features, kept, singular_values = transfer.significant_features(result.params)
    assert_allclose(singular_values[:, :3], s, rtol=1e-10)
    assert np.all(kept == 1)
    direction = features[:, 0] / np.linalg.norm(features[:, 0], axis=1, keepdims=True)
    assert_allclose(np.abs(np.sum(direction * problem.beta_s, axis=1)), 1.0, atol=1e-8)


@pytest.mark.parametrize("n", [25, 80])
def test_scratch_ends_at_the_min_norm_interpolator(n):
    """Theorem 3.5, per instance, on both sides of alpha = 1."""
    inst = draw_instances(50, n, 0.8, 0.5, 4, seed=n)
    result = transfer.scratch(inst.X, inst.y, inst.beta_t, key=KEY)
    assert result.training.converged.all()
    gap = np.linalg.norm(result.w - est.min_norm_fit(inst.X, inst.y), axis=1)
    assert np.max(gap) < 2e-4


def test_linear_transfer_is_the_exact_rank_one_fit(problem, pretrained):
    result = transfer.linear_transfer(
        pretrained.params, problem.X, problem.y, problem.beta_t, lam=[0.0, 0.3]
    )
    for i, lam in enumerate([0.0, 0.3]):
        exact = est.linear_transfer_fit(problem.X, problem.y, problem.beta_s, lam=lam)
        assert_allclose(result.w[i], exact, atol=1e-6)


def test_linear_transfer_matches_eq12_on_average():
    alpha, theta, sigma = 0.4, 1.0, 0.5
    inst = draw_instances(50, 20, theta, sigma, 60, seed=8)
    pre = transfer.pretrain(inst.beta_s, key=KEY)
    err = transfer.linear_transfer(pre.params, inst.X, inst.y, inst.beta_t).error
    expected = th.linear_transfer_error(alpha, theta, sigma, dim=50)
    assert abs(err.mean() - expected) < 4 * err.std(ddof=1) / np.sqrt(err.size)


@pytest.mark.parametrize("depth", [2, 3])
def test_ridge_transfer_at_another_source_norm_matches_eq15(depth):
    """Theorem 3.8 with |beta_s| = 0.5: the pretrained feature carries |beta_s|^((L-1)/L), so
    the penalty acts as lam / |beta_s|^(2(L-1)/L) on the end-to-end coefficient (eq. 15, exact
    at finite n); simulated from trained networks, against the theory with and without it."""
    dim, n, theta, sigma, lam, norm = 50, 20, 0.6, 0.3, 0.5, 0.5
    inst = draw_instances(dim, n, theta, sigma, 400, source_norm=norm, seed=31 + depth)
    pre = transfer.pretrain(inst.beta_s, key=KEY, depth=depth, init="rank_one")
    assert pre.training.converged.all()
    err = transfer.linear_transfer(pre.params, inst.X, inst.y, inst.beta_t, lam=lam).error
    se = err.std(ddof=1) / np.sqrt(err.size)
    theory = partial(th.ridge_transfer_error, n / dim, theta, sigma, lam, depth=depth, dim=dim)
    assert abs(err.mean() - theory(source_norm=norm)) < 4 * se
    assert abs(err.mean() - theory(source_norm=1.0)) > 8 * se


def test_all_features_reproduce_the_residual_direction_pitfall():
    """SPEC section 3: keeping the O(init_scale) directions lets the fit interpolate noise."""
    inst = draw_instances(60, 30, np.pi / 4, 0.3, 8, seed=5)
    pre = transfer.pretrain(inst.beta_s, key=KEY)
    kept = transfer.linear_transfer(pre.params, inst.X, inst.y, inst.beta_t).error
    every = transfer.linear_transfer(pre.params, inst.X, inst.y, inst.beta_t, rcond=0.0)
    assert np.all(every.info["n_features"] == 60)
    assert every.error.mean() > kept.mean() + 0.03


def test_fine_tuning_ends_at_the_corrected_endpoint_not_the_papers(problem, pretrained):
    """Theorem 3.9 as corrected in SPEC section 2: X^+ y + c (I - P) beta_s with c > 1."""
    options = transfer.TrainingOptions(eta=1.0, max_move=2e-3)
    result = transfer.fine_tune(
        pretrained.params, problem.X, problem.y, problem.beta_t, options=options
    )
    assert result.training.converged.all()
    assert np.max(result.training.steps) < 2000
    exact = est.finetune_fit(problem.X, problem.y, problem.beta_s, variant="exact")
    paper = est.finetune_fit(problem.X, problem.y, problem.beta_s, variant="paper")
    gap_exact = np.linalg.norm(result.w - exact, axis=1)
    gap_paper = np.linalg.norm(result.w - paper, axis=1)
    assert np.max(gap_exact) < 2e-3
    assert np.min(gap_paper) > 10 * np.max(gap_exact)


def test_conservation_drift_is_small_and_first_order_in_eta(problem, pretrained):
    """Explicit gradient descent: drift and endpoint error halve with the step."""
    assert np.max(pretrained.training.drift) < 1e-6
    drifts, gaps = [], []
    exact = est.finetune_fit(problem.X, problem.y, problem.beta_s, variant="exact")
    for eta in (0.2, 0.1):
        result = transfer.fine_tune(
            pretrained.params,
            problem.X,
            problem.y,
            problem.beta_t,
            options=transfer.TrainingOptions(eta=eta, method="explicit"),
        )
        drifts.append(np.max(result.training.drift))
        gaps.append(np.max(np.linalg.norm(result.w - exact, axis=1)))
    assert drifts[0] < 0.05
    assert_allclose(drifts[1] / drifts[0], 0.5, rtol=0.15)
    assert_allclose(gaps[1] / gaps[0], 0.5, rtol=0.15)


def test_max_move_caps_the_step(problem, pretrained):
    stats = tr.empirical_statistics(problem.X, problem.y)

    def displacement(result):
        pairs = zip(result.params, pretrained.params, strict=True)
        return np.sqrt(sum(np.sum((np.asarray(a) - b) ** 2, axis=(1, 2)) for a, b in pairs))

    explicit = {"eta": 1.0, "max_steps": 1, "method": "explicit"}
    capped = tr.train(pretrained.params, stats, max_move=1e-3, **explicit)
    free = tr.train(pretrained.params, stats, **explicit)
    assert_allclose(displacement(capped), 1e-3, rtol=1e-9)  # the cap binds at the start
    assert np.all(displacement(free) > 1e-2)
    # the semi-implicit step moves less than the explicit one of the same size
    implicit = tr.train(pretrained.params, stats, eta=1.0, max_move=1e-3, max_steps=1)
    assert np.all(displacement(implicit) <= 1e-3 * (1 + 1e-12))
    assert np.all(displacement(implicit) > 1e-4)


def test_depth_3_cell_matches_the_same_limits():
    config = LinearPhaseConfig(dim=40, depth=3, n_instances=4, lam=(0.2,))
    ds = run_cell(config, {"alpha": 0.5, "theta": 0.6, "sigma": 0.5}, seed=2)
    assert bool(ds.converged_pretrain.all()) and bool(ds.converged_scratch.all())
    assert float(ds.endpoint_gap_pretrain.max()) < 1e-4
    assert float(ds.endpoint_gap_scratch.max()) < 2e-4
    assert float(ds.endpoint_gap_linear.max()) < 1e-5
    assert float(ds.endpoint_gap_finetune_exact.max()) < 3e-3
    assert_allclose(ds.pretrained_singular_values[:, 0], 1.0, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# rank-one chains: the O(D)-per-step engine


def _rank_one_pair(dim, depth, scale, count=4):
    keys = jax.random.split(KEY, count)
    factored = jax.vmap(lambda k: init_rank_one(k, dim, depth, scale))(keys)
    dense = jax.vmap(lambda k: init_params(k, dim, depth, scale, init="rank_one"))(keys)
    return factored, dense


def test_rank_one_init_is_exactly_balanced_and_materialises_the_same_network():
    factored, dense = _rank_one_pair(30, 3, 1e-2)
    assert_allclose(tr.end_to_end_vectors(factored), tr.end_to_end_vectors(dense), atol=1e-20)
    assert np.max(np.abs(np.asarray(jax.vmap(conserved_quantities)(dense)))) < 1e-18
    assert np.max(np.abs(np.asarray(rank_one_conserved(factored)))) < 1e-18
    layer_ranks = [np.linalg.matrix_rank(np.asarray(layer[0]), tol=1e-12) for layer in dense]
    assert layer_ranks == [1, 1, 1]


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("n", [30, 90])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"step_size": 0.05, "max_steps": 300, "tol": 0.0, "method": "explicit"},
        {"eta": 0.5, "max_steps": 3000, "tol": 1e-10, "method": "explicit"},
        {"eta": 0.5, "max_steps": 3000, "tol": 1e-10, "method": "semi-implicit"},
        {"eta": 1.0, "max_move": 1e-2, "max_steps": 600, "tol": 1e-10},
    ],
    ids=["fixed", "explicit", "semi-implicit", "capped"],
)
def test_rank_one_engine_takes_the_dense_networks_steps(depth, n, kwargs):
    """Same iterates, step counts, stopping and drift as the dense layers of the same chain.

    The dense engine solves the semi-implicit system by conjugate gradients, the rank-one engine
    by Sherman-Morrison: the same step.
    """
    inst = draw_instances(60, n, 0.7, 0.3, 4, seed=n + depth)
    stats = tr.empirical_statistics(inst.X, inst.y)
    factored, dense = _rank_one_pair(60, depth, 1e-3)
    fast, slow = tr.train(factored, stats, **kwargs), tr.train(dense, stats, **kwargs)
    assert isinstance(fast.params, RankOneParams)
    assert_allclose(fast.w, slow.w, atol=1e-11 * max(1.0, np.abs(slow.w).max()))
    assert_allclose(fast.steps, slow.steps)
    assert_allclose(fast.excess_loss, slow.excess_loss, rtol=1e-6, atol=1e-14)
    assert_allclose(fast.drift, slow.drift, rtol=1e-6, atol=1e-14)
    assert_allclose(fast.time, slow.time, rtol=1e-9)


def test_rank_one_protocols_reach_the_exact_endpoints(problem):
    """Lemma 3.3, Theorem 3.4, eq. (11), Theorem 3.5 and the corrected Theorem 3.9, per instance."""
    net = {"init": "rank_one"}
    pre = transfer.pretrain(problem.beta_s, key=KEY, **net)
    assert isinstance(pre.params, RankOneParams) and pre.training.converged.all()
    assert np.max(np.linalg.norm(pre.w - problem.beta_s, axis=1)) < 1e-4
    s = tr.feature_singular_values(pre.params, k=3)
    assert_allclose(s[:, 0], 1.0, rtol=1e-4)
    assert np.all(s[:, 1:] == 0.0)
    exact = est.exact_endpoints(problem.X, problem.y, problem.beta_s)
    refit = transfer.linear_transfer(pre.params, problem.X, problem.y, problem.beta_t)
    assert np.all(refit.info["n_features"] == 1)
    assert_allclose(refit.w, exact["linear"], atol=1e-6)
    sc = transfer.scratch(problem.X, problem.y, problem.beta_t, key=KEY, **net)
    assert sc.training.converged.all()
    assert np.max(np.linalg.norm(sc.w - exact["scratch"], axis=1)) < 2e-4
    options = transfer.TrainingOptions(eta=1.0, max_move=2e-3)
    ft = transfer.fine_tune(pre.params, problem.X, problem.y, problem.beta_t, options=options)
    assert ft.training.converged.all()
    gap_exact = np.linalg.norm(ft.w - exact["finetune_exact"], axis=1)
    gap_paper = np.linalg.norm(ft.w - exact["finetune_paper"], axis=1)
    assert np.max(gap_exact) < 2e-3
    assert np.min(gap_paper) > 10 * np.max(gap_exact)


def test_rank_one_and_random_init_cells_agree():
    """The same cell with both inits: the same endpoints to within the endpoint accuracy."""
    cell, seed = {"alpha": 0.6, "theta": 0.7, "sigma": 0.3}, 4
    runs = {
        init: run_cell(LinearPhaseConfig(dim=40, n_instances=4, init=init), cell, seed)
        for init in ("random", "rank_one")
    }
    for name in ("scratch", "linear", "finetune"):
        a, b = (runs[init][f"error_{name}"].values for init in ("random", "rank_one"))
        assert_allclose(a, b, atol=3e-3)
    assert runs["rank_one"].attrs["init"] == "rank_one"
    assert float(runs["rank_one"].endpoint_gap_finetune_exact.max()) < 3e-3


# ---------------------------------------------------------------------------------------------
# limits, divergence, reporting


def test_divergence_names_the_step_size(problem):
    params = transfer._init_batch(
        KEY, n_instances=8, dim=50, depth=2, init_scale=0.5, init="random"
    )
    stats = tr.empirical_statistics(problem.X, problem.y)
    with pytest.raises(tr.TrainingDivergedError, match="step_size = 5"):
        tr.train(params, stats, step_size=5.0, max_steps=1000, check_every=20, method="explicit")


def test_divergence_names_the_protocols_stage(problem):
    options = transfer.TrainingOptions(step_size=5.0, method="explicit", check_every=20)
    with pytest.raises(tr.TrainingDivergedError, match=r"^scratch training diverged for instance"):
        transfer.scratch(
            problem.X, problem.y, problem.beta_t, key=KEY, init_scale=0.5, options=options
        )


def test_step_limit_is_reported_not_hidden(problem):
    options = transfer.TrainingOptions(max_steps=7, check_every=5)
    result = transfer.scratch(problem.X, problem.y, problem.beta_t, key=KEY, options=options)
    assert np.all(result.training.steps == 7)
    assert not result.training.converged.any()
    assert np.all(result.training.excess_loss > 1e-3)


def test_time_budget_in_gradient_flow_units(problem):
    options = transfer.TrainingOptions(max_time=2.0, check_every=10)
    result = transfer.pretrain(problem.beta_s, key=KEY, options=options)
    lr_max = 0.25 / 2.0  # eta / (2 |beta_s|): the largest automatic step at the start
    assert np.all(result.training.time >= 2.0)
    assert np.all(result.training.time < 2.0 + lr_max + 1e-12)
    assert not result.training.converged.any()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"step_size": "fast"}, "step_size"),
        ({"eta": 2.5}, "eta"),
        ({"tol": -1.0}, "tol"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_bad_training_options(problem, kwargs, fragment):
    stats = tr.population_statistics(problem.beta_s)
    params = transfer._init_batch(
        KEY, n_instances=8, dim=50, depth=2, init_scale=1e-5, init="random"
    )
    with pytest.raises(ValueError, match=fragment):
        tr.train(params, stats, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"depth": 1}, "depth"),
        ({"init": "orthogonal"}, "init"),
        ({"init_scale": 0.0}, "init_scale"),
        ({"n_instances": 1}, "n_instances"),
        ({"lam": (-0.1,)}, "lam"),
    ],
)
def test_bad_config(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        LinearPhaseConfig(**kwargs)


# ---------------------------------------------------------------------------------------------
# the cell dataset and the CLI


def test_run_cell_dataset_contract_and_seeding():
    config = LinearPhaseConfig(dim=40, n_instances=3, lam=(0.1, 0.4))
    cell = {"alpha": 0.5, "theta": 0.9, "sigma": 0.2}
    ds = run_cell(config, cell, seed=11)
    assert ds.sizes["instance"] == 3 and ds.sizes["lam"] == 2
    for name in ("scratch", "linear", "finetune"):
        assert ds[f"error_{name}"].dims == ("instance",)
    assert ds.error_ridge.dims == ("lam", "instance")
    for name in ("linear", "finetune_paper", "finetune_exact"):
        assert f"theory_transferability_{name}" in ds
    assert float(ds.n) == 20 and float(ds.alpha) == 0.5
    assert json.loads(ds.attrs["config"])["dim"] == 40
    assert_allclose(
        ds.transferability_linear, (ds.error_scratch - ds.error_linear).mean(), rtol=1e-12
    )
    assert_allclose(ds.theory_error_scratch, th.scratch_error(0.5, 0.2, dim=40), rtol=1e-12)
    again = run_cell(config, cell, seed=11)
    assert_allclose(again.error_finetune, ds.error_finetune, rtol=0, atol=0)
    other = run_cell(config, cell, seed=12)
    assert not np.allclose(other.error_scratch, ds.error_scratch)
    methods = [row["method"] for row in summarize(ds)]
    assert methods[:2] == ["scratch", "linear"] and len(methods) == 6


@pytest.mark.parametrize("init", ["random", "rank_one"])
def test_simulate_point_json(capsys, init):
    argv = ["simulate", "point", "--alpha", "0.5", "--theta", "0.7", "--sigma", "0.2"]
    argv += ["--dim", "40", "--instances", "3", "--init", init, "--json"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 20 and result["init"] == init
    scratch_row = result["methods"][0]
    assert scratch_row["method"] == "scratch" and scratch_row["converged"] == "3/3"


def test_simulate_point_bad_input_is_one_line(capsys):
    argv = ["simulate", "point", "--alpha", "0.5", "--theta", "0.7", "--sigma", "0.2"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--depth", "1"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == ["error: --depth must be an integer >= 2; got 1"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--init", "orthogonal"])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "init" in line and "rank_one" in line and "orthogonal" in line


def test_stage_options_decide_each_stages_step_rule():
    config = LinearPhaseConfig(dim=50)
    assert config.stage_options("pretrain", 25).eta == config.eta_pretrain
    assert config.stage_options("scratch", 25).max_move is None
    below = config.stage_options("finetune", 25)
    assert (below.eta, below.max_move) == (config.eta_finetune, config.finetune_max_move)
    assert config.stage_options("finetune", 50).max_move is None  # n >= D: unique endpoint
    with pytest.raises(ValueError, match="stage"):
        config.stage_options("warmup", 25)


def test_theory_is_taken_at_the_sample_count_simulated():
    """alpha * dim = 7.5 simulates n = 8: the theory columns are those at alpha = 0.8, not 0.75
    (at 0.75 the scratch error would be 0.45 against 0.52)."""
    config = LinearPhaseConfig(dim=10, n_instances=2, init="rank_one", lam=(0.1,))
    ds = run_cell(config, {"alpha": 0.75, "theta": 0.5, "sigma": 0.2}, seed=0)
    assert int(ds.n) == 8 and float(ds.alpha) == 0.75
    assert_allclose(float(ds.theory_error_scratch), th.scratch_error(0.8, 0.2, dim=10))
    assert_allclose(
        float(ds.theory_transferability_linear), th.transferability("linear", 0.8, 0.5, 0.2, dim=10)
    )
    assert abs(float(ds.theory_error_scratch) - th.scratch_error(0.75, 0.2, dim=10)) > 0.05
