r"""Gradient flow for the mean-field ReLU network of Section 4, and the three protocols of Fig. 4.

Training is full-batch gradient descent on many instances at once (``jit`` + ``vmap``), on

- the **exact population loss** against a teacher (pretraining on the source), computed through
  the arc-cosine kernel with the hand-written gradient of
  :func:`featurefate.nets.relu.population_value_and_grad`; or
- the **empirical loss** of n samples (scratch training on the target), with
  :func:`featurefate.nets.relu.empirical_value_and_grad`.

Mean-field time. Under the 1/m output scaling every gradient is O(1/m), so both layers are moved
with learning rate ``lr * m`` (docs/theory.md, ReLU training recipe): one step advances mean-field time by ``lr`` and
the dynamics of a neuron :math:`(c_i, w_i)` do not depend on m. With the loss without factor 1/2,
``lr = 2`` follows gradient flow (``lr = 1`` traces the same losses in twice the steps) at
d = 20, m = 100, k = 20; there ``lr = 4`` oscillates at a relative loss of a few percent without
converging (the hidden-weight step is the unstable one: ``lr = 4`` on the output weights alone
converges) and ``lr = 8`` diverges. At paper scale ``lr = 4`` is stable (docs/theory.md, ReLU training recipe).
Heavy-ball momentum (0.9) reaches a 100 times lower loss in the same steps but a different
minimiser: the pretrained kernel's alignment with the source falls from 0.97 to 0.85, so plain
gradient descent is kept.

The semi-implicit step (``method="semi-implicit"``, population losses). What caps the explicit
step is not the features but two collective modes: the mean of f (curvature :math:`1/\pi` in
mean-field time) and its linear part (curvature about half the mean squared output weight, 0.28
to 0.55 at paper scale), while every other curvature there is below 0.03 and the features form
over a mean-field time of about 40000. :func:`featurefate.nets.relu.semi_implicit_gradient`
steps these two modes implicitly (a :math:`(d + 1)`-dimensional solve per step) and the rest
explicitly, so the step is limited by accuracy, not stability. A geometric warm-up
(``warmup`` steps from ``lr_start``) resolves the first transient, while the output weights grow
from 0; without it lr 8 ends 2% away in :math:`|P_\perp f_t|^2`. At paper scale, lr 32 after 64
warm-up steps reaches a relative loss of 1e-5 in 1379 steps (19 s) where explicit gradient
descent at lr 2 takes 21257 (245 s); both end at the same mean-field time (42549 and 42514)
with :math:`|P_\perp f_t|^2` within 1.6e-4 and the kernel alignment within 2e-6
(``benchmarks/relu_bench.py --reference``). lr 64 is 1.5e-3 away; lr 128 stalls at a relative
loss of 3e-5. The step is a consistent first-order integrator (its error halves with lr, tested),
but at tiny scales (d = 8, m = 24) its error constant is ten times the explicit method's, so it is
an option (``method``), used by the paper-scale config, not the default.

The sphere. After each step the hidden-weight update is the tangent gradient
:math:`-\mathrm{lr}\, m\, (I - w_i w_i^\top)\nabla_{w_i}\mathcal L` and every row is divided by its
norm (a retraction), so :math:`|w_i| = 1` holds to rounding (about 1e-16) at every step.

Stopping. An instance stops when its loss falls to ``tol`` times the loss of the zero network
(:math:`|f_t|^2` for the population loss, the mean squared label for the empirical one); one that
reaches ``max_steps`` stops unconverged and is reported as such. A non-finite or exploding loss
raises :class:`featurefate.training.TrainingDivergedError`.

Protocols.

- :func:`pretrain`: from rows uniform on the sphere and ``c = 0`` on the source's population
  loss.
- :func:`scratch`: the *whole* network (rows and output weights) from a fresh random
  initialisation of the same kind, on the n target samples; the network is the same width m as
  the pretrained one, so scratch and transfer differ only in where the features come from.
- :func:`linear_transfer`: the pretrained rows frozen, the output weights refitted on the same n
  samples in closed form: kernel (ridge) regression with the model's feature kernel (eq. 21).

Every generalization error is exact, from :func:`featurefate.theory.relu.generalization_error`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np

from featurefate import _validation as v
from featurefate._chunked import Divergence, Limits, drive, step_loop
from featurefate._jax import jax, jnp
from featurefate.nets.relu import (
    ReluParams,
    empirical_value_and_grad,
    init_params,
    population_value_and_grad,
    retract,
    semi_implicit_gradient,
    sphere_error,
    teacher_norm,
)
from featurefate.theory.relu import generalization_error


class PopulationTask(NamedTuple):
    r"""Exact population losses against teachers, one per instance.

    Attributes
    ----------
    U : jax.Array, shape (K, k, d)
        Teacher rows on the unit sphere.
    a : jax.Array, shape (K, k)
        Teacher output weights (0 for removed neurons).
    scale : jax.Array, shape (K,)
        :math:`|f_t|^2`, the loss of the zero network.
    """

    U: jax.Array
    a: jax.Array
    scale: jax.Array


class EmpiricalTask(NamedTuple):
    r"""Empirical losses :math:`\frac1n\sum_s (f(x_s) - y_s)^2`, one data set per instance.

    Attributes
    ----------
    X : jax.Array, shape (K, n, d)
    y : jax.Array, shape (K, n)
    scale : jax.Array, shape (K,)
        Mean squared label, the loss of the zero network.
    """

    X: jax.Array
    y: jax.Array
    scale: jax.Array


_teacher_norms = jax.jit(jax.vmap(teacher_norm))


def population_task(U, a) -> PopulationTask:
    """The population loss against teachers with rows ``U`` (K, k, d) and weights ``a`` (K, k)."""
    U = v.real_array("U", U)
    a = v.real_array("a", a)
    if U.ndim != 3 or a.shape != U.shape[:2]:
        raise ValueError(
            f"U must have shape (K, k, d) and a shape (K, k); got {U.shape}, {a.shape}"
        )
    U, a = jnp.asarray(U), jnp.asarray(a)
    return PopulationTask(U=U, a=a, scale=_teacher_norms(U, a))


def empirical_task(X, y) -> EmpiricalTask:
    """The empirical loss of data sets ``X`` (K, n, d) and labels ``y`` (K, n)."""
    X, y = v.data(X, y, batched=True)
    return EmpiricalTask(X=jnp.asarray(X), y=jnp.asarray(y), scale=jnp.mean(jnp.asarray(y) ** 2, 1))


def _value_and_grad(params, task):
    if isinstance(task, PopulationTask):
        U, a, scale = task
        return population_value_and_grad(params, U, a, scale)
    X, y, _ = task
    return empirical_value_and_grad(params, X, y)


METHODS = ("explicit", "semi-implicit")
"""Step rules of :func:`train`: plain mean-field gradient descent, or the step that treats the
mean and linear part of f implicitly (:func:`featurefate.nets.relu.semi_implicit_gradient`;
population losses only)."""


def _learning_rate(steps, *, lr, lr_start, warmup):
    """The step after ``steps`` steps: geometric from ``lr_start`` to ``lr`` over ``warmup`` steps."""
    ramp = lr_start * (lr / lr_start) ** (steps / jnp.maximum(warmup, 1))
    return jnp.where(steps < warmup, ramp, lr)


def _step(params, task, active, lr, tol, *, semi_implicit):
    """One mean-field gradient step of one network; frozen once inactive or converged."""
    loss, grads = _value_and_grad(params, task)
    moving = active & (loss > tol * task.scale)
    if semi_implicit:
        grads = semi_implicit_gradient(params, grads, lr)
    rate = jnp.where(moving, lr * params.W.shape[0], 0.0)
    W = retract(params.W - rate * grads.W)
    W = jnp.where(moving, W, params.W)
    c = params.c - rate * grads.c
    return ReluParams(W=W, c=c), loss, moving


@partial(jax.jit, static_argnames=("semi_implicit",))
def _chunk(state, counters, limits, *, task, lr, lr_start, warmup, tol, semi_implicit):
    """Up to ``limits.length`` steps of every instance still going
    (:func:`featurefate._chunked.step_loop`; learning rates, tolerance and lengths are traced,
    so one compilation serves every setting of a given shape and method).

    ``state`` is ``(params, loss)``: the loss at the returned parameters comes back with them
    (one more evaluation per chunk, no extra compilation); the one coming in is not used.
    """
    one = jax.vmap(partial(_step, semi_implicit=semi_implicit), in_axes=(0, 0, 0, 0, None))

    def step(params, can_go, steps):
        rate = _learning_rate(steps, lr=lr, lr_start=lr_start, warmup=warmup)
        params, loss, moved = one(params, task, can_go, rate, tol)
        return params, jnp.where(moved, rate, 0.0), loss, moved

    params, counters, loss = step_loop(step, state[0], counters, limits)
    final = jax.vmap(lambda p, t: _value_and_grad(p, t)[0])(params, task)
    return (params, final), counters, loss


@dataclass(frozen=True)
class ReluTrainOptions:
    """How gradient descent runs; see :func:`train`.

    Attributes
    ----------
    lr : float, default 2.0
        Learning rate in mean-field time (each layer moves with ``lr * m``); after the warm-up
        with ``warmup > 0``.
    tol : float, default 1e-6
        Stop when the loss is at most ``tol`` times the zero network's loss.
    max_steps : int, default 20000
    check_every : int, default 500
        Steps per compiled chunk between divergence checks and progress reports.
    method : {"explicit", "semi-implicit"}, default "explicit"
        ``"explicit"``: mean-field gradient descent. ``"semi-implicit"``: the mean and linear
        part of f are stepped implicitly (:func:`featurefate.nets.relu.semi_implicit_gradient`),
        which lifts the explicit method's step limit; population losses only.
    warmup : int, default 0
        Steps over which the learning rate grows geometrically from ``lr_start`` to ``lr``, so
        that the first transient (output weights growing from 0) is resolved in time.
    lr_start : float, optional
        First learning rate of the warm-up, in (0, lr]; by default ``min(0.5, lr)``.
    """

    lr: float = 2.0
    tol: float = 1e-6
    max_steps: int = 20_000
    check_every: int = 500
    method: str = "explicit"
    warmup: int = 0
    lr_start: float | None = None

    def __post_init__(self):
        v.real_array("lr", self.lr, low=0.0, low_open=True)
        v.real_array("tol", self.tol, low=0.0)
        v.integer("max_steps", self.max_steps, low=1)
        v.integer("check_every", self.check_every, low=1)
        v.choice("method", self.method, METHODS)
        v.integer("warmup", self.warmup, low=0)
        v.real_array("lr_start", self.first_lr, low=0.0, high=self.lr, low_open=True)

    @property
    def first_lr(self) -> float:
        """The warm-up's first learning rate: ``lr_start``, or ``min(0.5, lr)`` when unset."""
        return min(0.5, float(self.lr)) if self.lr_start is None else self.lr_start

    def mean_field_time(self, steps):
        """Mean-field time after ``steps`` steps: the sum of the learning rates taken."""
        steps = np.asarray(steps)
        warm = np.minimum(steps, self.warmup)
        rates = np.asarray(
            _learning_rate(
                np.arange(self.warmup), lr=self.lr, lr_start=self.first_lr, warmup=self.warmup
            )
        )
        ramp = np.concatenate([[0.0], np.cumsum(rates)])[warm]
        return ramp + (steps - warm) * self.lr


@dataclass(frozen=True)
class ReluTrainResult:
    """Trained networks and per-instance diagnostics (arrays over instances).

    Attributes
    ----------
    params : ReluParams
        Batched ``(W, c)``.
    steps : ndarray of int
        Gradient steps taken.
    converged : ndarray of bool
        Loss at most ``tol`` times the zero network's loss.
    loss : ndarray
        Final training loss (exact population loss, or empirical loss).
    relative_loss : ndarray
        ``loss`` over the zero network's loss.
    sphere_error : ndarray
        Largest :math:`||w_i| - 1|` of each network.
    """

    params: ReluParams
    steps: np.ndarray
    converged: np.ndarray
    loss: np.ndarray
    relative_loss: np.ndarray
    sphere_error: np.ndarray

    @property
    def W(self) -> np.ndarray:
        return np.asarray(self.params.W)

    @property
    def c(self) -> np.ndarray:
        return np.asarray(self.params.c)


def train(
    params: ReluParams,
    task: PopulationTask | EmpiricalTask,
    options: ReluTrainOptions | None = None,
    *,
    progress=None,
) -> ReluTrainResult:
    r"""Mean-field gradient descent on a batch of networks until each converges or hits the limit.

    Parameters
    ----------
    params : ReluParams
        Batched initial networks, leading axis K, rows on the unit sphere.
    task : PopulationTask or EmpiricalTask
        The loss of each instance.
    options : ReluTrainOptions, optional
    progress : callable, optional
        ``progress(steps_done_max, max_steps)`` after each chunk.

    Returns
    -------
    ReluTrainResult

    Raises
    ------
    TrainingDivergedError
        If a loss becomes non-finite or exceeds a thousand times the zero network's loss.
    """
    options = options or ReluTrainOptions()
    count = task.scale.shape[0]
    if params.W.ndim != 3 or params.W.shape[0] != count:
        raise ValueError(
            f"params.W must have shape (K, m, d) with K = {count} instances; got {params.W.shape}"
        )
    _check_method(options, task)
    return _train(params, task, options=options, progress=progress)


def _check_method(options: ReluTrainOptions, task) -> None:
    if options.method == "semi-implicit" and not isinstance(task, PopulationTask):
        raise ValueError(
            "method 'semi-implicit' needs a population loss (its stiff modes are the exact mean "
            "and linear part of f); use method 'explicit' for an empirical loss"
        )


def _train(params, task, *, options: ReluTrainOptions, progress=None, stage="training"):
    """:func:`train` on checked inputs; ``stage`` names the run in the divergence error."""
    scale = np.asarray(task.scale)
    chunk = partial(
        _chunk,
        task=task,
        lr=options.lr,
        lr_start=options.first_lr,
        warmup=options.warmup,
        tol=options.tol,
        semi_implicit=options.method == "semi-implicit",
    )
    outcome = drive(
        chunk,
        (params, jnp.zeros(scale.shape)),
        count=scale.shape[0],
        limits=Limits(max_steps=options.max_steps, max_time=np.inf, length=options.check_every),
        divergence=Divergence(
            reference=scale, knob=f"lr = {options.lr:g}", reference_name="zero network", floor=1e-12
        ),
        stage=stage,
        progress=progress,
    )
    params, final = outcome.state
    final = np.asarray(final)
    relative = final / np.where(scale > 0.0, scale, 1.0)
    return ReluTrainResult(
        params=params,
        steps=outcome.steps,
        converged=final <= options.tol * scale,
        loss=final,
        relative_loss=relative,
        sphere_error=sphere_error(params.W),
    )


# --------------------------------------------------------------------------------------------
# protocols


def pretrain(U, c_source, *, key, width, options=None, progress=None) -> ReluTrainResult:
    r"""Pretrain width-``width`` networks on the sources' exact population losses.

    Initialisation: rows uniform on the sphere, ``c = 0``.

    Parameters
    ----------
    U : array-like, shape (K, k, d)
        Source rows (shared with the target).
    c_source : array-like, shape (K, k)
        Source output weights (0 for removed neurons).
    key : jax.Array
    width : int
        m.
    options : ReluTrainOptions, optional
    progress : callable, optional

    Returns
    -------
    ReluTrainResult
    """
    task = population_task(U, c_source)
    count, _, dim = task.U.shape
    params = init_params(key, dim, width, n_instances=count)
    return _train(
        params, task, options=options or ReluTrainOptions(), progress=progress, stage="pretraining"
    )


def scratch(X, y, *, key, width, options=None, progress=None) -> ReluTrainResult:
    r"""Train width-``width`` networks from a random initialisation on the samples ``(X, y)``.

    Both layers are trained (rows on the sphere, output weights from 0), on the empirical loss.

    Parameters
    ----------
    X : array-like, shape (K, n, d)
    y : array-like, shape (K, n)
    key : jax.Array
    width : int
    options : ReluTrainOptions, optional
    progress : callable, optional

    Returns
    -------
    ReluTrainResult
    """
    task = empirical_task(X, y)
    count, _, dim = task.X.shape
    options = options or ReluTrainOptions()
    _check_method(options, task)
    params = init_params(key, dim, width, n_instances=count)
    return _train(params, task, options=options, progress=progress, stage="scratch training")


def linear_transfer(W, X, y, *, lam=0.0, rcond=1e-10):
    r"""Refit the output weights on frozen rows ``W``: kernel (ridge) regression, eq. (21).

    With features :math:`\Phi_{si} = \mathrm{relu}(w_i \cdot x_s)` and
    :math:`f(x) = \frac1m \sum_i c_i \phi_i(x)`, the fit minimises

    .. math::

        \frac1n |y - \Phi c / m|^2 + \lambda \frac{|c|^2}{m},

    where :math:`|c|^2/m` is the RKHS norm of f for the model's kernel
    :math:`K(x, x') = \frac1m \sum_i \phi_i(x)\phi_i(x')`; so this is kernel ridge regression,
    :math:`f = k(x)^\top (K_{nn} + n\lambda I)^{-1} y`. With :math:`A = \Phi/\sqrt m = U S V^\top`,
    :math:`c = \sqrt m\, V\, \mathrm{diag}(s / (s^2 + n\lambda))\, U^\top y`. With ``lam = 0`` it is
    the minimum-norm least-squares fit (kernel interpolation for n below the rank), on the
    singular directions above ``rcond`` times the largest: the tiny directions of near-duplicate
    pretrained rows would otherwise amplify the part of the target outside the span, with a
    double-descent peak at n near the features' rank (docs/theory.md, Two-layer ReLU networks).

    Parameters
    ----------
    W : array-like, shape (K, m, d)
        Frozen rows.
    X : array-like, shape (K, n, d)
    y : array-like, shape (K, n)
    lam : float, default 0
        Ridge penalty :math:`\lambda \ge 0`.
    rcond : float, default 1e-10
        Relative singular-value cutoff, in [0, 1).

    Returns
    -------
    c : ndarray, shape (K, m)
    """
    X, y = v.data(X, y, batched=True)
    W = v.real_array("W", W)
    if W.ndim != 3 or W.shape[0] != X.shape[0] or W.shape[2] != X.shape[2]:
        raise ValueError(f"W must have shape (K, m, d) matching X {X.shape}; got {W.shape}")
    lam = float(v.real_array("lam", lam, low=0.0))
    rcond = float(v.real_array("rcond", rcond, low=0.0, high=1.0, high_open=True))
    n, m = X.shape[1], W.shape[1]
    A = np.maximum(X @ np.swapaxes(W, 1, 2), 0.0) / np.sqrt(m)
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    keep = s > rcond * s[:, :1]
    gain = np.where(keep, s / np.where(keep, s**2 + n * lam, 1.0), 0.0)
    coef = gain * np.einsum("kns,kn->ks", U, y)
    return np.sqrt(m) * np.einsum("ksm,ks->km", Vt, coef)


def errors(W, c, U, a) -> np.ndarray:
    """Exact generalization errors of networks ``(W, c)`` against teachers ``(U, a)``, per instance."""
    return np.asarray(generalization_error(np.asarray(c), np.asarray(W), a, U))
