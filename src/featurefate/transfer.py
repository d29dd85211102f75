r"""Transfer protocols of Section 3, simulated: pretrain, then scratch / linear transfer / fine-tune.

Each protocol trains (or, for the convex last-layer problem, solves) a batch of deep linear
networks and returns a :class:`ProtocolResult`: the end-to-end vectors, their generalization
errors :math:`|w - \beta|^2` against the reference teacher, and the training diagnostics.

- :func:`pretrain`: gradient flow on the source's population loss from small initialisation
  (Lemma 3.3: :math:`w \to \beta_s`; Theorem 3.4: the hidden features become rank one).
- :func:`scratch`: gradient flow on the target sample from small initialisation
  (Theorem 3.5: it ends at :math:`X^+ y`).
- :func:`linear_transfer`: the last layer refitted on the frozen pretrained features, eq. (11),
  or with ridge ``lam > 0``, eq. (14).
- :func:`fine_tune`: gradient flow on all layers from the pretrained weights (Theorem 3.9 and
  its correction, docs/theory.md, Fine-tuning).

**Residual directions in linear transfer.** With a finite ``init_scale`` the pretrained hidden
features keep, besides the learned direction, full-rank residual directions of size
``~init_scale``. An exact least-squares fit through all of them reproduces scratch training
(docs/theory.md, Simulation notes: 0.649 instead of 0.511 at alpha = 0.5). :func:`linear_transfer` therefore
regresses on the numerically significant features only: the singular directions of the feature
matrix with singular value above ``rcond`` times the largest (default 1e-3, far above the
residual scale 1e-5 and far below the learned scale 1). The fit itself is exact: the minimum-norm
(or ridge) solution of the convex last-layer problem, which is where gradient flow on the last
layer from the pretrained value goes, up to the pretrained last layer's O(init_scale) component
outside the data's span. ``rcond=0`` keeps every direction, to reproduce the pitfall.

With ``init="rank_one"`` the networks are balanced rank-one chains
(:class:`featurefate.nets.linear.RankOneParams`), trained in O(D) per step by the same
integrator; their hidden features have exactly one direction, so there are no residual
directions and linear transfer fits that one feature.

Every trained protocol integrates the flow with :func:`featurefate.training.train` as
:class:`TrainingOptions` say: by default its semi-implicit step, which converges in tens to
hundreds of steps at every alpha, n = D included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from featurefate import _validation as v
from featurefate._jax import jax, jnp
from featurefate.estimators import frozen_feature_fit, generalization_error
from featurefate.nets.linear import (
    RankOneParams,
    hidden_features,
    init_params,
    init_rank_one,
    rank_one_feature_scale,
)
from featurefate.training import (
    METHODS,
    TrainResult,
    _plan,
    _statistics,
    _train,
    population_statistics,
)


@dataclass(frozen=True)
class TrainingOptions:
    """How the gradient flow is integrated; see :func:`featurefate.training.train`."""

    step_size: str | float = "auto"
    eta: float = 0.25
    tol: float = 1e-10
    max_steps: int = 20_000
    max_time: float | None = None
    check_every: int = 200
    max_move: float | None = None
    method: str = "semi-implicit"

    def __post_init__(self):
        """Every option as :func:`featurefate.training.train` checks it, on construction: a
        sweep's config is refused before any cell runs rather than failing in every cell."""
        v.choice("method", self.method, METHODS)
        if isinstance(self.step_size, str):
            if self.step_size != "auto":
                raise ValueError(
                    f"step_size must be 'auto' or a number > 0; got {self.step_size!r}"
                )
        else:
            v.real_array("step_size", self.step_size, low=0.0, low_open=True)
        v.real_array("eta", self.eta, low=0.0, high=2.0, low_open=True, high_open=True)
        v.real_array("tol", self.tol, low=0.0)
        v.integer("max_steps", self.max_steps, low=1)
        if self.max_time is not None:
            v.real_array("max_time", self.max_time, low=0.0)
        v.integer("check_every", self.check_every, low=1)
        if self.max_move is not None:
            v.real_array("max_move", self.max_move, low=0.0, low_open=True)

    def as_kwargs(self) -> dict:
        return {
            "step_size": self.step_size,
            "eta": self.eta,
            "tol": self.tol,
            "max_steps": self.max_steps,
            "max_time": self.max_time,
            "check_every": self.check_every,
            "max_move": self.max_move,
            "method": self.method,
        }


@dataclass(frozen=True)
class ProtocolResult:
    """What a protocol produced, per instance.

    Attributes
    ----------
    w : ndarray, shape (K, D)
        End-to-end vectors.
    error : ndarray, shape (K,) or (n_lam, K)
        :math:`|w - \\beta|^2` against the reference teacher (label noise excluded, eq. 8).
    training : TrainResult or None
        Diagnostics of the gradient descent, for trained protocols.
    info : dict
        Anything else the protocol reports (e.g. the number of features kept).
    """

    w: np.ndarray
    error: np.ndarray
    training: TrainResult | None = None
    info: dict = field(default_factory=dict)

    @property
    def params(self):
        """The trained parameters (trained protocols only)."""
        return None if self.training is None else self.training.params


def _init_batch(key, *, n_instances, dim, depth, init_scale, init):
    keys = jax.random.split(key, n_instances)
    if init == "rank_one":
        # kept factored: the O(D)-per-step engine trains exactly these networks
        return jax.vmap(lambda k: init_rank_one(k, dim, depth, init_scale))(keys)
    return jax.vmap(lambda k: init_params(k, dim, depth, init_scale, init=init))(keys)


def _trained(params, stats, *, reference, options, progress, stage):
    """Train as ``options`` say (validated here, once), ``stage`` naming the run in errors."""
    plan = _plan(count=stats.b.shape[0], **options.as_kwargs())
    result = _train(params, stats, plan=plan, progress=progress, stage=stage)
    w = result.w
    return ProtocolResult(w=w, error=generalization_error(w, reference), training=result)


def _as_batch(name, value, ndim):
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions (instances first); got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got NaN or inf")
    return arr


def pretrain(
    beta_s,
    *,
    key,
    depth=2,
    init_scale=1e-5,
    init="random",
    options=TrainingOptions(),
    progress=None,
) -> ProtocolResult:
    r"""Pretrain on the source's population loss :math:`|w - \beta_s|^2` (Lemma 3.3).

    Parameters
    ----------
    beta_s : array-like, shape (K, D)
        Source teachers, one per instance.
    key : jax.Array
        PRNG key for the initialisations.
    depth, init_scale, init :
        See :func:`featurefate.nets.linear.init_params`.
    options : TrainingOptions
    progress : callable, optional
        ``progress(steps, max_steps)``.

    Returns
    -------
    ProtocolResult
        ``error`` is the recovery error :math:`|w - \beta_s|^2`.
    """
    beta_s = _as_batch("beta_s", beta_s, 2)
    count, dim = beta_s.shape
    params = _init_batch(
        key, n_instances=count, dim=dim, depth=depth, init_scale=init_scale, init=init
    )
    stats = population_statistics(beta_s)
    return _trained(
        params, stats, reference=beta_s, options=options, progress=progress, stage="pretraining"
    )


def scratch(
    X,
    y,
    beta_t,
    *,
    key,
    depth=2,
    init_scale=1e-5,
    init="random",
    options=TrainingOptions(),
    progress=None,
    stats=None,
) -> ProtocolResult:
    r"""Train from small initialisation on the target sample (Theorem 3.5: ends at :math:`X^+ y`).

    Parameters
    ----------
    X : array-like, shape (K, n, D)
    y : array-like, shape (K, n)
    beta_t : array-like, shape (K, D)
        Target teachers, for the generalization error.
    key, depth, init_scale, init, options, progress :
        As in :func:`pretrain`.
    stats : featurefate.training.Statistics, optional
        The sample's statistics, if already computed (they are computed from X and y otherwise).
    """
    (X, y), beta_t = v.data(X, y, batched=True), _as_batch("beta_t", beta_t, 2)
    params = _init_batch(
        key, n_instances=X.shape[0], dim=X.shape[2], depth=depth, init_scale=init_scale, init=init
    )
    stats = _statistics(X, y) if stats is None else stats
    return _trained(
        params, stats, reference=beta_t, options=options, progress=progress,
        stage="scratch training",
    )  # fmt: skip


def significant_features(params, *, rcond=1e-3):
    r"""The numerically significant directions of the pretrained hidden features.

    With :math:`\Phi = U \mathrm{diag}(s) V^\top` the hidden feature matrix of each network,
    returns the rows :math:`s_i v_i^\top` with :math:`s_i > \mathrm{rcond} \cdot s_1` (zero rows
    elsewhere), so that regressing on them is regressing on :math:`\Phi x` without its residual
    directions (module docstring).

    Returns
    -------
    features : ndarray, shape (K, k, D)
        ``k`` is the largest count kept over the instances; an instance's surplus rows are 0.
    n_kept : ndarray of int, shape (K,)
    singular_values : ndarray, shape (K, D)
        All singular values of the hidden features, largest first (Theorem 3.4: one of order
        :math:`|\beta_s|^{(L-1)/L}`, the rest of order ``init_scale``).
    """
    rcond = float(v.real_array("rcond", rcond, low=0.0, high=1.0))
    if isinstance(params, RankOneParams):
        # one feature, exactly: Phi = (prod of the inner amplitudes) u_L s^T, whose one row
        # s_1 v_1^T is s times the product of the inner amplitudes' sizes
        inner = np.prod(np.abs(np.asarray(params.amplitudes)[:, :-1]), axis=1)
        feature = np.asarray(params.s) * inner[:, None]
        singular_values = np.zeros(feature.shape)
        singular_values[:, 0] = np.asarray(rank_one_feature_scale(params))
        return feature[:, None, :], np.ones(feature.shape[0], dtype=int), singular_values
    phi = np.asarray(jax.vmap(hidden_features)(params))
    _, s, Vt = np.linalg.svd(phi)
    keep = s > rcond * s[:, :1]
    kept = keep.sum(axis=1)
    # rows beyond an instance's own count are zero: they add nothing to the fit
    width = int(kept.max())
    features = np.where(keep[:, :width, None], s[:, :width, None] * Vt[:, :width], 0.0)
    return features, kept, s


def linear_transfer(params, X, y, beta_t, *, lam=0.0, rcond=1e-3) -> ProtocolResult:
    r"""Refit the last layer on frozen pretrained features, eqs. (11) and (14).

    The last layer ``a`` minimises :math:`\frac1n |y - X \Phi^\top a|^2 + \lambda |a|^2` over the
    significant features (:func:`significant_features`; minimum norm when ``lam = 0``), and
    :math:`w = \Phi^\top a`.

    Parameters
    ----------
    params : tuple of arrays
        Batched pretrained parameters.
    X, y, beta_t :
        As in :func:`scratch`.
    lam : float or sequence of float
        Ridge penalties >= 0; with a sequence, ``w`` and ``error`` gain a leading ``lam`` axis.
    rcond : float, default 1e-3
        Relative singular-value cutoff in [0, 1]; 0 keeps all directions.

    Returns
    -------
    ProtocolResult
        ``info["n_features"]``: the number of features kept per instance;
        ``info["singular_values"]``: the feature matrix's singular values, shape (K, D).
    """
    (X, y), beta_t = v.data(X, y, batched=True), _as_batch("beta_t", beta_t, 2)
    features, kept, singular_values = significant_features(params, rcond=rcond)
    lams = np.atleast_1d(v.real_array("lam", lam, low=0.0))
    w = frozen_feature_fit(X, y, features, lam=lams)
    error = generalization_error(w, beta_t[None])
    if np.ndim(lam) == 0:
        w, error = w[0], error[0]
    info = {"n_features": kept, "singular_values": singular_values}
    return ProtocolResult(w=w, error=error, info=info)


def fine_tune(
    params, X, y, beta_t, *, options=TrainingOptions(), progress=None, stats=None
) -> ProtocolResult:
    r"""Train all layers on the target sample from the pretrained weights (Theorem 3.9).

    ``options``, ``progress`` and ``stats`` are as in :func:`scratch`.

    Ends, as ``init_scale -> 0``, at :math:`X^+ y + c (I - P)\beta_s` with the c of
    :func:`featurefate.theory.linear.solve_finetune_scale` (not the paper's c = 1).
    """
    (X, y), beta_t = v.data(X, y, batched=True), _as_batch("beta_t", beta_t, 2)
    if not isinstance(params, RankOneParams):
        params = tuple(jnp.asarray(p) for p in params)
    stats = _statistics(X, y) if stats is None else stats
    return _trained(
        params, stats, reference=beta_t, options=options, progress=progress, stage="fine-tuning"
    )
