r"""The deep linear transfer experiment of Section 3: one (alpha, theta, sigma) cell at a time.

:func:`run_cell` draws ``n_instances`` source/target teacher pairs and target samples, pretrains
on the source population loss, then runs scratch training, linear transfer (and ridge, for each
``lam``) and fine-tuning, and returns a result dataset (DESIGN.md) with the per-instance errors,
the transferabilities, the theory at the simulated D alongside (both fine-tuning variants), the
distance of every trained endpoint from its exact gradient-flow endpoint, and the diagnostics.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import xarray as xr

import featurefate
from featurefate import _validation as v
from featurefate import estimators as est
from featurefate._jax import jax
from featurefate.experiments._stats import mean_and_stderr
from featurefate.nets.linear import INITS
from featurefate.tasks import draw_instances
from featurefate.theory import linear as theory
from featurefate.training import empirical_statistics
from featurefate.transfer import (
    TrainingOptions,
    fine_tune,
    linear_transfer,
    pretrain,
    scratch,
)

TRAINED = ("pretrain", "scratch", "finetune")
CELL_AXES = ("alpha", "theta", "sigma")
"""The coordinates of one cell; a sweep's grid spans them (``lam`` is computed inside a cell)."""


@dataclass(frozen=True)
class LinearPhaseConfig:
    """Fixed parameters of the deep linear experiment (the paper: D = 500, L = 2, 1e-5, 20)."""

    dim: int = 100
    depth: int = 2
    init_scale: float = 1e-5
    init: str = "random"
    n_instances: int = 20
    lam: tuple[float, ...] = (0.1,)
    rcond: float = 1e-3
    source_norm: float = 1.0
    target_norm: float = 1.0
    training: TrainingOptions = field(default_factory=TrainingOptions)
    """Tolerance, step limits, integrator (``method``, by default the semi-implicit step of
    :mod:`featurefate.training`) and step-size rule; ``eta`` is set per stage below."""
    eta_pretrain: float = 0.5
    eta_scratch: float = 1.0
    """Scratch training's endpoint does not depend on the step: neither integrator changes the
    first layer outside the data's row space, so any stable eta (< 2) reaches X^+ y."""
    eta_finetune: float = 1.0
    finetune_max_move: float = 2e-3
    """Fine-tuning's endpoint moves with the discretisation when n < D (the conserved quantities
    drift): its steps are capped to move the parameters by at most this much (``max_move`` in
    :func:`featurefate.training.train`). For n >= D the endpoint is unique and no cap is used."""

    def stage_options(self, stage: str, n: int) -> TrainingOptions:
        """The training options of ``stage`` (``pretrain``, ``scratch`` or ``finetune``) at n samples.

        The step rule of each stage is decided here only: ``eta_pretrain``, ``eta_scratch``, and
        for fine-tuning ``eta_finetune`` with the ``finetune_max_move`` cap when n < D (else, the
        endpoint being unique, the scratch rule).
        """
        stage = v.choice("stage", stage, TRAINED)
        if stage == "pretrain":
            return replace(self.training, eta=self.eta_pretrain)
        if stage == "finetune" and n < self.dim:
            return replace(self.training, eta=self.eta_finetune, max_move=self.finetune_max_move)
        return replace(self.training, eta=self.eta_scratch)

    def __post_init__(self):
        v.integer("dim", self.dim, low=3)
        v.integer("depth", self.depth, low=2)
        v.real_array("init_scale", self.init_scale, low=0.0, low_open=True)
        v.choice("init", self.init, INITS)
        v.integer("n_instances", self.n_instances, low=2)
        v.real_array("lam", list(self.lam), low=0.0)
        v.real_array("rcond", self.rcond, low=0.0, high=1.0)
        v.real_array("source_norm", self.source_norm, low=0.0, low_open=True)
        v.real_array("target_norm", self.target_norm, low=0.0, low_open=True)
        for name in ("eta_pretrain", "eta_scratch", "eta_finetune"):
            v.real_array(
                name, getattr(self, name), low=0.0, high=2.0, low_open=True, high_open=True
            )


def check_cell(config: LinearPhaseConfig, cell: dict) -> tuple[float, float, float]:
    """Validate one cell's ``alpha``, ``theta`` and ``sigma``; return them as floats."""
    missing = [axis for axis in CELL_AXES if axis not in cell]
    if missing:
        raise ValueError(f"cell is missing {', '.join(missing)}; a cell needs {CELL_AXES}")
    alpha = float(v.real_array("alpha", cell["alpha"], low=0.0, low_open=True))
    theta = float(v.real_array("theta", cell["theta"], low=0.0, high=np.pi))
    sigma = float(v.real_array("sigma", cell["sigma"], low=0.0))
    if round(alpha * config.dim) < 1:
        raise ValueError(
            f"alpha * dim must round to at least 1 sample; got alpha = {alpha:g} at dim = {config.dim}"
        )
    return alpha, theta, sigma


def run_cell(config: LinearPhaseConfig, cell: dict, seed, *, progress=None) -> xr.Dataset:
    r"""Simulate one cell over ``config.n_instances`` instances; every method, with theory.

    Parameters
    ----------
    config : LinearPhaseConfig
    cell : dict
        ``alpha`` (n / D, > 0; ``n = round(alpha * dim)``), ``theta`` (radians in [0, pi]),
        ``sigma`` (>= 0).
    seed : int or numpy.random.SeedSequence
        All randomness (teachers, data, initialisations) derives from it.
    progress : callable, optional
        ``progress(stage, steps, max_steps)`` while training.

    Returns
    -------
    xarray.Dataset
        Dims ``instance`` and ``lam``; scalar coords ``alpha``, ``theta``, ``sigma``, ``n``.
        Variables ``error_<method>`` (per instance; ``error_ridge`` over ``lam``),
        ``transferability_<method>`` with ``..._stderr`` (paired over instances),
        ``theory_error_<...>`` and ``theory_transferability_<...>`` (exact finite-size forms at
        ``dim``; fine-tuning as ``finetune_paper`` and ``finetune_exact``),
        ``endpoint_gap_<...>`` (distance to the exact gradient-flow endpoint),
        ``steps_/converged_/excess_loss_/drift_/time_<stage>`` for the trained stages, and
        ``pretrained_singular_values`` of the hidden features.
    """
    alpha, theta, sigma = check_cell(config, cell)
    n = round(alpha * config.dim)
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    data_seed, init_seed = seq.spawn(2)
    key = jax.random.PRNGKey(int(init_seed.generate_state(1)[0]))
    key_pre, key_scratch = jax.random.split(key)
    inst = draw_instances(
        config.dim,
        n,
        theta,
        sigma,
        config.n_instances,
        source_norm=config.source_norm,
        target_norm=config.target_norm,
        seed=np.random.default_rng(data_seed),
    )

    def stage(name):
        return None if progress is None else (lambda s, m: progress(name, s, m))

    net = {"depth": config.depth, "init_scale": config.init_scale, "init": config.init}
    pre = pretrain(
        inst.beta_s,
        key=key_pre,
        options=config.stage_options("pretrain", n),
        progress=stage("pretrain"),
        **net,
    )
    svd = est.gram_svd(inst.X)  # the cell's one factorisation of the data
    stats = empirical_statistics(inst.X, inst.y, svd=svd)
    sc = scratch(
        inst.X,
        inst.y,
        inst.beta_t,
        key=key_scratch,
        options=config.stage_options("scratch", n),
        progress=stage("scratch"),
        stats=stats,
        **net,
    )
    lams = np.asarray(config.lam, dtype=float)
    refit = linear_transfer(
        pre.params, inst.X, inst.y, inst.beta_t, lam=[0.0, *lams], rcond=config.rcond
    )
    ft = fine_tune(
        pre.params,
        inst.X,
        inst.y,
        inst.beta_t,
        options=config.stage_options("finetune", n),
        progress=stage("finetune"),
        stats=stats,
    )

    # exact endpoints of gradient flow (init_scale -> 0) for the same instances
    exact = est.exact_endpoints(inst.X, inst.y, inst.beta_s, depth=config.depth, svd=svd)
    gap = {
        "pretrain": np.linalg.norm(pre.w - inst.beta_s, axis=1),
        "scratch": np.linalg.norm(sc.w - exact["scratch"], axis=1),
        "linear": np.linalg.norm(refit.w[0] - exact["linear"], axis=1),
        "finetune_paper": np.linalg.norm(ft.w - exact["finetune_paper"], axis=1),
        "finetune_exact": np.linalg.norm(ft.w - exact["finetune_exact"], axis=1),
    }

    common = {
        "source_norm": config.source_norm,
        "target_norm": config.target_norm,
        "dim": config.dim,
    }
    th = {
        "scratch": theory.scratch_error(
            alpha, sigma, target_norm=config.target_norm, dim=config.dim
        ),
        "linear": theory.linear_transfer_error(
            alpha, theta, sigma, target_norm=config.target_norm, dim=config.dim
        ),
        "ridge": theory.ridge_transfer_error(
            alpha, theta, sigma, lams, depth=config.depth, **common
        ),
        "finetune_paper": theory.finetune_error(
            alpha, theta, sigma, variant="paper", depth=config.depth, **common
        ),
        "finetune_exact": theory.finetune_error(
            alpha, theta, sigma, variant="exact", depth=config.depth, **common
        ),
    }
    th_t = {
        "linear": theory.transferability("linear", alpha, theta, sigma, **common),
        "ridge": theory.transferability(
            "ridge", alpha, theta, sigma, lam=lams, depth=config.depth, **common
        ),
        "finetune_paper": theory.transferability(
            "finetune", alpha, theta, sigma, variant="paper", depth=config.depth, **common
        ),
        "finetune_exact": theory.transferability(
            "finetune", alpha, theta, sigma, variant="exact", depth=config.depth, **common
        ),
    }

    inst_dim, ridge_dims = ("instance",), ("lam", "instance")
    data = {
        "error_scratch": (inst_dim, sc.error),
        "error_linear": (inst_dim, refit.error[0]),
        "error_ridge": (ridge_dims, refit.error[1:]),
        "error_finetune": (inst_dim, ft.error),
        "error_pretrain": (inst_dim, pre.error),
    }
    for method, err in (
        ("linear", refit.error[0]),
        ("ridge", refit.error[1:]),
        ("finetune", ft.error),
    ):
        mean, se = mean_and_stderr(sc.error - err)
        dims = ("lam",) if method == "ridge" else ()
        data[f"transferability_{method}"] = (dims, mean)
        data[f"transferability_{method}_stderr"] = (dims, se)
    for name, value in th.items():
        data[f"theory_error_{name}"] = (("lam",) if name == "ridge" else (), value)
    for name, value in th_t.items():
        data[f"theory_transferability_{name}"] = (("lam",) if name == "ridge" else (), value)
    for name, value in gap.items():
        data[f"endpoint_gap_{name}"] = (inst_dim, value)
    for name, res in (("pretrain", pre), ("scratch", sc), ("finetune", ft)):
        tr = res.training
        data[f"steps_{name}"] = (inst_dim, tr.steps)
        data[f"converged_{name}"] = (inst_dim, tr.converged)
        data[f"excess_loss_{name}"] = (inst_dim, tr.excess_loss)
        data[f"drift_{name}"] = (inst_dim, tr.drift)
        data[f"time_{name}"] = (inst_dim, tr.time)
    data["n_features_linear"] = (inst_dim, refit.info["n_features"])
    data["pretrained_singular_values"] = (
        ("instance", "rank"),
        refit.info["singular_values"][:, :3],
    )

    ds = xr.Dataset(
        data,
        coords={
            "instance": np.arange(config.n_instances),
            "lam": lams,
            "alpha": alpha,
            "theta": theta,
            "sigma": sigma,
            "n": n,
        },
    )
    ds["theta"].attrs["units"] = "radians"
    ds["alpha"].attrs["long_name"] = "samples per dimension n / D"
    ds.attrs.update(
        {
            "featurefate_version": featurefate.__version__,
            "experiment": "linear_phase",
            "config": json.dumps(asdict(config)),
            "seed": str(seq.entropy),
            "dim": config.dim,
            "depth": config.depth,
            "init_scale": config.init_scale,
            "init": config.init,
            "theory": "exact finite-size forms at the simulated dim; fine-tuning as both the "
            "paper's endpoint (finetune_paper) and the corrected one (finetune_exact)",
            "linear_transfer": f"min-norm / ridge refit on features above rcond = {config.rcond}",
        }
    )
    return ds


def summarize(ds: xr.Dataset) -> list[dict]:
    """Per method: mean error and its standard error, theory, transferability, convergence.

    Returns one dict per row, JSON-ready (plain floats).
    """
    rows = []

    def row(method, err, theory_err, t, t_se, theory_t, converged=None, steps=None, gap=None):
        mean, se = mean_and_stderr(err)
        item = {
            "method": method,
            "mean_error": float(mean),
            "stderr": float(se),
            "theory_error": float(theory_err),
            "transferability": None if t is None else float(t),
            "transferability_stderr": None if t_se is None else float(t_se),
            "theory_transferability": None if theory_t is None else float(theory_t),
        }
        if converged is not None:
            item["converged"] = f"{int(np.sum(converged))}/{np.size(converged)}"
            item["max_steps_taken"] = int(np.max(steps))
        if gap is not None:
            item["max_endpoint_gap"] = float(np.max(gap))
        rows.append(item)

    row(
        "scratch",
        ds.error_scratch,
        ds.theory_error_scratch,
        None,
        None,
        None,
        ds.converged_scratch,
        ds.steps_scratch,
        ds.endpoint_gap_scratch,
    )
    row(
        "linear",
        ds.error_linear,
        ds.theory_error_linear,
        ds.transferability_linear,
        ds.transferability_linear_stderr,
        ds.theory_transferability_linear,
        gap=ds.endpoint_gap_linear,
    )
    for i, lam in enumerate(ds.lam.values):
        row(
            f"ridge λ={lam:g}",
            ds.error_ridge[i],
            ds.theory_error_ridge[i],
            ds.transferability_ridge[i],
            ds.transferability_ridge_stderr[i],
            ds.theory_transferability_ridge[i],
        )
    for variant in ("paper", "exact"):
        row(
            f"finetune vs {variant}",
            ds.error_finetune,
            ds[f"theory_error_finetune_{variant}"],
            ds.transferability_finetune,
            ds.transferability_finetune_stderr,
            ds[f"theory_transferability_finetune_{variant}"],
            ds.converged_finetune,
            ds.steps_finetune,
            ds[f"endpoint_gap_finetune_{variant}"],
        )
    return rows
