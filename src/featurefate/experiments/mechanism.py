r"""Theorem 3.4 from the authors' initialisation: pretraining makes the hidden features rank one.

Population pretraining (:math:`S = I`, :math:`b = \beta_s`: the loss :math:`|w - \beta_s|^2`) of
deep linear networks from the authors' random Gaussian init (hidden layers
:math:`\gamma N(0, 1) / \sqrt D`, last layer :math:`\gamma N(0, 1)`), a full-rank start, on the
dense engine; one cell per depth L. The networks are observed at log-spaced gradient-flow times
(:func:`featurefate.training.train_checkpoints`). Theorem 3.4: as :math:`\gamma \to 0` the hidden
features :math:`\Phi = W_{L-1} \cdots W_1` become rank one along :math:`\beta_s`, with

.. math::

    s_1(\Phi) \to |\beta_s|^{(L-1)/L}, \qquad s_k(\Phi) = O(\gamma^{L-1}) \ (k \ge 2),

and adjacent layers align. The other singular values keep the size they had at the init: the
largest singular value of a product of L - 1 independent Gaussian matrices with entries of
variance :math:`\gamma^2 / D` tends to
:math:`c_L \gamma^{L-1}`, :math:`c_L = (L^L / (L-1)^{L-1})^{1/2}` (the edge of the Fuss-Catalan
law: 2 for L = 2, 2.60 for L = 3; :func:`featurefate.theory.linear.init_feature_edge`).

Recorded at every checkpoint: the top singular values of :math:`\Phi`, the alignment
:math:`|v_1 \cdot \hat\beta_s|` of its top right singular vector with the source, the alignment
of adjacent layers (:func:`layer_alignment`), the loss, and the steps, flow time and drift of
the conserved quantities (35) so far.

The escape from the small init is slow at depth 3: the flow leaves the saddle at a time of order
:math:`1/\gamma` (about 1e4 at :math:`\gamma = 10^{-5}`), against :math:`\log(1/\gamma)` at
depth 2. The curvature-adaptive step (:func:`featurefate.training.train`) grows on that plateau
(to about 75 at D = 500), so depth 3 crosses it in about a hundred steps at ``eta = 0.1`` and
converges in about 500; ``eta`` sets how closely the discrete path keeps the flow's clock (to
first order: the time to converge is about 2% late at ``eta = 0.1``).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass

import numpy as np
import xarray as xr

import featurefate
from featurefate import _validation as v
from featurefate import schema
from featurefate._jax import jax, jnp
from featurefate.nets.linear import hidden_features, init_params
from featurefate.tasks import sphere
from featurefate.theory.linear import feature_scale, init_feature_edge
from featurefate.training import population_statistics, train_checkpoints

CELL_AXES = ("depth",)
"""One cell per network depth L."""


@dataclass(frozen=True)
class MechanismConfig:
    """Fixed parameters of the Theorem 3.4 experiment (the paper's scale: D = 500, 1e-5)."""

    dim: int = 100
    init_scale: float = 1e-5
    n_instances: int = 5
    source_norm: float = 1.0
    n_singular: int = 3
    """How many of the largest singular values of the hidden features are kept."""
    time_min: float = 1e-2
    time_max: float = 1e6
    per_decade: int = 4
    """Checkpoints: time 0 (the init), then ``per_decade`` per decade from ``time_min`` to
    ``time_max`` in gradient-flow time (:meth:`checkpoints`)."""
    eta: float = 0.1
    """Fraction of the stability limit taken by the curvature-adaptive step
    (:func:`featurefate.training.train`); it sets how closely the path keeps the flow's clock."""
    tol: float = 1e-12
    """An instance stops once its loss is below this."""
    max_steps: int = 20_000
    """Step budget of the whole path."""

    def __post_init__(self):
        v.integer("dim", self.dim, low=2)
        v.real_array("init_scale", self.init_scale, low=0.0, low_open=True)
        v.integer("n_instances", self.n_instances, low=1)
        v.real_array("source_norm", self.source_norm, low=0.0, low_open=True)
        v.integer("n_singular", self.n_singular, low=2)
        if self.n_singular > self.dim:
            raise ValueError(f"n_singular must be at most dim = {self.dim}; got {self.n_singular}")
        v.real_array("time_min", self.time_min, low=0.0, low_open=True)
        v.real_array("time_max", self.time_max, low=self.time_min, low_open=True)
        v.integer("per_decade", self.per_decade, low=1)
        v.real_array("eta", self.eta, low=0.0, high=2.0, low_open=True, high_open=True)
        v.real_array("tol", self.tol, low=0.0)
        v.integer("max_steps", self.max_steps, low=1)

    def checkpoints(self) -> np.ndarray:
        """0, then log-spaced flow times from ``time_min`` to ``time_max``, both included."""
        decades = np.log10(self.time_max / self.time_min)
        count = max(2, round(decades * self.per_decade) + 1)
        return np.concatenate([[0.0], np.geomspace(self.time_min, self.time_max, count)])


def check_cell(config: MechanismConfig, cell: dict) -> int:
    """Validate one cell's ``depth``; return it as an int."""
    if "depth" not in cell:
        raise ValueError(f"cell is missing depth; a cell needs {CELL_AXES}")
    return v.integer("depth", cell["depth"], low=2)


def layer_alignment(params) -> np.ndarray:
    r"""How well adjacent layers line up, the worst pair of each network, shape (K,).

    .. math::

        \min_l \frac{\|W_{l+1} W_l\|_F}{\|W_{l+1}\|_F \|W_l\|_F} \in [0, 1],

    which is 1 exactly when every layer is rank one and its output direction is the next layer's
    input direction (Theorem 3.4), and about :math:`D^{-1/2}` for independent random layers.
    """

    def one(layers):
        ratios = [
            jnp.linalg.norm(above @ below) / (jnp.linalg.norm(above) * jnp.linalg.norm(below))
            for below, above in itertools.pairwise(layers)
        ]
        return jnp.min(jnp.stack(ratios))

    return np.asarray(jax.vmap(one)(tuple(params)))


def feature_diagnostics(params, beta_s, *, n_singular: int) -> dict[str, np.ndarray]:
    r"""Top singular values of the hidden features, their alignment with :math:`\beta_s`, layers'.

    Returns ``singular_values`` (K, n_singular), ``feature_alignment``
    :math:`|v_1 \cdot \beta_s| / |\beta_s|` (K,) with :math:`v_1` the top right singular vector
    of :math:`\Phi`, and ``layer_alignment`` (K,) (:func:`layer_alignment`).
    """
    phi = np.asarray(jax.vmap(hidden_features)(params))
    _, s, vt = np.linalg.svd(phi)
    direction = beta_s / np.linalg.norm(beta_s, axis=1, keepdims=True)
    return {
        "singular_values": s[:, :n_singular],
        "feature_alignment": np.abs(np.sum(vt[:, 0] * direction, axis=1)),
        "layer_alignment": layer_alignment(params),
    }


def run_cell(config: MechanismConfig, cell: dict, seed) -> xr.Dataset:
    r"""Pretrain ``n_instances`` networks of one depth from the random init; observe the path.

    Parameters
    ----------
    config : MechanismConfig
    cell : dict
        ``depth`` (L >= 2).
    seed : int or numpy.random.SeedSequence
        The source teachers (uniform directions, norm ``source_norm``) and the inits derive
        from it.

    Returns
    -------
    xarray.Dataset
        Dims ``instance``, ``checkpoint`` (coordinate: the nominal flow time; 0 is the init)
        and ``rank``; scalar coord ``depth``. Per instance and checkpoint: ``singular_values``
        (with ``rank``), ``feature_alignment``, ``layer_alignment``, ``loss``
        (:math:`|w - \beta_s|^2`), ``time`` (the flow time actually reached: an instance stops
        at the first step past a checkpoint, and where it has converged), ``steps``, ``drift``.
        Per instance: ``converged``. Scalars: ``theory_feature_scale``
        (:func:`featurefate.theory.linear.feature_scale`) and ``theory_init_edge``
        (:func:`featurefate.theory.linear.init_feature_edge`).
    """
    depth = check_cell(config, cell)
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    teacher_seed, init_seed = seq.spawn(2)
    k = config.n_instances
    beta_s = config.source_norm * sphere((k,), config.dim, seed=np.random.default_rng(teacher_seed))
    key = jax.random.PRNGKey(int(init_seed.generate_state(1)[0]))
    params = jax.vmap(lambda kk: init_params(kk, config.dim, depth, config.init_scale))(
        jax.random.split(key, k)
    )
    times = config.checkpoints()
    # explicit steps: the figure's clock is gradient-flow time, which the curvature-adaptive
    # explicit step keeps (the semi-implicit one reaches the end point in fewer, longer steps)
    options = {
        "eta": config.eta,
        "tol": config.tol,
        "max_steps": config.max_steps,
        "method": "explicit",
    }
    records: dict[str, list] = {}
    previous_steps, seen = None, None
    result = None
    for result in train_checkpoints(params, population_statistics(beta_s), times, **options):
        # a checkpoint where no instance moved has the previous one's features: no new SVD
        if seen is None or not np.array_equal(result.steps, previous_steps):
            seen = feature_diagnostics(result.params, beta_s, n_singular=config.n_singular)
        previous_steps = result.steps
        row = {
            **seen,
            "loss": result.excess_loss,
            "time": result.time,
            "steps": result.steps,
            "drift": result.drift,
        }
        for name, value in row.items():
            records.setdefault(name, []).append(value)

    per_path = ("instance", "checkpoint")
    data = {name: (per_path, np.stack(values, axis=1)) for name, values in records.items()}
    data["singular_values"] = (
        (*per_path, "rank"),
        np.stack(records["singular_values"], axis=1),
    )
    data["converged"] = (("instance",), result.converged)
    data["theory_feature_scale"] = ((), float(feature_scale(depth, source_norm=config.source_norm)))
    data["theory_init_edge"] = ((), float(init_feature_edge(depth, config.init_scale)))
    ds = xr.Dataset(
        data,
        coords={
            "instance": np.arange(k),
            "checkpoint": times,
            "rank": np.arange(1, config.n_singular + 1),
            "depth": depth,
        },
    )
    schema.annotate("mechanism", ds)
    ds.attrs.update(
        {
            "featurefate_version": featurefate.__version__,
            "experiment": "mechanism",
            "config": json.dumps(asdict(config)),
            "seed": str(seq.entropy),
            "dim": config.dim,
            "init_scale": config.init_scale,
            "init": "random",
            "source_norm": config.source_norm,
            "engine": "dense (full D x D layers)",
        }
    )
    return ds


def summarize(ds: xr.Dataset) -> list[dict]:
    """Per depth, against Theorem 3.4: final s1, the largest s2 on the way, alignments, steps.

    ``ds`` is one cell or a sweep (a ``depth`` dimension). Returns JSON-ready dicts.
    """
    rows = []
    for depth in np.atleast_1d(ds.depth.values):
        d = ds.sel(depth=depth) if "depth" in ds.dims else ds
        sv = d.singular_values
        final = sv.isel(checkpoint=-1)
        init = sv.isel(checkpoint=0)
        s1_half = final.sel(rank=1) / 2
        # first flow time at which s1 reached half its final value, per instance
        reached = (sv.sel(rank=1) >= s1_half).values
        first = np.argmax(reached, axis=1)
        escape = d.time.values[np.arange(d.sizes["instance"]), first]
        rows.append(
            {
                "depth": int(depth),
                "instances": int(d.sizes["instance"]),
                "final_s1_median": float(final.sel(rank=1).median()),
                "final_s1_max_deviation": float(
                    np.abs(final.sel(rank=1) - d.theory_feature_scale).max()
                ),
                "theory_s1": float(d.theory_feature_scale),
                "max_s2": float(sv.sel(rank=2).max()),
                "init_s1_median": float(init.sel(rank=1).median()),
                "theory_init_edge": float(d.theory_init_edge),
                "final_feature_alignment_min": float(d.feature_alignment.isel(checkpoint=-1).min()),
                "init_feature_alignment_median": float(
                    d.feature_alignment.isel(checkpoint=0).median()
                ),
                "final_layer_alignment_min": float(d.layer_alignment.isel(checkpoint=-1).min()),
                "escape_time_median": float(np.median(escape)),
                "steps_max": int(d.steps.isel(checkpoint=-1).max()),
                "converged": f"{int(d.converged.sum())}/{d.sizes['instance']}",
                "final_loss_max": float(d.loss.isel(checkpoint=-1).max()),
                "drift_max": float(d.drift.isel(checkpoint=-1).max()),
            }
        )
    return rows
