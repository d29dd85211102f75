r"""Deep linear networks, eq. (9): :math:`f(x) = W_L \cdots W_2 W_1 x` (Section 3).

Parameters are a tuple ``(W_1, ..., W_L)`` of JAX arrays: ``W_l`` is ``(D, D)`` for ``l < L`` and
the last layer ``W_L`` is ``(1, D)``. The end-to-end vector is :math:`w = (W_L \cdots W_1)^\top`
and the hidden features are the product of the first ``L - 1`` layers. Functions act on one
network; batch them over instances with :func:`jax.vmap`.
"""

from __future__ import annotations

import itertools

import numpy as np

from featurefate import _validation as v
from featurefate._jax import jax, jnp

INITS = ("random", "balanced")
"""``random``: the authors' Gaussian init; ``balanced``: one satisfying assumption (22)."""


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
    init : {"random", "balanced"}
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


def upstream_rows(params):
    r"""The rows :math:`W_L \cdots W_{l+1}` above every layer, and the end-to-end vector.

    One pass over the weights, top down. Returns ``(ups, w)``: ``ups[i]`` is the row above layer
    ``i`` (0-based; shape ``(1,)`` of ones for the last layer) and ``w`` has shape ``(D,)``.
    """
    depth = len(params)
    ups = [None] * depth
    ups[-1] = jnp.ones((1,), dtype=params[-1].dtype)
    row = params[-1][0]
    for i in range(depth - 2, -1, -1):
        ups[i] = row
        row = row @ params[i]
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
