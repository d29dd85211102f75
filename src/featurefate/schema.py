r"""The result schema: every variable of every experiment family's dataset, named and explained.

Each experiment family's ``run_cell`` (:mod:`featurefate.experiments`) returns an
:class:`xarray.Dataset`; :func:`featurefate.experiments.theory_phase.phase_diagram` returns the
theory's. This module says, for each family, what every coordinate and data variable of that
dataset is: its name, dims, dtype kind, a one-line meaning (with the paper's equation) and its
units. Nothing else in the package spells a result variable's name by hand: the experiments write,
and the figures, the report and the CLI read, through the name helpers here
(:func:`error_name`, :func:`transferability_name`, :func:`diagnostic_name`, ...), which keep the
names the stores have always had.

- :func:`variables` / :func:`coordinates`: a family's data variables / coordinates, by name;
- :func:`check`: raise :class:`SchemaError` when a dataset has a variable the schema does not
  document, lacks one it documents, or has one with other dims or another dtype kind;
- :func:`annotate`: write each variable's ``long_name`` and ``units`` into its ``attrs``;
- :func:`reference_markdown`: the reference ``docs/results.md``, generated from the schema
  (``python -m featurefate.schema docs/results.md`` rewrites it).

Some dims exist only with some configs: ``alpha_source`` (finite-source pretraining of
``linear_phase`` and ``init_scale``), ``lam`` (``init_scale`` with ridge penalties) and ``k`` (the
Theorem 2.2 family of ``discrepancy``). A variable lists them among its dims as *optional*, and a
variable that exists only with such a dim names it in ``only_with``. A sweep's store prepends the
family's cell axes to every variable and adds the store's own :data:`STORE_VARIABLES`;
:func:`check` accepts both.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from featurefate import _validation as v

__all__ = [
    "FAMILIES",
    "STORE_VARIABLES",
    "Family",
    "SchemaError",
    "Variable",
    "annotate",
    "check",
    "converged_name",
    "coordinates",
    "diagnostic_name",
    "endpoint_gap_name",
    "error_name",
    "family",
    "family_dudley_name",
    "reference_markdown",
    "sample_distance_name",
    "stderr_name",
    "steps_name",
    "theory_error_name",
    "transferability_name",
    "variables",
]

KINDS = {"f": "float", "i": "int", "b": "bool"}
"""dtype kinds (:attr:`numpy.dtype.kind`) a variable may have, and how the reference names them."""

# ------------------------------------------------------------------------------- name helpers

METHODS = ("scratch", "pretrain", "linear", "ridge", "finetune", "finetune_paper", "finetune_exact")
"""Method tokens of ``error_<method>`` and its relatives. ``finetune`` is the trained network;
``finetune_paper`` and ``finetune_exact`` its two gradient-flow endpoints (eq. 16 and the corrected
one, docs/theory.md, Fine-tuning), as theory or as exact endpoints."""

STAGES = ("pretrain", "scratch", "finetune")
"""Trained stages, the ``<stage>`` of the training diagnostics."""

LINEAR_DIAGNOSTICS = ("steps", "converged", "excess_loss", "drift", "time")
"""Training diagnostics of a deep linear stage (:class:`featurefate.training.TrainResult`)."""

RELU_DIAGNOSTICS = ("steps", "converged", "loss", "relative_loss", "sphere_error")
"""Training diagnostics of a ReLU stage (:class:`featurefate.relu_training.ReluTrainResult`)."""

SAMPLE_DISTANCES = ("w1", "dudley", "dudley_max", "kl")
"""Sample distances of ``discrepancy``: ``sample_<distance>`` and ``sample_<distance>_subspace``."""


def error_name(method: str) -> str:
    """``error_<method>``: a method's generalization error per instance (eq. 8)."""
    return "error_" + v.choice("method", method, METHODS)


def theory_error_name(method: str) -> str:
    """``theory_error_<method>``: the closed-form expected error of a method."""
    return "theory_error_" + v.choice("method", method, METHODS)


def transferability_name(method: str, *, theory: bool = False) -> str:
    """``transferability_<method>`` (simulated, eq. 7) or, with ``theory``, its closed form."""
    name = "transferability_" + v.choice("method", method, METHODS)
    return "theory_" + name if theory else name


def stderr_name(name: str) -> str:
    """``<name>_stderr``: the standard error over instances of the mean ``name``."""
    return f"{name}_stderr"


def endpoint_gap_name(method: str) -> str:
    """``endpoint_gap_<method>``: distance of a trained endpoint from its exact endpoint."""
    return "endpoint_gap_" + v.choice("method", method, METHODS)


def diagnostic_name(quantity: str, stage: str) -> str:
    """``<quantity>_<stage>``: a training diagnostic (``steps``, ``converged``, ...) of a stage."""
    quantity = v.choice("quantity", quantity, (*LINEAR_DIAGNOSTICS, *RELU_DIAGNOSTICS[2:]))
    return f"{quantity}_{v.choice('stage', stage, STAGES)}"


def converged_name(stage: str) -> str:
    """``converged_<stage>``: whether each instance of a stage reached its tolerance."""
    return diagnostic_name("converged", stage)


def steps_name(stage: str) -> str:
    """``steps_<stage>``: the gradient steps each instance of a stage took."""
    return diagnostic_name("steps", stage)


def sample_distance_name(distance: str, *, subspace: bool = False) -> str:
    """``sample_<distance>`` or ``sample_<distance>_subspace`` (``discrepancy``)."""
    name = "sample_" + v.choice("distance", distance, SAMPLE_DISTANCES)
    return name + "_subspace" if subspace else name


def family_dudley_name(norm: str = "sum", statistic: str | None = None) -> str:
    """``family_dudley[_max][_stderr|_floor]``: the Theorem 2.2 family's Dudley distances.

    ``norm`` is the convention (``"sum"``: the paper's :math:`\\|h\\|_\\infty + \\mathrm{Lip}(h)
    \\le 1`, ``"max"``: both bounds at 1); ``statistic`` is None (the mean), ``"stderr"`` or
    ``"floor"``.
    """
    suffix = {"sum": "", "max": "_max"}[v.choice("norm", norm, ("sum", "max"))]
    name = "family_dudley" + suffix
    if statistic is None:
        return name
    return f"{name}_{v.choice('statistic', statistic, ('stderr', 'floor'))}"


# ------------------------------------------------------------------------------- the schema


@dataclass(frozen=True)
class Variable:
    """One variable (or coordinate) of a result dataset.

    Attributes
    ----------
    name : str
    dims : tuple of str
        Its dims in order, those of one cell (a sweep's store prepends the cell axes).
    kind : {"f", "i", "b"}
        Its dtype kind: float, integer or boolean.
    meaning : str
        One line, with the paper's equation where there is one.
    units : str
        ``"squared error"``, ``"radians"``, ``"steps"``, ``"nats"``, ``"1"`` (a pure number), ...
    optional_dims : tuple of str
        Those of ``dims`` that exist only with some configs (:data:`Family.optional`).
    only_with : str, optional
        A dim: the variable exists exactly when the dataset has that dim.
    """

    name: str
    dims: tuple[str, ...]
    kind: str
    meaning: str
    units: str
    optional_dims: tuple[str, ...] = ()
    only_with: str | None = None

    def __post_init__(self):
        v.choice("kind", self.kind, KINDS)
        extra = set(self.optional_dims) - set(self.dims)
        if extra:
            raise ValueError(f"{self.name}: optional_dims {sorted(extra)} are not among its dims")

    def expected_dims(self, present) -> tuple[str, ...]:
        """Its dims in a dataset whose dims are ``present`` (optional dims only if there)."""
        return tuple(d for d in self.dims if d not in self.optional_dims or d in present)

    def attrs(self) -> dict[str, str]:
        """The ``attrs`` :func:`annotate` writes: ``long_name`` (the meaning) and ``units``."""
        return {"long_name": self.meaning, "units": self.units}


@dataclass(frozen=True)
class Family:
    """The dataset of one experiment family: coordinates, data variables, dims without coords."""

    name: str
    summary: str
    cell_axes: tuple[str, ...]
    coords: Mapping[str, Variable]
    variables: Mapping[str, Variable]
    bare_dims: Mapping[str, str] = field(default_factory=dict)
    """Dims without a coordinate, and what indexes them."""
    optional: Mapping[str, str] = field(default_factory=dict)
    """Optional dims, and the config that makes them."""


class SchemaError(ValueError):
    """A dataset that does not match its family's schema; the message lists every difference."""


# shorthands for the tables below
_SQ = "squared error"
_INST = ("instance",)


def _var(name, dims, meaning, units=_SQ, *, kind="f", optional=(), only_with=None):
    return Variable(name, tuple(dims), kind, meaning, units, tuple(optional), only_with)


def _table(items) -> Mapping[str, Variable]:
    out = {}
    for item in items:
        if item.name in out:
            raise ValueError(f"variable {item.name!r} is listed twice")
        out[item.name] = item
    return MappingProxyType(out)


_INSTANCE = _var(
    "instance",
    _INST,
    "index of the random instance (teachers, data, initialisations)",
    "1",
    kind="i",
)
_ALPHA = _var("alpha", (), "samples per dimension alpha = n / D of the target task", "1")
_THETA = _var("theta", (), "angle theta between the source and target teachers", "radians")
_SIGMA = _var("sigma", (), "label-noise standard deviation sigma of the target samples", "1")
_N = _var("n", (), "target training samples n = round(alpha * D)", "samples", kind="i")


def _linear_coords(*, scaled: bool) -> list[Variable]:
    source = {"optional": ("alpha_source",), "only_with": "alpha_source"}
    lam_when = {"only_with": "lam"} if scaled else {}
    coords = [
        _INSTANCE,
        _var("lam", ("lam",), "ridge penalty of linear transfer, eq. (14)", "1", **lam_when),
        _ALPHA,
        _THETA,
        _SIGMA,
        _N,
        _var(
            "alpha_source",
            ("alpha_source",),
            "source samples per dimension n_s / D of finite-source pretraining "
            "(docs/theory.md, Finite source data)",
            "1",
            **source,
        ),
        _var(
            "n_source",
            ("alpha_source",),
            "source samples n_s = round(alpha_source * D)",
            "samples",
            kind="i",
            **source,
        ),
    ]
    if scaled:
        coords.append(
            _var(
                "init_scale",
                ("init_scale",),
                "init scale gamma of the random Gaussian init (the paper: 1e-5)",
                "1",
            )
        )
    return coords


_LINEAR_STAGE = {
    "pretrain": "pretraining",
    "scratch": "scratch training",
    "finetune": "fine-tuning",
}
_LINEAR_DIAGNOSTIC = {
    "steps": ("i", "gradient steps taken by {stage}", "steps"),
    "converged": ("b", "{stage} reached its loss tolerance (False: stopped by a limit)", "flag"),
    "excess_loss": ("f", "final loss of {stage} minus its minimum", _SQ),
    "drift": ("f", "largest change of the conserved quantities (35) during {stage}", "1"),
    "time": ("f", "gradient-flow time elapsed in {stage}, the sum of the step sizes", "flow time"),
}


def _linear_variables(*, scaled: bool) -> list[Variable]:
    """``linear_phase``'s variables; with ``scaled``, ``init_scale``'s (an ``init_scale`` dim)."""
    lead = ("init_scale",) if scaled else ()

    def var(name, dims, meaning, units=_SQ, *, kind="f", theory=False, source=True, ridge=False):
        full = (() if theory else lead) + (("alpha_source",) if source else ()) + tuple(dims)
        return _var(
            name,
            full,
            meaning,
            units,
            kind=kind,
            optional=("alpha_source",) if source else (),
            only_with="lam" if ridge and scaled else None,
        )

    gen = "generalization error |w - beta_t|^2 (eq. 8) of"
    out = [
        var(
            error_name("scratch"),
            _INST,
            f"{gen} scratch training (ends at X^+ y, Theorem 3.5)",
            source=False,
        ),
        var(
            theory_error_name("scratch"),
            (),
            "expected scratch error at the simulated D, eq. (10) in its exact finite-size form",
            theory=True,
            source=False,
        ),
        var(
            endpoint_gap_name("scratch"),
            _INST,
            "|w - X^+ y|: distance of scratch training's endpoint from the min-norm fit (Theorem 3.5)",
            "1",
            source=False,
        ),
    ]
    out += [
        var(
            diagnostic_name(q, "scratch"),
            _INST,
            text.format(stage="scratch training"),
            units,
            kind=kind,
            source=False,
        )
        for q, (kind, text, units) in _LINEAR_DIAGNOSTIC.items()
    ]
    out += [
        var(
            error_name("linear"),
            _INST,
            f"{gen} linear transfer: the last layer refit on the pretrained features above rcond (Theorem 3.7)",
        ),
        var(
            error_name("ridge"),
            ("lam", *_INST),
            f"{gen} ridge linear transfer at penalty lam (Theorem 3.8)",
            ridge=True,
        ),
        var(
            error_name("finetune"),
            _INST,
            f"{gen} fine-tuning every layer from the pretrained network (Theorem 3.9)",
        ),
        var(
            error_name("pretrain"),
            _INST,
            "|w - beta_s|^2: distance of the pretrained network from the source teacher",
        ),
    ]
    for method, text, ridge in (
        ("linear", "linear transfer", False),
        ("ridge", "ridge linear transfer", True),
        ("finetune", "fine-tuning", False),
    ):
        dims = ("lam",) if ridge else ()
        t = transferability_name(method)
        out += [
            var(
                t,
                dims,
                f"transferability T = mean of error_scratch - error_{method} over instances (eq. 7), {text}",
                ridge=ridge,
            ),
            var(
                stderr_name(t), dims, f"standard error of {t} (paired over instances)", ridge=ridge
            ),
        ]
    theory_methods = (  # method, what, equation of its error, equation of its T, ridge
        ("linear", "linear transfer", "eq. 12", "eq. 13 in the limit", False),
        ("ridge", "ridge linear transfer", "eqs. 14-15", "eqs. 14-15", True),
        ("finetune_paper", "fine-tuning to the paper's endpoint", "eq. 16", "eq. 17", False),
        (
            "finetune_exact",
            "fine-tuning to the corrected endpoint",
            *2 * ("docs/theory.md",),
            False,
        ),
    )
    for method, text, error_eq, _, ridge in theory_methods:
        dims = ("lam",) if ridge else ()
        out.append(
            var(
                theory_error_name(method),
                dims,
                f"expected error of {text} ({error_eq}), exact at the simulated D",
                theory=True,
                ridge=ridge,
            )
        )
    for method, text, _, t_eq, ridge in theory_methods:
        dims = ("lam",) if ridge else ()
        out.append(
            var(
                transferability_name(method, theory=True),
                dims,
                f"expected transferability T (eq. 7) of {text} ({t_eq}), exact at the simulated D",
                theory=True,
                ridge=ridge,
            )
        )
    out += [
        var(
            endpoint_gap_name("pretrain"),
            _INST,
            "|w - w_s|: distance of pretraining's endpoint from where it ends as init_scale -> 0 (beta_s, or the source fit X_s^+ y_s)",
            "1",
        ),
        var(
            endpoint_gap_name("linear"),
            _INST,
            "distance of linear transfer's endpoint from its exact gradient-flow endpoint (rank-one refit)",
            "1",
        ),
        var(
            endpoint_gap_name("finetune_paper"),
            _INST,
            "distance of fine-tuning's endpoint from the paper's X^+ y + (I - P) beta_s, eq. (16)",
            "1",
        ),
        var(
            endpoint_gap_name("finetune_exact"),
            _INST,
            "distance of fine-tuning's endpoint from the corrected X^+ y + c (I - P) beta_s (docs/theory.md)",
            "1",
        ),
    ]
    for stage in ("pretrain", "finetune"):
        out += [
            var(
                diagnostic_name(q, stage),
                _INST,
                text.format(stage=_LINEAR_STAGE[stage]),
                units,
                kind=kind,
            )
            for q, (kind, text, units) in _LINEAR_DIAGNOSTIC.items()
        ]
    out += [
        var(
            "n_features_linear",
            _INST,
            "pretrained features (singular values above rcond times the largest) linear transfer refits on",
            "features",
            kind="i",
        ),
        var(
            "pretrained_singular_values",
            (*_INST, "rank"),
            "three largest singular values of the pretrained hidden features (Theorem 3.4: |beta_s|^((L-1)/L), then O(init_scale))",
            "1",
        ),
    ]
    if scaled:
        out.append(
            var(
                "feature_ratio",
                _INST,
                "s2 / s1 of the pretrained hidden features (0 in the rank-one theory, Theorem 3.4)",
                "1",
            )
        )
    return out


_RANK_BARE = {"rank": "singular values of the pretrained hidden features, largest first"}
_SOURCE_OPTIONAL = {
    "alpha_source": "a non-empty `alpha_source` (finite-source pretraining; the theory columns "
    "are then the finite-source closed forms, and the pretraining gap is from X_s^+ y_s)"
}

_LINEAR_PHASE = Family(
    "linear_phase",
    "Deep linear transfer (Section 3, Figs. 1-3, 6, 7): one (alpha, theta, sigma) cell of "
    "scratch training, linear and ridge transfer and fine-tuning, with the theory at the "
    "simulated D.",
    ("alpha", "theta", "sigma"),
    _table(_linear_coords(scaled=False)),
    _table(_linear_variables(scaled=False)),
    MappingProxyType(_RANK_BARE),
    MappingProxyType(_SOURCE_OPTIONAL),
)

_INIT_SCALE = Family(
    "init_scale",
    "The linear_phase protocols at several init scales gamma on the same instances (beyond the "
    "paper: when does the rank-one theory of Section 3 stop holding?). The theory variables do "
    "not depend on gamma and have no init_scale dim.",
    ("alpha", "theta", "sigma"),
    _table(_linear_coords(scaled=True)),
    _table(_linear_variables(scaled=True)),
    MappingProxyType(_RANK_BARE),
    MappingProxyType({**_SOURCE_OPTIONAL, "lam": "a non-empty `lam` (ridge penalties)"}),
)


_RELU_STAGE = {"pretrain": "pretraining on the source", "scratch": "scratch training"}
_RELU_DIAGNOSTIC = {
    "steps": ("i", "gradient steps taken by {stage}", "steps"),
    "converged": ("b", "{stage} reached its loss tolerance (False: stopped by max_steps)", "flag"),
    "loss": ("f", "final training loss of {stage}", _SQ),
    "relative_loss": ("f", "final loss of {stage} over the zero network's loss", "1"),
    "sphere_error": ("f", "largest ||w_i| - 1| of the first layer after {stage}", "1"),
}


def _relu_variables() -> list[Variable]:
    gen = "generalization error |f - f_t|^2, exact from the arc-cosine kernel (eqs. 152-156), of"
    t = transferability_name("linear")
    out = [
        _var(error_name("scratch"), _INST, f"{gen} scratch training on the n target samples"),
        _var(
            error_name("linear"),
            _INST,
            f"{gen} linear transfer: kernel ridge refit of the output weights on the pretrained features (eq. 21)",
        ),
        _var(
            error_name("pretrain"),
            _INST,
            "final population loss |f - f_s|^2 of pretraining on the source",
        ),
        _var(
            t, (), "transferability T = mean of error_scratch - error_linear over instances (eq. 7)"
        ),
        _var(stderr_name(t), (), f"standard error of {t} (paired over instances)"),
        _var(
            "theory_residual",
            _INST,
            "|P_perp f_t|^2: the target outside the pretrained features' span, linear transfer's floor (eqs. 158-159)",
        ),
        _var(
            "theory_residual_source",
            _INST,
            "|P_perp f_s|^2 of the source (0 when pretraining has learned it; a check)",
        ),
        _var("target_norm", _INST, "|f_t|^2: squared norm of the target teacher's function"),
        _var(
            "kernel_alignment",
            _INST,
            "alignment of the pretrained model's feature kernel with the source teacher's, exact (Fig. 4a-b)",
            "1",
        ),
        _var(
            "kernel_alignment_centered",
            _INST,
            "centred kernel alignment of the pretrained model with the source teacher, exact",
            "1",
        ),
    ]
    for stage in ("pretrain", "scratch"):
        out += [
            _var(
                diagnostic_name(q, stage),
                _INST,
                text.format(stage=_RELU_STAGE[stage]),
                units,
                kind=kind,
            )
            for q, (kind, text, units) in _RELU_DIAGNOSTIC.items()
        ]
    kernel = ("test_point", "test_point_2")
    out += [
        _var(
            "kernel_model",
            kernel,
            "pretrained model's feature kernel (1/m) sum_i relu(w_i.x) relu(w_i.x') on the test points, instance 0 (Fig. 4a)",
            "1",
        ),
        _var(
            "kernel_source",
            kernel,
            "source teacher's feature kernel (1/k_s) sum_j over its kept neurons, on the test points, instance 0 (Fig. 4b)",
            "1",
        ),
    ]
    return out


_TEST_POINT = "index of a Gaussian test point of the kernel panels, ordered by the source's value"
_RELU_PHASE = Family(
    "relu_phase",
    "Two-layer ReLU teacher-student transfer (Section 4, Fig. 4): one (rho, n) cell of "
    "pretraining, scratch training and linear transfer, errors exact from the kernel.",
    ("rho", "n"),
    _table(
        [
            _INSTANCE,
            _var("test_point", ("test_point",), _TEST_POINT, "1", kind="i"),
            _var(
                "test_point_2",
                ("test_point_2",),
                _TEST_POINT + " (second kernel axis)",
                "1",
                kind="i",
            ),
            _var(
                "rho",
                (),
                "fraction rho of the target's teacher neurons removed from the source (eqs. 19-20)",
                "1",
            ),
            _var("n", (), "target training samples n", "samples", kind="i"),
        ]
    ),
    _table(_relu_variables()),
)


def _discrepancy_variables() -> list[Variable]:
    dudley = {
        "dudley": "Dudley metric (||h||_inf + Lip(h) <= 1, the paper's)",
        "dudley_max": "Dudley metric (|h| <= 1 and Lip(h) <= 1)",
    }
    sample_text = {
        "w1": "W1",
        **dudley,
        "kl": "KL between Gaussians fitted to the",
    }
    out = [
        _var(
            "theory_kl",
            (),
            "KL(p_s || p_t) between the Gaussian joints, closed form |beta_s - beta_t|^2 / (2 sigma^2)",
            "nats",
        ),
        _var("theory_w2", (), "W2(p_s, p_t) between the Gaussian joints, Bures closed form", "1"),
    ]
    for subspace, where in (
        (False, "n_samples draws of each joint in all D + 1 coordinates"),
        (True, "draws projected on (beta_s.x, nu.x, y), where the joints differ"),
    ):
        for distance in SAMPLE_DISTANCES:
            units = "nats" if distance == "kl" else "1"
            between = "" if distance == "kl" else " between"
            out.append(
                _var(
                    sample_distance_name(distance, subspace=subspace),
                    _INST,
                    f"{sample_text[distance]}{between} {where}",
                    units,
                )
            )
    methods = ("scratch", "linear", "finetune_paper", "finetune_exact")
    endpoint = {
        "scratch": "scratch training's X^+ y (Theorem 3.5)",
        "linear": "linear transfer's rank-one refit (Theorem 3.7)",
        "finetune_paper": "fine-tuning's paper endpoint X^+ y + (I - P) beta_s (eq. 16)",
        "finetune_exact": "fine-tuning's corrected endpoint X^+ y + c (I - P) beta_s (docs/theory.md)",
    }
    for method in methods:
        out.append(
            _var(
                error_name(method),
                _INST,
                f"generalization error |w - beta_t|^2 (eq. 8) of {endpoint[method]}; no network trained",
            )
        )
    theory_text = {
        "linear": "linear transfer, eq. (12)",
        "finetune_paper": "fine-tuning to the paper's endpoint, eq. (17)",
        "finetune_exact": "fine-tuning to the corrected endpoint at its typical c (docs/theory.md)",
    }
    for method in methods[1:]:
        t = transferability_name(method)
        out += [
            _var(
                t,
                (),
                f"transferability T = mean of error_scratch - error_{method} over instances (eq. 7)",
            ),
            _var(stderr_name(t), (), f"standard error of {t} (paired over instances)"),
            _var(
                transferability_name(method, theory=True),
                (),
                f"expected T (eq. 7) of {theory_text[method]}, exact at D and n / D",
            ),
        ]
    family = {"only_with": "k"}
    for norm, key in (("sum", "dudley"), ("max", "dudley_max")):
        name = family_dudley_name(norm)
        text = (
            f"{dudley[key]} between the Theorem 2.2 joints (beta_t = -k beta_s), plug-in on (u, y)"
        )
        out += [
            _var(name, ("k",), f"{text}, replicate mean", "1", **family),
            _var(
                family_dudley_name(norm, "stderr"),
                ("k",),
                f"standard error of {name} over replicates",
                "1",
                **family,
            ),
            _var(
                family_dudley_name(norm, "floor"),
                (),
                f"{name} between two samples of the source law: the plug-in's bias (population value 0)",
                "1",
                **family,
            ),
        ]
    return out


_DISCREPANCY = Family(
    "discrepancy",
    "Dataset distances against transferability (Section 2.1, Theorem 2.2, Fig. 5): one "
    "(alpha, theta, target_norm, sigma) cell of closed-form and sample distances between the "
    "source and target joints, and the transferabilities of the exact endpoints.",
    ("alpha", "theta", "target_norm", "sigma"),
    _table(
        [
            _INSTANCE,
            _ALPHA,
            _THETA,
            _var("target_norm", (), "|beta_t|: norm of the target teacher", "1"),
            _var("sigma", (), "label-noise standard deviation sigma of both tasks", "1"),
            _N,
            _var(
                "k",
                ("k",),
                "scale k of the Theorem 2.2 targets beta_t = -k beta_s",
                "1",
                only_with="k",
            ),
        ]
    ),
    _table(_discrepancy_variables()),
    optional=MappingProxyType({"k": "a non-empty `family_k` (the Theorem 2.2 family)"}),
)


_PATH = ("instance", "checkpoint")
_MECHANISM = Family(
    "mechanism",
    "Theorem 3.4 along pretraining from the random init: one depth L per cell, the hidden "
    "features observed at log-spaced gradient-flow times.",
    ("depth",),
    _table(
        [
            _INSTANCE,
            _var(
                "checkpoint",
                ("checkpoint",),
                "nominal gradient-flow time of the checkpoint (0: the init)",
                "flow time",
            ),
            _var("rank", ("rank",), "rank of the singular value, 1 the largest", "1", kind="i"),
            _var("depth", (), "network depth L", "layers", kind="i"),
        ]
    ),
    _table(
        [
            _var(
                "singular_values",
                (*_PATH, "rank"),
                "largest singular values of the hidden features W_{L-1}...W_1 (Theorem 3.4)",
                "1",
            ),
            _var(
                "feature_alignment",
                _PATH,
                "|v_1 . beta_s| / |beta_s|: the hidden features' top right singular vector against the source",
                "1",
            ),
            _var(
                "layer_alignment",
                _PATH,
                "min over l of ||W_{l+1} W_l||_F / (||W_{l+1}||_F ||W_l||_F): 1 when adjacent layers align",
                "1",
            ),
            _var("loss", _PATH, "population pretraining loss |w - beta_s|^2"),
            _var(
                "time",
                _PATH,
                "gradient-flow time reached (the first step past the checkpoint)",
                "flow time",
            ),
            _var("steps", _PATH, "gradient steps taken so far", "steps", kind="i"),
            _var("drift", _PATH, "largest change of the conserved quantities (35) so far", "1"),
            _var(
                "converged",
                _INST,
                "pretraining reached its loss tolerance (False: stopped by max_steps)",
                "flag",
                kind="b",
            ),
            _var(
                "theory_feature_scale",
                (),
                "|beta_s|^((L-1)/L): the top singular value Theorem 3.4 predicts",
                "1",
            ),
            _var(
                "theory_init_edge",
                (),
                "c_L gamma^(L-1): the largest singular value of the hidden features at the init",
                "1",
            ),
        ]
    ),
)


_THEORY_PHASE = Family(
    "theory_phase",
    "Theory phase diagrams (Figs. 1a, 2, 3a, 6, 7) from "
    "`featurefate.experiments.theory_phase.phase_diagram`: one method over an (alpha, theta) "
    "grid; no cells, no instances.",
    (),
    _table(
        [
            _var("alpha", ("alpha",), "samples per dimension alpha = n / D", "1"),
            _var(
                "theta", ("theta",), "angle theta between the source and target teachers", "radians"
            ),
        ]
    ),
    _table(
        [
            _var(
                "theory_transferability",
                ("alpha", "theta"),
                "expected transferability T = R_scratch - R_transfer (eq. 7) of the method",
            ),
            _var("theory_scratch_error", ("alpha",), "expected scratch-training error, eq. (10)"),
            _var(
                "theory_transfer_error",
                ("alpha", "theta"),
                "expected error of the transferred model: eq. (12), (14)-(15) or (16) by method",
            ),
        ]
    ),
)

_SCHEMA = {
    f.name: f
    for f in (_LINEAR_PHASE, _RELU_PHASE, _DISCREPANCY, _MECHANISM, _INIT_SCALE, _THEORY_PHASE)
}
FAMILIES = tuple(_SCHEMA)
"""Families with a schema: the experiment families, and ``theory_phase``."""

STORE_VARIABLES = _table(
    [
        _var(
            "done",
            (),
            "the cell's values are complete (the others read back as NaN)",
            "flag",
            kind="b",
        ),
        _var(
            "cell_wall_time",
            (),
            "seconds the worker spent in run_cell (a measurement, not a result)",
            "s",
        ),
    ]
)
"""Variables a sweep's store adds to every family's (per cell, over the cell axes)."""


def family(name: str) -> Family:
    """The schema of family ``name`` (one of :data:`FAMILIES`)."""
    return _SCHEMA[v.choice("family", name, FAMILIES)]


def variables(name: str) -> Mapping[str, Variable]:
    """The data variables of family ``name``'s dataset, by name."""
    return family(name).variables


def coordinates(name: str) -> Mapping[str, Variable]:
    """The coordinates of family ``name``'s dataset, by name."""
    return family(name).coords


# ------------------------------------------------------------------------------- use


def annotate(name: str, ds):
    """Write ``long_name`` and ``units`` from the schema into each documented variable's attrs.

    Variables the schema does not document are left alone; returns ``ds`` (changed in place).
    """
    fam = family(name)
    for var in (*fam.coords.values(), *fam.variables.values()):
        if var.name in ds.variables:
            ds[var.name].attrs.update(var.attrs())
    return ds


def _kind_matches(expected: str, array, *, axis: bool) -> bool:
    kind = np.dtype(array.dtype).kind
    if kind == expected:
        return True
    if kind != "f" or expected not in "ib":
        return False
    values = np.asarray(array)
    if axis:  # a sweep's grid axis holds the config's numbers: integral floats are integers
        return expected == "i" and bool(np.all(values == np.round(values)))
    # a store masks unfinished cells to NaN, which makes integers and flags floats
    return bool(np.isnan(values).any())


def check(name: str, ds) -> None:
    """Raise :class:`SchemaError` unless ``ds`` is a dataset of family ``name``, exactly.

    Every variable (coordinate or data) of ``ds`` must be documented, every documented variable
    present (those ``only_with`` a dim exactly when ``ds`` has it), with the documented dims in
    order and dtype kind. ``ds`` is one cell (``run_cell``'s result) or a whole sweep: the cell
    axes may then lead any variable's dims, and :data:`STORE_VARIABLES` may be present. A store
    masks unfinished cells to NaN, so a float with NaN passes where an int or bool is documented,
    and a grid axis holds the config's numbers, so integral floats pass for an integer axis.

    Raises
    ------
    SchemaError
        Listing every undocumented, missing, unexpected or wrongly dimensioned variable.
    """
    fam = family(name)
    documented = {**fam.coords, **fam.variables}
    if fam.cell_axes:
        documented = {**STORE_VARIABLES, **documented}
    present = set(ds.dims)
    problems = [
        f"undocumented variable {n!r} {tuple(ds[n].dims)}"
        for n in ds.variables
        if n not in documented
    ]
    for var in documented.values():
        wanted = var.only_with is None or var.only_with in present
        if var.name not in ds.variables:
            if wanted and var.name not in STORE_VARIABLES:
                problems.append(f"missing {var.name!r}")
            continue
        if not wanted:
            problems.append(f"{var.name!r} is there without a {var.only_with!r} dim")
            continue
        dims = tuple(ds[var.name].dims)
        cell = tuple(d for d in dims if not (d in fam.cell_axes and d not in var.dims))
        leading = dims[: len(dims) - len(cell)]
        expected = var.expected_dims(present)
        if cell != expected or dims[len(leading) :] != cell:
            problems.append(f"{var.name!r} has dims {dims}, the schema says {expected}")
        axis = var.name in fam.cell_axes and var.name in present
        if not _kind_matches(var.kind, ds[var.name], axis=axis):
            problems.append(
                f"{var.name!r} has dtype {ds[var.name].dtype}, the schema says {KINDS[var.kind]}"
            )
    if problems:
        raise SchemaError(
            f"the {name} dataset does not match featurefate.schema: " + "; ".join(problems)
        )


# ------------------------------------------------------------------------------- reference


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _dims_text(var: Variable) -> str:
    dims = [f"{d}?" if d in var.optional_dims else d for d in var.dims]
    return "(" + ", ".join(dims) + ")" if dims else "scalar"


def _rows(items) -> list[str]:
    rows = ["| name | dims | type | units | meaning |", "| --- | --- | --- | --- | --- |"]
    for var in items:
        meaning = var.meaning
        if var.only_with is not None and var.only_with != var.name:
            meaning += f" (only with the `{var.only_with}` dim)"
        rows.append(
            f"| `{var.name}` | {_dims_text(var)} | {KINDS[var.kind]} | {_cell(var.units)} | "
            f"{_cell(meaning)} |"
        )
    return rows


def reference_markdown() -> str:
    """The reference of every family's variables as Markdown: the text of ``docs/results.md``."""
    lines = [
        "# Result variables",
        "",
        "<!-- Generated by featurefate.schema.reference_markdown(); do not edit by hand. "
        "Rewrite with: python -m featurefate.schema docs/results.md -->",
        "",
        "Every variable of every experiment's result dataset: its dims (one cell's; a sweep's "
        "store puts the cell axes first), dtype, units and meaning, with the paper's equation "
        "numbers. A dim marked `?` exists only with the config named under the family. Errors "
        "are squared errors in the units of the teachers (|beta_t| = 1 by default), "
        "transferabilities differences of them (eq. 7); `1` marks a pure number.",
        "",
        "A sweep's store adds to every family's variables:",
        "",
        *_rows(STORE_VARIABLES.values()),
    ]
    for fam in _SCHEMA.values():
        lines += ["", f"## {fam.name}", "", fam.summary, ""]
        if fam.cell_axes:
            axes = ", ".join(f"`{a}`" for a in fam.cell_axes)
            lines += [f"Cell axes: {axes}.", ""]
        for dim, config in fam.optional.items():
            lines.append(f"- `{dim}?`: only with {config}.")
        for dim, text in fam.bare_dims.items():
            lines.append(f"- `{dim}` (a dim without coordinate): {text}.")
        if fam.optional or fam.bare_dims:
            lines.append("")
        count = len(fam.variables)
        lines += [f"### Coordinates ({len(fam.coords)})", "", *_rows(fam.coords.values())]
        lines += ["", f"### Data variables ({count})", "", *_rows(fam.variables.values())]
    return "\n".join(lines) + "\n"


def _main(argv: list[str]) -> None:
    text = reference_markdown()
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    _main(sys.argv[1:])
