r"""The deep linear transfer experiment of Section 3: one (alpha, theta, sigma) cell at a time.

:func:`run_cell` draws ``n_instances`` source/target teacher pairs and target samples, pretrains
on the source population loss (or, with ``alpha_source``, on ``n_s = alpha_source * dim`` noisy
source samples from small initialisation, which ends at the source fit :math:`X_s^+ y_s`;
docs/theory.md, Finite source data), then runs scratch training, linear transfer (and ridge, for each
``lam``) and fine-tuning, and returns a result dataset with the per-instance errors,
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
from featurefate import schema
from featurefate._jax import jax
from featurefate.experiments._stats import mean_and_stderr
from featurefate.nets.linear import INITS
from featurefate.tasks import draw_instances, sample_data
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
    alpha_source: tuple[float, ...] = ()
    """Source samples per dimension ``n_s / D`` to pretrain on (empty, or ``None``: the source
    population). Several values are computed inside each cell, on nested source samples (the
    first ``n_s`` of one draw) and one scratch run, and give the results an ``alpha_source`` dim."""
    sigma_source: float = 0.0
    """Label noise of the source samples (with ``alpha_source`` only)."""

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
        if self.finetune_max_move is not None:
            v.real_array("finetune_max_move", self.finetune_max_move, low=0.0, low_open=True)
        # stage_options sets these per stage: refuse them here rather than overwrite them
        unset = TrainingOptions()
        for name, instead in (
            ("eta", "eta_pretrain, eta_scratch and eta_finetune"),
            ("max_move", "finetune_max_move"),
        ):
            if getattr(self.training, name) != getattr(unset, name):
                raise ValueError(
                    f"training.{name} is set per stage in this experiment: use {instead} "
                    f"instead (got training.{name} = {getattr(self.training, name)!r})"
                )
        source = () if self.alpha_source is None else np.atleast_1d(self.alpha_source)
        source = tuple(
            float(x) for x in v.real_array("alpha_source", source, low=0.0, low_open=True)
        )
        object.__setattr__(self, "alpha_source", source)
        sigma_source = float(v.real_array("sigma_source", self.sigma_source, low=0.0))
        object.__setattr__(self, "sigma_source", sigma_source)
        if sigma_source > 0.0 and not source:
            raise ValueError(
                f"sigma_source applies with alpha_source only; got sigma_source = {sigma_source:g} "
                "with population pretraining (alpha_source empty)"
            )
        for a_s in source:
            n_s = round(a_s * self.dim)
            if n_s < 1:
                raise ValueError(
                    f"alpha_source * dim must round to at least 1 sample; got alpha_source = "
                    f"{a_s:g} at dim = {self.dim}"
                )
            if sigma_source > 0.0 and abs(n_s - self.dim) <= 1:
                raise ValueError(
                    f"alpha_source must keep n_s = round(alpha_source * dim) more than 1 from dim "
                    f"when sigma_source > 0 (the source fit's expected norm is infinite there); "
                    f"got alpha_source = {a_s:g} (n_s = {n_s}) at dim = {self.dim}"
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
        ``dim`` and the simulated ``n``, that is at ``n / dim``, which is ``alpha`` unless
        ``alpha * dim`` is fractional; fine-tuning as ``finetune_paper`` and ``finetune_exact``),
        ``endpoint_gap_<...>`` (distance to the exact gradient-flow endpoint),
        ``steps_/converged_/excess_loss_/drift_/time_<stage>`` for the trained stages, and
        ``pretrained_singular_values`` of the hidden features. With ``config.alpha_source``
        every variable but scratch's gains an ``alpha_source`` dim (coord ``n_source``), the
        pretraining gap is measured from the source fit :math:`X_s^+ y_s`, and the theory
        columns are the finite-source closed forms.
    """
    alpha, theta, sigma = check_cell(config, cell)
    n = round(alpha * config.dim)
    # the theory is evaluated at the sample count simulated, n / D (alpha itself where alpha * D
    # is whole: the cell's label stays the grid's alpha)
    alpha_n = n / config.dim
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
    svd = est.gram_svd(inst.X, left=False)  # the cell's one factorisation of the data
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
    common = {
        "source_norm": config.source_norm,
        "target_norm": config.target_norm,
        "dim": config.dim,
    }
    inst_dim = ("instance",)
    data = {
        schema.error_name("scratch"): (inst_dim, sc.error),
        schema.theory_error_name("scratch"): (
            (),
            theory.scratch_error(alpha_n, sigma, target_norm=config.target_norm, dim=config.dim),
        ),
        schema.endpoint_gap_name("scratch"): (
            inst_dim,
            np.linalg.norm(sc.w - est.min_norm_fit(inst.X, inst.y, svd=svd), axis=1),
        ),
    }
    _training_vars(data, "scratch", sc)

    def transfer(pre, source_fit, source):
        return _transfer_vars(
            config,
            inst=inst,
            stats=stats,
            svd=svd,
            sc=sc,
            pre=pre,
            source_fit=source_fit,
            cell=(alpha_n, theta, sigma),
            lams=lams,
            theory_kw={**common, **source},
            stage=stage,
        )

    if not config.alpha_source:
        pre = pretrain(
            inst.beta_s,
            key=key_pre,
            options=config.stage_options("pretrain", n),
            progress=stage("pretrain"),
            **net,
        )
        data.update(transfer(pre, inst.beta_s, {}))
        coords = {}
    else:
        # one source draw, nested: alpha_source's cells share their first n_s samples
        (source_seed,) = seq.spawn(1)
        sizes = [round(a_s * config.dim) for a_s in config.alpha_source]
        X_s, y_s = sample_data(
            inst.beta_s, max(sizes), config.sigma_source, seed=np.random.default_rng(source_seed)
        )
        parts = []
        for n_s in sizes:
            # pretraining on the source sample from small init: scratch training on the source
            source_svd = est.gram_svd(X_s[:, :n_s], left=False)
            pre = scratch(
                X_s[:, :n_s],
                y_s[:, :n_s],
                inst.beta_s,
                key=key_pre,
                options=config.stage_options("scratch", n_s),
                progress=stage("pretrain"),
                stats=empirical_statistics(X_s[:, :n_s], y_s[:, :n_s], svd=source_svd),
                **net,
            )
            # Theorem 3.5 on the source
            fit = est.min_norm_fit(X_s[:, :n_s], y_s[:, :n_s], svd=source_svd)
            source = {"alpha_source": n_s / config.dim, "sigma_source": config.sigma_source}
            parts.append(xr.Dataset(transfer(pre, fit, source)))
        part = xr.concat(parts, dim="alpha_source", data_vars="all")
        data.update({name: (var.dims, var.values) for name, var in part.data_vars.items()})
        coords = {
            "alpha_source": np.asarray(config.alpha_source),
            "n_source": ("alpha_source", np.asarray(sizes)),
        }

    ds = xr.Dataset(
        data,
        coords={
            "instance": np.arange(config.n_instances),
            "lam": lams,
            "alpha": alpha,
            "theta": theta,
            "sigma": sigma,
            "n": n,
            **coords,
        },
    )
    schema.annotate("linear_phase", ds)
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
            "theory": "exact finite-size forms at the simulated dim and n (alpha = n / dim, "
            "n = round(alpha * dim)); fine-tuning as both the "
            "paper's endpoint (finetune_paper) and the corrected one (finetune_exact)",
            "pretraining": "source population"
            if not config.alpha_source
            else "n_source = alpha_source * dim source samples per instance, "
            f"sigma_source = {config.sigma_source:g}, from small init (ends at X_s^+ y_s)",
            "linear_transfer": f"min-norm / ridge refit on features above rcond = {config.rcond}",
        }
    )
    return ds


def _training_vars(data, name, res):
    tr = res.training
    for field_name, value in (
        ("steps", tr.steps),
        ("converged", tr.converged),
        ("excess_loss", tr.excess_loss),
        ("drift", tr.drift),
        ("time", tr.time),
    ):
        data[schema.diagnostic_name(field_name, name)] = (("instance",), value)


def _transfer_vars(config, *, inst, stats, svd, sc, pre, source_fit, cell, lams, theory_kw, stage):
    """Linear, ridge and fine-tuning from the pretrained ``pre``, with theory and endpoint gaps.

    ``source_fit`` is where pretraining ends as ``init_scale -> 0`` (``beta_s``, or the source
    fit ``X_s^+ y_s``); ``theory_kw`` carries the finite-source arguments of the closed forms.
    """
    alpha, theta, sigma = cell
    n = inst.X.shape[1]
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
    exact = est.exact_endpoints(inst.X, inst.y, source_fit, depth=config.depth, svd=svd)
    gap = {
        "pretrain": np.linalg.norm(pre.w - source_fit, axis=1),
        "linear": np.linalg.norm(refit.w[0] - exact["linear"], axis=1),
        "finetune_paper": np.linalg.norm(ft.w - exact["finetune_paper"], axis=1),
        "finetune_exact": np.linalg.norm(ft.w - exact["finetune_exact"], axis=1),
    }
    depth = config.depth
    linear_kw = {k: val for k, val in theory_kw.items() if k != "source_norm"}
    th = {
        "linear": theory.linear_transfer_error(
            alpha, theta, sigma, source_norm=config.source_norm, **linear_kw
        ),
        "ridge": theory.ridge_transfer_error(alpha, theta, sigma, lams, depth=depth, **theory_kw),
        "finetune_paper": theory.finetune_error(
            alpha, theta, sigma, variant="paper", depth=depth, **theory_kw
        ),
        "finetune_exact": theory.finetune_error(
            alpha, theta, sigma, variant="exact", depth=depth, **theory_kw
        ),
    }
    th_t = {
        "linear": theory.transferability("linear", alpha, theta, sigma, **theory_kw),
        "ridge": theory.transferability(
            "ridge", alpha, theta, sigma, lam=lams, depth=depth, **theory_kw
        ),
        "finetune_paper": theory.transferability(
            "finetune", alpha, theta, sigma, variant="paper", depth=depth, **theory_kw
        ),
        "finetune_exact": theory.transferability(
            "finetune", alpha, theta, sigma, variant="exact", depth=depth, **theory_kw
        ),
    }
    inst_dim, ridge_dims = ("instance",), ("lam", "instance")
    data = {
        schema.error_name("linear"): (inst_dim, refit.error[0]),
        schema.error_name("ridge"): (ridge_dims, refit.error[1:]),
        schema.error_name("finetune"): (inst_dim, ft.error),
        schema.error_name("pretrain"): (inst_dim, pre.error),
    }
    for method, err in (
        ("linear", refit.error[0]),
        ("ridge", refit.error[1:]),
        ("finetune", ft.error),
    ):
        mean, se = mean_and_stderr(sc.error - err)
        dims = ("lam",) if method == "ridge" else ()
        data[schema.transferability_name(method)] = (dims, mean)
        data[schema.stderr_name(schema.transferability_name(method))] = (dims, se)
    for name, value in th.items():
        data[schema.theory_error_name(name)] = (("lam",) if name == "ridge" else (), value)
    for name, value in th_t.items():
        dims = ("lam",) if name == "ridge" else ()
        data[schema.transferability_name(name, theory=True)] = (dims, value)
    for name, value in gap.items():
        data[schema.endpoint_gap_name(name)] = (inst_dim, value)
    for name, res in (("pretrain", pre), ("finetune", ft)):
        _training_vars(data, name, res)
    data["n_features_linear"] = (inst_dim, refit.info["n_features"])
    data["pretrained_singular_values"] = (
        ("instance", "rank"),
        refit.info["singular_values"][:, :3],
    )
    return data


def summarize(ds: xr.Dataset) -> list[dict]:
    """Per method: mean error and its standard error, theory, transferability, convergence.

    Returns one dict per row, JSON-ready (plain floats). With an ``alpha_source`` dim the
    transfer rows repeat per source size, their method tagged ``(α_s=...)``.
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
    sources = ds.alpha_source.values if "alpha_source" in ds.dims else [None]
    for a_s in sources:
        sub = ds if a_s is None else ds.sel(alpha_source=a_s)
        tag = "" if a_s is None else f" (α_s={a_s:g})"
        row(
            "linear" + tag,
            sub.error_linear,
            sub.theory_error_linear,
            sub.transferability_linear,
            sub.transferability_linear_stderr,
            sub.theory_transferability_linear,
            gap=sub.endpoint_gap_linear,
        )
        for i, lam in enumerate(sub.lam.values):
            row(
                f"ridge λ={lam:g}{tag}",
                sub.error_ridge[i],
                sub.theory_error_ridge[i],
                sub.transferability_ridge[i],
                sub.transferability_ridge_stderr[i],
                sub.theory_transferability_ridge[i],
            )
        for variant in ("paper", "exact"):
            row(
                f"finetune vs {variant}{tag}",
                sub.error_finetune,
                sub[schema.theory_error_name(f"finetune_{variant}")],
                sub.transferability_finetune,
                sub.transferability_finetune_stderr,
                sub[schema.transferability_name(f"finetune_{variant}", theory=True)],
                sub.converged_finetune,
                sub.steps_finetune,
                sub[schema.endpoint_gap_name(f"finetune_{variant}")],
            )
    return rows
