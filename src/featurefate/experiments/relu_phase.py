r"""The ReLU teacher-student transfer experiment of Section 4 (Fig. 4): one (rho, n) cell at a time.

:func:`run_cell` draws ``n_instances`` target teachers of ``k`` neurons on the sphere and their
sources with a fraction ``rho`` of the neurons removed (eqs. 19-20), and for each instance

1. **pretrains** a width-``m`` mean-field network on the source's exact population loss
   (:func:`featurefate.relu_training.pretrain`);
2. draws ``n`` noiseless target samples and trains a fresh network of the same width on them
   from a random initialisation, both layers (**scratch**, :func:`~featurefate.relu_training.scratch`);
3. refits only the output weights of the pretrained network on the same samples by kernel ridge
   regression (**linear transfer**, :func:`~featurefate.relu_training.linear_transfer`, eq. 21);
4. computes every generalization error exactly from the arc-cosine kernel, the theory's
   irreducible error :math:`|P_\perp f_t|^2` of the pretrained features (eqs. 158-159), the exact
   kernel alignment of the pretrained model with the source (Fig. 4a-b), and, for instance 0, the
   model's and the source's kernels on ``n_test`` Gaussian test points (ordered by the source
   function's value there, so that the panels show structure).

The transferability is paired: scratch and transfer see the same teacher and the same samples,
:math:`T = E[R_{\rm scratch} - R_{\rm linear}]` over instances (eq. 7).

Pretraining does not depend on n, and scratch training does not depend on rho. By default each
cell is self-contained: it draws its own teachers from its own seed and trains both networks.
Recomputing them per cell costs about a second at the quick scale (d = 20, m = 100, k = 20, four
instances, about 2000 steps). At paper scale ``pretraining_seed >= 0`` draws the teachers,
pretraining, samples and scratch training from that seed instead, so that a worker pretrains each
rho once and trains scratch networks once per n (cached), with results that do not depend on the
caches or on which worker runs a cell.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass

import numpy as np
import xarray as xr

import featurefate
from featurefate import _validation as v
from featurefate import schema
from featurefate._jax import jax
from featurefate.experiments._stats import mean_and_stderr
from featurefate.relu_training import (
    METHODS,
    ReluTrainOptions,
    errors,
    linear_transfer,
    pretrain,
    scratch,
)
from featurefate.tasks import (
    SOURCE_NORMALISATIONS,
    relu_network_output,
    relu_teachers,
    sample_relu_data,
)
from featurefate.theory import relu as theory

CELL_AXES = ("rho", "n")
"""The grid axes of one cell: the fraction of teacher neurons removed and the target sample size."""

STAGES = ("pretrain", "scratch")


@dataclass(frozen=True)
class ReluPhaseConfig:
    r"""Fixed parameters of the ReLU experiment (the paper: d = 100, m = 1000, k = 100).

    Attributes
    ----------
    d : int
        Input dimension.
    m : int
        Width of the student network.
    k : int
        Number of target teacher neurons.
    n_instances : int
        Independent teachers (and data sets, initialisations) per cell, >= 2.
    teacher_weight : float
        Output weight of every teacher neuron.
    source_normalisation : {"k", "remaining"}
        The source keeps the target's 1/k (``"k"``: :math:`f_t = f_s` + removed part) or divides
        by the neurons left (docs/theory.md, Two-layer ReLU networks; it sets the scale of Fig. 4d).
    sigma : float
        Label noise of the target samples (the paper: 0).
    lr_pretrain, lr_scratch : float
        Learning rates in mean-field time (each layer moves with ``lr * m``). 2 is stable and
        follows gradient flow at the quick scale (lr 1 traces the same path in twice the
        steps); 4 oscillates without converging there and 8 diverges. Scratch training stops
        at ``tol_scratch``, so its end point depends on the path: at paper scale lr 2 ends 40%
        above the gradient-flow error at n = 400 and lr 0.25 within 2% at every n
        (``benchmarks/relu_scratch_lr.py``).
    method_pretrain : {"explicit", "semi-implicit"}
        Step rule of pretraining (:data:`featurefate.relu_training.METHODS`). The semi-implicit
        step treats the mean and linear part of f implicitly and is stable with far larger
        steps: at paper scale lr 32 after a 64-step warm-up reaches the end point of explicit
        lr 2 in a fifteenth of the steps (1379 against 21257), :math:`|P_\perp f_t|^2` within
        1.6e-4 (``benchmarks/relu_bench.py --reference``).
    warmup_pretrain : int
        Steps of the geometric warm-up of the pretraining learning rate from ``min(0.5, lr)``
        to ``lr_pretrain``.
    tol_pretrain, tol_scratch : float
        Stop when the loss is at most this fraction of the zero network's loss.
    max_steps_pretrain, max_steps_scratch : int
        Step limits; instances stopped by them are reported as unconverged.
    check_every : int
        Steps per compiled chunk.
    lam : float
        Ridge penalty of linear transfer (kernel ridge regression with the model's kernel,
        :func:`featurefate.relu_training.linear_transfer`). The minimum-norm fit (``lam = 0``,
        kernel interpolation) has a double-descent peak at n near the rank of the pretrained
        features (docs/theory.md, Two-layer ReLU networks): at the quick scale its error at n = m = 100 is 0.26 against a
        residual of 0.0017 (rho = 0.3). ``lam = 1e-4`` removes the peak and adds a bias of
        about 2e-5 at large n (measured at rho = 0, where the residual is 1e-5), far below the
        scratch errors it is compared with.
    rcond : float
        Relative singular-value cutoff of the linear-transfer fit.
    n_test : int
        Test points of the kernel panels (Fig. 4a-b); 0 stores none.
    pretraining_seed : int
        -1 (default): teachers and pretraining come from the cell's seed, and every cell is
        independent. A seed >= 0 shares them between cells instead: the target teachers, the
        order in which neurons are removed (so the sources are nested in rho) and the
        pretraining initialisations are drawn from this seed, the number of removed neurons
        selects the source, and a process pretrains each rho once (cached). Scratch training
        depends only on the target teacher and n, so the target samples and the scratch
        initialisation are drawn from this seed and n too, and a process trains each n once:
        every cell of an n column compares linear transfer with the same scratch networks on
        the same samples. Only the test points of the kernel panels come from the cell's seed.
        Meant for paper scale, where training dominates the cost of a cell; the results do not
        depend on the caches, the executor or the order of the cells.
    """

    d: int = 20
    m: int = 100
    k: int = 20
    n_instances: int = 4
    teacher_weight: float = 1.0
    source_normalisation: str = "k"
    sigma: float = 0.0
    lr_pretrain: float = 2.0
    tol_pretrain: float = 1e-4
    max_steps_pretrain: int = 4000
    method_pretrain: str = "explicit"
    warmup_pretrain: int = 0
    lr_scratch: float = 2.0
    tol_scratch: float = 1e-5
    max_steps_scratch: int = 20_000
    check_every: int = 500
    lam: float = 1e-4
    rcond: float = 1e-10
    n_test: int = 30
    pretraining_seed: int = -1

    def __post_init__(self):
        v.integer("d", self.d, low=1)
        v.integer("m", self.m, low=1)
        v.integer("k", self.k, low=1)
        v.integer("n_instances", self.n_instances, low=2)
        v.real_array("teacher_weight", self.teacher_weight)
        v.choice("source_normalisation", self.source_normalisation, SOURCE_NORMALISATIONS)
        v.real_array("sigma", self.sigma, low=0.0)
        for stage in STAGES:
            v.real_array(f"lr_{stage}", getattr(self, f"lr_{stage}"), low=0.0, low_open=True)
            v.real_array(f"tol_{stage}", getattr(self, f"tol_{stage}"), low=0.0)
            v.integer(f"max_steps_{stage}", getattr(self, f"max_steps_{stage}"), low=1)
        v.choice("method_pretrain", self.method_pretrain, METHODS)
        v.integer("warmup_pretrain", self.warmup_pretrain, low=0)
        v.integer("check_every", self.check_every, low=1)
        v.real_array("lam", self.lam, low=0.0)
        v.real_array("rcond", self.rcond, low=0.0, high=1.0, high_open=True)
        v.integer("n_test", self.n_test, low=0)
        v.integer("pretraining_seed", self.pretraining_seed, low=-1)

    def options(self, stage: str) -> ReluTrainOptions:
        """Training options of ``stage`` (``pretrain`` or ``scratch``)."""
        stage = v.choice("stage", stage, STAGES)
        pretrain = stage == "pretrain"
        return ReluTrainOptions(
            lr=getattr(self, f"lr_{stage}"),
            tol=getattr(self, f"tol_{stage}"),
            max_steps=getattr(self, f"max_steps_{stage}"),
            check_every=self.check_every,
            method=self.method_pretrain if pretrain else "explicit",
            warmup=self.warmup_pretrain if pretrain else 0,
        )


def check_cell(config: ReluPhaseConfig, cell: dict) -> tuple[float, int]:
    """Validate a cell against ``config``; return ``(rho, n)``.

    ``rho`` must lie in [0, 1] and leave at least one source neuron (``round(rho * k) < k``);
    ``n`` must be an integer >= 1 (a float with an integral value is accepted).
    """
    k = config.k
    missing = [axis for axis in CELL_AXES if axis not in cell]
    if missing:
        raise ValueError(f"cell must give {', '.join(CELL_AXES)}; missing {', '.join(missing)}")
    rho = float(v.real_array("rho", cell["rho"], low=0.0, high=1.0))
    n = v.integer("n", cell["n"], low=1)
    if round(rho * k) >= k:
        raise ValueError(
            f"rho must leave at least one source neuron (round(rho * k) < k = {k}); got rho = {rho:g}"
        )
    return rho, n


def _teachers(config, rho, seed):
    return relu_teachers(
        config.d,
        config.k,
        rho,
        output_weight=config.teacher_weight,
        source_normalisation=config.source_normalisation,
        n_instances=config.n_instances,
        seed=np.random.default_rng(seed),
    )


@functools.lru_cache(maxsize=8)
def _shared_pretraining(config, n_removed):
    """Teachers and pretraining shared by every cell that removes ``n_removed`` neurons.

    The teachers' rows and removal order come from the same stream whatever ``n_removed`` is
    (:func:`featurefate.tasks.relu_teachers` draws them first), so the sources are nested.
    """
    teacher_seed, pretrain_seed = np.random.SeedSequence(config.pretraining_seed).spawn(2)
    return _pretrained(
        config, rho=n_removed / config.k, teacher_seed=teacher_seed, pretrain_seed=pretrain_seed
    )


def _pretrained(config, *, rho, teacher_seed, pretrain_seed, progress=None):
    """Draw the teachers, then pretrain on the source's population loss."""
    teachers = _teachers(config, rho, teacher_seed)
    pre = pretrain(
        teachers.W,
        teachers.c_source,
        key=_key(pretrain_seed),
        width=config.m,
        options=config.options("pretrain"),
        progress=progress,
    )
    return teachers, pre


@functools.lru_cache(maxsize=8)
def _shared_scratch(config, n):
    """Target samples and scratch training shared by every cell of an n column.

    Scratch training sees only the target teacher (the same at every rho when the teachers are
    shared) and the samples, so with ``pretraining_seed >= 0`` it is drawn from that seed and n
    alone, and a process trains it once per n (cached); the cell's result does not depend on
    the cache.
    """
    teacher_seed, _ = np.random.SeedSequence(config.pretraining_seed).spawn(2)
    data_seed, scratch_seed = (
        np.random.SeedSequence(config.pretraining_seed, spawn_key=(2 + i, n)) for i in range(2)
    )
    # rho = 0: the target teachers do not depend on the removals (drawn first, nested sources)
    teachers = _teachers(config, 0.0, teacher_seed)
    return _scratch(config, teachers=teachers, n=n, data_seed=data_seed, scratch_seed=scratch_seed)


def _scratch(config, *, teachers, n, data_seed, scratch_seed, progress=None):
    """Draw n target samples, then train a fresh network on them (both layers)."""
    X, y = sample_relu_data(
        teachers.W, teachers.c_target, n, sigma=config.sigma, seed=np.random.default_rng(data_seed)
    )
    sc = scratch(
        X,
        y,
        key=_key(scratch_seed),
        width=config.m,
        options=config.options("scratch"),
        progress=progress,
    )
    return X, y, sc


def _key(seq):
    return jax.random.PRNGKey(int(seq.generate_state(1)[0]))


def run_cell(config: ReluPhaseConfig, cell: dict, seed, *, progress=None) -> xr.Dataset:
    r"""Simulate one (rho, n) cell over ``config.n_instances`` instances.

    Parameters
    ----------
    config : ReluPhaseConfig
    cell : dict
        ``rho`` (fraction of teacher neurons removed from the source, in [0, 1]) and ``n``
        (target samples, integer >= 1).
    seed : int or numpy.random.SeedSequence
        All randomness (teachers, removals, initialisations, data, test points) derives from it.
    progress : callable, optional
        ``progress(stage, steps, max_steps)`` while training.

    Returns
    -------
    xarray.Dataset
        Scalar coordinates ``rho`` and ``n``; dim ``instance`` (and ``test_point``,
        ``test_point_2`` for the kernels). Per instance: ``error_scratch``, ``error_linear``
        (exact generalization errors on the target), ``error_pretrain`` (final population loss on
        the source), ``theory_residual`` (:math:`|P_\perp f_t|^2` of the pretrained features),
        ``theory_residual_source`` (:math:`|P_\perp f_s|^2`, a check of pretraining),
        ``target_norm`` (:math:`|f_t|^2`), ``kernel_alignment`` and
        ``kernel_alignment_centered`` (exact, model against source), and the diagnostics
        ``steps_/converged_/loss_/relative_loss_/sphere_error_<stage>`` for ``pretrain`` and
        ``scratch``. Cell means ``transferability_linear`` and ``transferability_linear_stderr``
        (paired over instances). ``kernel_model`` and ``kernel_source`` over the test points
        (instance 0), empty when ``n_test = 0``.
    """
    rho, n = check_cell(config, cell)
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    # children by explicit spawn keys, so that reusing a SeedSequence object gives the same cell
    teacher_seed, pretrain_seed, data_seed, scratch_seed, test_seed = (
        np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, i)) for i in range(5)
    )

    def stage(name):
        return None if progress is None else (lambda s, m: progress(name, s, m))

    if config.pretraining_seed >= 0:
        teachers, pre = _shared_pretraining(config, round(rho * config.k))
        X, y, sc = _shared_scratch(config, n)
    else:
        teachers, pre = _pretrained(
            config,
            rho=rho,
            teacher_seed=teacher_seed,
            pretrain_seed=pretrain_seed,
            progress=stage("pretrain"),
        )
        X, y, sc = _scratch(
            config,
            teachers=teachers,
            n=n,
            data_seed=data_seed,
            scratch_seed=scratch_seed,
            progress=stage("scratch"),
        )
    U, a_t, a_s = teachers.W, teachers.c_target, teachers.c_source
    W_pre = pre.W
    c_linear = linear_transfer(W_pre, X, y, lam=config.lam, rcond=config.rcond)

    error_scratch = errors(sc.W, sc.c, U, a_t)
    error_linear = errors(W_pre, c_linear, U, a_t)
    residual = theory.rkhs_projection(W_pre, U, a_t)
    source_residual = theory.rkhs_projection(W_pre, U, a_s).orthogonal
    kept = ~teachers.removed
    alignment = {
        centred: theory.kernel_alignment(W_pre, U, weights_b=kept, centered=centred)
        for centred in (False, True)
    }
    T_mean, T_se = mean_and_stderr(error_scratch - error_linear)

    inst = ("instance",)
    t_linear = schema.transferability_name("linear")
    data = {
        schema.error_name("scratch"): (inst, error_scratch),
        schema.error_name("linear"): (inst, error_linear),
        schema.error_name("pretrain"): (inst, pre.loss),
        t_linear: ((), T_mean),
        schema.stderr_name(t_linear): ((), T_se),
        "theory_residual": (inst, np.asarray(residual.orthogonal)),
        "theory_residual_source": (inst, np.asarray(source_residual)),
        "target_norm": (inst, np.asarray(residual.in_span + residual.orthogonal)),
        "kernel_alignment": (inst, alignment[False]),
        "kernel_alignment_centered": (inst, alignment[True]),
    }
    for name, res in (("pretrain", pre), ("scratch", sc)):
        for quantity in schema.RELU_DIAGNOSTICS:
            data[schema.diagnostic_name(quantity, name)] = (inst, getattr(res, quantity))
    kernel_dims = ("test_point", "test_point_2")
    model_kernel, source_kernel = _test_kernels(
        config, W=W_pre[0], U=U[0], kept=kept[0], a_s=a_s[0], test_seed=test_seed
    )
    data["kernel_model"] = (kernel_dims, model_kernel)
    data["kernel_source"] = (kernel_dims, source_kernel)

    ds = xr.Dataset(
        data,
        coords={
            "instance": np.arange(config.n_instances),
            "test_point": np.arange(config.n_test),
            "test_point_2": np.arange(config.n_test),
            "rho": rho,
            "n": n,
        },
    )
    schema.annotate("relu_phase", ds)
    ds.attrs.update(
        {
            "featurefate_version": featurefate.__version__,
            "experiment": "relu_phase",
            "config": json.dumps(asdict(config)),
            "seed": str(seq.entropy),
            "seed_spawn_key": json.dumps(list(seq.spawn_key)),
            "d": config.d,
            "m": config.m,
            "k": config.k,
            "pretraining": (
                "recomputed in every cell from the cell's own seed"
                if config.pretraining_seed < 0
                else f"shared per rho, scratch training per n (pretraining_seed = "
                f"{config.pretraining_seed})"
            ),
            "linear_transfer": f"kernel ridge regression, lam = {config.lam:g}, "
            f"rcond = {config.rcond:g}",
            "errors": "exact, from the arc-cosine kernel",
        }
    )
    return ds


def _test_kernels(config, *, W, U, kept, a_s, test_seed):
    """Model and source feature kernels on ``n_test`` points, ordered by the source's value."""
    if config.n_test == 0:
        empty = np.zeros((0, 0))
        return empty, empty
    X = np.random.default_rng(test_seed).standard_normal((config.n_test, config.d))
    order = np.argsort(relu_network_output(X, U, a_s))
    X = X[order]
    model = theory.feature_kernel(X, W)
    source = theory.feature_kernel(X, U, kept.astype(float))
    return model, source


def summarize(ds: xr.Dataset) -> dict:
    """Cell summary, JSON-ready: mean errors, transferability, residual, alignment, convergence."""
    out = {"rho": float(ds.rho), "n": int(ds.n)}
    names = (schema.error_name("scratch"), schema.error_name("linear"))
    for name in (*names, "theory_residual", "kernel_alignment"):
        mean, se = mean_and_stderr(ds[name].values)
        out[name] = float(mean)
        out[schema.stderr_name(name)] = float(se)
    out["transferability_linear"] = float(ds.transferability_linear)
    out["transferability_linear_stderr"] = float(ds.transferability_linear_stderr)
    for stage in STAGES:
        converged = ds[schema.converged_name(stage)].values
        out[schema.converged_name(stage)] = f"{int(converged.sum())}/{converged.size}"
        out[f"max_steps_{stage}"] = int(ds[schema.steps_name(stage)].max())
    return out
