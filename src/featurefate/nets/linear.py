r"""Deep linear networks, eq. (9): :math:`f(x) = W_L \cdots W_2 W_1 x` (Section 3).

Parameters are a tuple ``(W_1, ..., W_L)`` of JAX arrays: ``W_l`` is ``(D, D)`` for ``l < L`` and
the last layer ``W_L`` is ``(1, D)``. The end-to-end vector is :math:`w = (W_L \cdots W_1)^\top`
and the hidden features are the product of the first ``L - 1`` layers. Functions act on one
network; batch them over instances with :func:`jax.vmap`.

**Rank-one chains.** A network whose layers are

.. math::

    W_1 = u_2 s^\top, \qquad W_l = a_l\, u_{l+1} u_l^\top \ (1 < l < L), \qquad
    W_L = a_L u_L^\top,

with unit vectors :math:`u_l`, stays such a chain, with the same :math:`u_l`, under gradient
descent and gradient flow: the gradient of layer l is the outer product of the row above it
(along :math:`u_{l+1}`) and the vector below it (along :math:`u_l`, or the loss gradient for
:math:`W_1`). The end-to-end vector is :math:`w = A s` with :math:`A = \prod_l a_l`, and the
:math:`u_l` never enter it. :class:`RankOneParams` stores only :math:`(s, a_2, \dots, a_L)`, so
the same network costs O(D) memory and O(D) per step instead of O(L D^2). With
:math:`|s| = a_2 = \dots = a_L` the conserved quantities (35) are exactly zero: the balanced
limit of assumption (22), and the shape Theorem 3.4 says pretraining converges to.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from featurefate import _validation as v
from featurefate._jax import jax, jnp

INITS = ("random", "balanced", "rank_one")
"""``random``: the authors' Gaussian init; ``balanced``: one satisfying assumption (22) with a
positive margin; ``rank_one``: an exactly balanced rank-one chain (module docstring)."""


class RankOneParams(NamedTuple):
    r"""A rank-one chain network (module docstring), batched over leading axes.

    Attributes
    ----------
    s : jax.Array, shape (..., D)
        The first layer's input-side factor, :math:`W_1 = u_2 s^\top`.
    amplitudes : jax.Array, shape (..., L - 1)
        :math:`a_2, \dots, a_L`.
    """

    s: jax.Array
    amplitudes: jax.Array

    @property
    def depth(self) -> int:
        return self.amplitudes.shape[-1] + 1


def init_rank_one(key, dim, depth, init_scale, *, dtype=jnp.float64) -> RankOneParams:
    r"""A balanced rank-one chain at scale ``init_scale``: :math:`s = \gamma \hat v`, :math:`a_l = \gamma`.

    :math:`\hat v` is uniform on the unit sphere; every layer has Frobenius norm :math:`\gamma`
    and the conserved quantities (35) are zero. One network; use :func:`jax.vmap` over keys.
    """
    v_hat = jax.random.normal(jax.random.split(key, depth)[0], (dim,), dtype)
    s = init_scale * v_hat / jnp.linalg.norm(v_hat)
    return RankOneParams(s=s, amplitudes=jnp.full((depth - 1,), init_scale, dtype))


def rank_one_to_dense(key, params: RankOneParams):
    r"""The dense layers ``(W_1, ..., W_L)`` of one rank-one chain, with the unit :math:`u_l` drawn from ``key``."""
    depth, dim = params.depth, params.s.shape[-1]
    keys = jax.random.split(key, depth)[1:]
    units = [jax.random.normal(k, (dim,), params.s.dtype) for k in keys]
    units = [u / jnp.linalg.norm(u) for u in units]
    layers = [jnp.outer(units[0], params.s)]
    for i in range(1, depth - 1):
        layers.append(params.amplitudes[i - 1] * jnp.outer(units[i], units[i - 1]))
    layers.append(params.amplitudes[-1] * units[-1][None, :])
    return tuple(layers)


def rank_one_end_to_end(params: RankOneParams):
    r""":math:`w = (\prod_l a_l)\, s`, batched."""
    return jnp.prod(params.amplitudes, axis=-1)[..., None] * params.s


def rank_one_feature_scale(params: RankOneParams):
    r"""The one non-zero singular value of the hidden features, :math:`|s| \prod_{1<l<L} |a_l|`, batched."""
    inner = jnp.prod(jnp.abs(params.amplitudes[..., :-1]), axis=-1)
    return jnp.linalg.norm(params.s, axis=-1) * inner


def rank_one_conserved(params: RankOneParams):
    r"""The scalars of the invariants (35) of a rank-one chain, batched, shape (..., L - 1).

    :math:`W_l W_l^\top - W_{l+1}^\top W_{l+1} = (a_l^2 - a_{l+1}^2)\, u_{l+1} u_{l+1}^\top`
    (with :math:`a_1 = |s|`), whose Frobenius norm is the absolute value of the scalar.
    """
    norms2 = jnp.concatenate(
        [jnp.sum(params.s**2, axis=-1, keepdims=True), params.amplitudes**2], axis=-1
    )
    return norms2[..., :-1] - norms2[..., 1:]


def init_params(key, dim, depth, init_scale, *, init="random", dtype=jnp.float64):
    r"""Initialise a depth-``depth`` linear network of width ``dim`` at scale ``init_scale``.

    ``init="random"`` is the authors' choice: hidden layers ``init_scale * N(0, 1) / sqrt(D)``,
    last layer ``init_scale * N(0, 1)``. It does not satisfy assumption (22) of the proofs.

    ``init="balanced"`` satisfies (22) with margin :math:`\lambda = \gamma^2` (:math:`\gamma` =
    ``init_scale``): from the top down, :math:`W_L = \gamma u^\top` with ``u`` a random unit vector
    and, for ``l < L``, :math:`W_l = (W_{l+1}^\top W_{l+1} + \lambda I)^{1/2} Q_l` with
    :math:`Q_l` Haar-random orthogonal, so that the conserved quantities (35) are
    :math:`W_l W_l^\top - W_{l+1}^\top W_{l+1} = \lambda I \succeq \lambda I`.

    Parameters
    ----------
    key : jax.Array
        PRNG key.
    dim : int
        Width D = input dimension, >= 1.
    depth : int
        Number of layers L >= 2.
    init_scale : float
        :math:`\gamma > 0`, small for the feature-learning regime (the paper: 1e-5).
    init : {"random", "balanced", "rank_one"}
        ``rank_one`` materialises :func:`init_rank_one` with random unit :math:`u_l` (the
        simulations keep it factored instead; see :class:`RankOneParams`).
    dtype : jnp.dtype, default float64

    Returns
    -------
    tuple of jax.Array
        ``(W_1, ..., W_L)``.
    """
    dim = v.integer("dim", dim, low=1)
    depth = v.integer("depth", depth, low=2)
    init_scale = float(v.real_array("init_scale", init_scale, low=0.0, low_open=True))
    init = v.choice("init", init, INITS)
    if init == "rank_one":
        return rank_one_to_dense(key, init_rank_one(key, dim, depth, init_scale, dtype=dtype))
    keys = jax.random.split(key, depth)
    if init == "random":
        hidden = [
            init_scale * jax.random.normal(k, (dim, dim), dtype) / np.sqrt(dim) for k in keys[:-1]
        ]
        last = init_scale * jax.random.normal(keys[-1], (1, dim), dtype)
        return (*hidden, last)
    u = jax.random.normal(keys[-1], (dim,), dtype)
    layers = [init_scale * (u / jnp.linalg.norm(u))[None, :]]
    margin = init_scale**2
    for k in keys[:-1]:
        above = layers[0]
        gram = above.T @ above + margin * jnp.eye(dim, dtype=dtype)
        eigval, eigvec = jnp.linalg.eigh(gram)
        root = (eigvec * jnp.sqrt(eigval)) @ eigvec.T
        q, r = jnp.linalg.qr(jax.random.normal(k, (dim, dim), dtype))
        layers.insert(0, root @ (q * jnp.sign(jnp.diag(r))))
    return tuple(layers)


def upstream_rows(params, *, vecmat=None):
    r"""The rows :math:`W_L \cdots W_{l+1}` above every layer, and the end-to-end vector.

    One pass over the weights, top down. Returns ``(ups, w)``: ``ups[i]`` is the row above layer
    ``i`` (0-based; shape ``(1,)`` of ones for the last layer) and ``w`` has shape ``(D,)``.
    ``vecmat(x, layer)`` computes :math:`x^\top W` (default ``x @ layer``), for layers held in
    another form (the training engine's deferred updates).
    """
    if vecmat is None:
        vecmat = jnp.matmul
    depth = len(params)
    ups = [None] * depth
    ups[-1] = jnp.ones((1,), dtype=jax.tree_util.tree_leaves(params[-1])[0].dtype)
    row = vecmat(ups[-1], params[-1])
    for i in range(depth - 2, -1, -1):
        ups[i] = row
        row = vecmat(row, params[i])
    return tuple(ups), row


def end_to_end(params):
    r"""End-to-end vector :math:`w = (W_L \cdots W_1)^\top`, shape ``(D,)``, in O(L D^2)."""
    return upstream_rows(params)[1]


def hidden_features(params):
    r"""Hidden features :math:`\Phi = W_{L-1} \cdots W_1`, shape ``(D, D)``: ``h = Phi @ x``."""
    features = params[0]
    for layer in params[1:-1]:
        features = layer @ features
    return features


def conserved_quantities(params):
    r"""The invariants (35) of gradient flow, :math:`W_l W_l^\top - W_{l+1}^\top W_{l+1}`.

    Returns a ``(L - 1, D, D)`` array; their drift during training measures how far gradient
    descent strays from gradient flow.
    """
    return jnp.stack([w @ w.T - above.T @ above for w, above in itertools.pairwise(params)])
