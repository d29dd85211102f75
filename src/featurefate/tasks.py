r"""Teachers and data for the deep linear model (Section 3, Assumptions 3.1-3.2; docs/theory.md, Conventions).

A source and a target linear teacher at angle :math:`\theta`,
:math:`\beta_s = |\beta_s| e` and :math:`\beta_t = |\beta_t| (\cos\theta\, e + \sin\theta\, \nu)`
with :math:`e \perp \nu` unit vectors in a uniformly random orientation; inputs
:math:`x \sim N(0, I_D)` and labels :math:`y = \beta \cdot x + \epsilon`,
:math:`\epsilon \sim N(0, \sigma^2)`. Everything is batched over a leading ``instance`` axis and
seeded, so that one seed gives one set of instances on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurefate import _validation as v

SeedLike = int | np.random.SeedSequence | np.random.Generator | None


def _rng(seed: SeedLike) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def teacher_pair(
    dim: int,
    theta: float,
    *,
    source_norm: float = 1.0,
    target_norm: float = 1.0,
    n_instances: int | None = None,
    seed: SeedLike = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Draw source and target teachers at angle ``theta`` in a random orientation.

    .. math::

        \beta_s = |\beta_s|\, e, \qquad
        \beta_t = |\beta_t| (\cos\theta\, e + \sin\theta\, \nu), \qquad e \perp \nu,

    with :math:`(e, \nu)` the first two columns of a Haar-random orthogonal matrix.

    Parameters
    ----------
    dim : int
        Input dimension D >= 2.
    theta : float
        Angle between the teachers, radians in [0, pi].
    source_norm, target_norm : float, default 1.0
        :math:`|\beta_s|`, :math:`|\beta_t|`.
    n_instances : int, optional
        Number of independent pairs K; without it a single pair.
    seed : int, SeedSequence or Generator, optional

    Returns
    -------
    beta_s, beta_t : ndarray, shape (D,) or (K, D)
    """
    dim = v.integer("dim", dim, low=2)
    theta = float(v.real_array("theta", theta, low=0.0, high=np.pi))
    source_norm = float(v.real_array("source_norm", source_norm, low=0.0, low_open=True))
    target_norm = float(v.real_array("target_norm", target_norm, low=0.0, low_open=True))
    k = v.integer("n_instances", n_instances, low=1, allow_none=True)
    gauss = _rng(seed).standard_normal((k or 1, dim, 2))
    basis, upper = np.linalg.qr(gauss)
    basis = basis * np.sign(np.diagonal(upper, axis1=-2, axis2=-1))[:, None, :]
    e, nu = basis[..., 0], basis[..., 1]
    beta_s = source_norm * e
    beta_t = target_norm * (np.cos(theta) * e + np.sin(theta) * nu)
    return (beta_s, beta_t) if k is not None else (beta_s[0], beta_t[0])


def sample_data(
    beta: np.ndarray, n: int, sigma: float, *, seed: SeedLike = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Draw ``n`` samples :math:`x \sim N(0, I_D)`, :math:`y = \beta \cdot x + \epsilon` per teacher.

    Parameters
    ----------
    beta : array-like, shape (..., D)
        One teacher per leading index.
    n : int
        Samples per teacher, >= 1.
    sigma : float
        Label-noise standard deviation, >= 0.
    seed : int, SeedSequence or Generator, optional

    Returns
    -------
    X : ndarray, shape (..., n, D)
    y : ndarray, shape (..., n)
    """
    beta = np.asarray(beta, dtype=np.float64)
    if beta.ndim < 1 or beta.shape[-1] < 1:
        raise ValueError(f"beta must have shape (..., D) with D >= 1; got shape {beta.shape}")
    n = v.integer("n", n, low=1)
    sigma = float(v.real_array("sigma", sigma, low=0.0))
    rng = _rng(seed)
    X = rng.standard_normal((*beta.shape[:-1], n, beta.shape[-1]))
    noise = rng.standard_normal((*beta.shape[:-1], n))
    y = np.einsum("...nd,...d->...n", X, beta) + sigma * noise
    return X, y


def sufficient_statistics(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""The data's sufficient statistics for a linear model, :math:`S = X^\top X / n`, :math:`b = X^\top y / n`.

    The empirical loss :math:`\frac1n |Xw - y|^2 = w^\top S w - 2 b^\top w + \frac1n |y|^2`
    depends on the data only through them, so training costs :math:`O(D^2)` per step whatever n is.

    Parameters
    ----------
    X : array-like, shape (..., n, D)
    y : array-like, shape (..., n)

    Returns
    -------
    S : ndarray, shape (..., D, D)
    b : ndarray, shape (..., D)
    """
    X, y = v.data(X, y)
    n = X.shape[-2]
    S = np.einsum("...nd,...ne->...de", X, X) / n
    b = np.einsum("...nd,...n->...d", X, y) / n
    return S, b


@dataclass(frozen=True)
class LinearInstances:
    """A batch of transfer problems: teachers and one target training set per instance.

    Attributes
    ----------
    beta_s, beta_t : ndarray, shape (K, D)
    X : ndarray, shape (K, n, D)
    y : ndarray, shape (K, n)
    sigma : float
    """

    beta_s: np.ndarray
    beta_t: np.ndarray
    X: np.ndarray
    y: np.ndarray
    sigma: float

    @property
    def dim(self) -> int:
        return self.X.shape[-1]

    @property
    def n(self) -> int:
        return self.X.shape[-2]

    @property
    def alpha(self) -> float:
        return self.n / self.dim


def draw_instances(
    dim: int,
    n: int,
    theta: float,
    sigma: float,
    n_instances: int,
    *,
    source_norm: float = 1.0,
    target_norm: float = 1.0,
    seed: SeedLike = None,
) -> LinearInstances:
    """Draw ``n_instances`` teacher pairs at angle ``theta`` and a target sample of size ``n`` each.

    One seed fixes everything: teachers first, then data, from one generator.
    """
    rng = _rng(seed)
    beta_s, beta_t = teacher_pair(
        dim,
        theta,
        source_norm=source_norm,
        target_norm=target_norm,
        n_instances=n_instances,
        seed=rng,
    )
    X, y = sample_data(beta_t, n, sigma, seed=rng)
    return LinearInstances(beta_s=beta_s, beta_t=beta_t, X=X, y=y, sigma=float(sigma))


# --------------------------------------------------------------------------------------------
# ReLU teachers (Section 4, eqs. 19-20; docs/theory.md, Two-layer ReLU networks)

SOURCE_NORMALISATIONS = ("k", "remaining")
"""How the source teacher is scaled after removing neurons: ``"k"`` keeps the target's 1/k
(the source is the target with the removed terms dropped, so f_t = f_s + removed part);
``"remaining"`` divides by the number of neurons left instead."""


def sphere(shape, dim: int, *, seed: SeedLike = None) -> np.ndarray:
    """Points uniform on the unit sphere :math:`S^{d-1}`, shape ``(*shape, dim)``.

    Normalised Gaussian vectors; every row has norm 1 to rounding.
    """
    dim = v.integer("dim", dim, low=1)
    g = _rng(seed).standard_normal((*tuple(shape), dim))
    return g / np.linalg.norm(g, axis=-1, keepdims=True)


@dataclass(frozen=True)
class ReluTeachers:
    r"""Target and source ReLU teachers sharing their hidden rows, one per instance.

    The target is :math:`f_t(x) = \frac1k \sum_j a_j\, \mathrm{relu}(u_j \cdot x)`; the source
    keeps the same rows with the output weights of the removed neurons set to 0 (and, with
    ``source_normalisation="remaining"``, the others rescaled by ``k / k_s``), eqs. (19)-(20).

    Attributes
    ----------
    W : ndarray, shape (K, k, d)
        Teacher rows :math:`u_j`, on the unit sphere.
    c_target : ndarray, shape (K, k)
        Target output weights :math:`a_j`.
    c_source : ndarray, shape (K, k)
        Source output weights (0 for removed neurons).
    removed : ndarray of bool, shape (K, k)
        The removed neurons.
    rho : float
        Fraction removed (``removed.sum(-1) = round(rho * k)``).
    """

    W: np.ndarray
    c_target: np.ndarray
    c_source: np.ndarray
    removed: np.ndarray
    rho: float

    @property
    def dim(self) -> int:
        return self.W.shape[-1]

    @property
    def width(self) -> int:
        return self.W.shape[-2]


def relu_teachers(
    dim: int,
    width: int,
    rho: float,
    *,
    output_weight: float = 1.0,
    source_normalisation: str = "k",
    n_instances: int | None = None,
    seed: SeedLike = None,
) -> ReluTeachers:
    r"""Draw a target ReLU teacher of ``width`` neurons and its source with a fraction removed.

    The rows :math:`u_j` are uniform on :math:`S^{d-1}`, the output weights all equal
    ``output_weight``, and a uniformly random subset of ``round(rho * width)`` neurons is
    removed from the source (eqs. 19-20).

    Parameters
    ----------
    dim : int
        Input dimension d >= 1.
    width : int
        Number of teacher neurons k >= 1.
    rho : float
        Fraction removed, in [0, 1].
    output_weight : float, default 1.0
        Every :math:`a_j`.
    source_normalisation : {"k", "remaining"}, default "k"
        See :data:`SOURCE_NORMALISATIONS`. ``"remaining"`` needs at least one neuron left.
    n_instances : int, optional
        Number of independent teachers K; without it the leading axis has length 1 and is kept.
    seed : int, SeedSequence or Generator, optional

    Returns
    -------
    ReluTeachers
    """
    dim = v.integer("dim", dim, low=1)
    width = v.integer("width", width, low=1)
    rho = float(v.real_array("rho", rho, low=0.0, high=1.0))
    output_weight = float(v.real_array("output_weight", output_weight))
    source_normalisation = v.choice(
        "source_normalisation", source_normalisation, SOURCE_NORMALISATIONS
    )
    count = v.integer("n_instances", n_instances, low=1, allow_none=True) or 1
    n_removed = round(rho * width)
    if source_normalisation == "remaining" and n_removed == width:
        raise ValueError(
            f"rho must leave at least one source neuron with source_normalisation='remaining'; "
            f"got rho = {rho:g} with width = {width}"
        )
    rng = _rng(seed)
    W = sphere((count, width), dim, seed=rng)
    order = np.argsort(rng.random((count, width)), axis=1)
    removed = np.zeros((count, width), dtype=bool)
    np.put_along_axis(removed, order[:, :n_removed], True, axis=1)
    c_target = np.full((count, width), output_weight)
    scale = width / (width - n_removed) if source_normalisation == "remaining" else 1.0
    c_source = np.where(removed, 0.0, c_target * scale)
    return ReluTeachers(W=W, c_target=c_target, c_source=c_source, removed=removed, rho=rho)


def relu_network_output(X, W, c) -> np.ndarray:
    r""":math:`f(x) = \frac1m \sum_i c_i\, \mathrm{relu}(w_i \cdot x)` at the rows of ``X``.

    Parameters
    ----------
    X : array-like, shape (..., n, d)
    W : array-like, shape (..., m, d)
    c : array-like, shape (..., m)

    Returns
    -------
    ndarray, shape (..., n)
    """
    X, W, c = (np.asarray(a, dtype=np.float64) for a in (X, W, c))
    features = np.maximum(X @ np.swapaxes(W, -1, -2), 0.0)
    return np.einsum("...nm,...m->...n", features, c) / W.shape[-2]


def sample_relu_data(
    W, c, n: int, *, sigma: float = 0.0, seed: SeedLike = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Draw ``n`` samples :math:`x \sim N(0, I_d)`, :math:`y = f(x) + \epsilon` per teacher.

    :math:`f(x) = \frac1k \sum_j c_j\, \mathrm{relu}(w_j \cdot x)`,
    :math:`\epsilon \sim N(0, \sigma^2)` (the paper's ReLU experiments are noiseless).

    Parameters
    ----------
    W : array-like, shape (..., k, d)
    c : array-like, shape (..., k)
    n : int
        Samples per teacher, >= 1.
    sigma : float, default 0
    seed : int, SeedSequence or Generator, optional

    Returns
    -------
    X : ndarray, shape (..., n, d)
    y : ndarray, shape (..., n)
    """
    W, c = np.asarray(W, dtype=np.float64), np.asarray(c, dtype=np.float64)
    if W.ndim < 2 or c.shape != W.shape[:-1]:
        raise ValueError(
            f"W must have shape (..., k, d) and c shape (..., k); got {W.shape} and {c.shape}"
        )
    n = v.integer("n", n, low=1)
    sigma = float(v.real_array("sigma", sigma, low=0.0))
    rng = _rng(seed)
    X = rng.standard_normal((*W.shape[:-2], n, W.shape[-1]))
    y = relu_network_output(X, W, c)
    if sigma > 0.0:
        y = y + sigma * rng.standard_normal(y.shape)
    return X, y
