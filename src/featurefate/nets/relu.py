r"""The mean-field two-layer ReLU network of Section 4 on the unit sphere, in JAX.

.. math::

    f(x) = \frac1m \sum_{i=1}^m c_i\, \mathrm{relu}(w_i \cdot x), \qquad |w_i| = 1,

eq. (18). Parameters are a :class:`ReluParams` ``(W, c)`` with ``W`` of shape ``(m, d)`` and
``c`` of shape ``(m,)``; functions act on one network (batch them with :func:`jax.vmap`).

Losses carry no factor 1/2 (docs/theory.md, Conventions):

- population loss against a teacher :math:`f_t = \frac1k \sum_j a_j \mathrm{relu}(u_j \cdot x)`,
  exact through the arc-cosine kernel (:mod:`featurefate.theory.relu`),
  :math:`c^\top K_{mm} c/m^2 - 2 c^\top K_{mk} a/(mk) + a^\top K_{kk} a/k^2`;
- empirical loss on n samples, :math:`\frac1n \sum_s (f(x_s) - y_s)^2`.

Both come with hand-written gradients (:func:`population_value_and_grad`,
:func:`empirical_value_and_grad`) that training uses; the hidden-weight gradients are projected
on the tangent space of the sphere. They are checked in the tests against autodiff of the exact
kernel loss and of a Monte-Carlo loss.

Numerics at zero angle. The kernel is written through :math:`u = \cos\varphi`,
:math:`\kappa(u) = (\sqrt{1 - u^2} + u(\pi - \arccos u))/(2\pi)`, with u clipped to [-1, 1].
Autodiff through ``sqrt`` and ``arccos`` gives NaN at ``u = 1`` (every diagonal entry), although
:math:`\kappa'(u) = (\pi - \arccos u)/(2\pi)` is bounded; :func:`kappa` therefore carries that
derivative as a custom JVP. ``arccos`` itself is evaluated by :func:`arccos` (a polynomial with
a half-angle reduction), which is as accurate as ``jnp.arccos`` (1 ulp) and ten times faster on
CPU: the elementwise kernel of an ``(m, m)`` Gram matrix otherwise costs more than the two
matrix products of a training step.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import numpy as np

from featurefate import _validation as v
from featurefate._jax import jax, jnp

# Taylor coefficients of (arcsin(s) - s) / s^3 in t = s^2: binom(2n, n) / (4^n (2n + 1)), n >= 1.
# Used for s <= 1/2 (t <= 1/4), where 24 terms leave a remainder below 1e-17.
_ASIN_TERMS = tuple(math.comb(2 * n, n) / (4**n * (2 * n + 1)) for n in range(1, 25))


def _arcsin_small(s):
    """arcsin(s) for 0 <= s <= 1/2: s + s^3 g(s^2), g by Horner's rule."""
    t = s * s
    g = jnp.full_like(t, _ASIN_TERMS[-1])
    for coef in _ASIN_TERMS[-2::-1]:
        g = g * t + coef
    return s + s * t * g


@jax.jit
def arccos(u):
    r"""``arccos`` for float64 arrays, accurate to about 1 ulp and fast on CPU.

    With :math:`a = |u|`: :math:`\arccos a = \pi/2 - \arcsin a` for :math:`a \le 1/2`, and
    :math:`\arccos a = 2 \arcsin\sqrt{(1 - a)/2}` above (exact in floating point near
    :math:`a = 1`, where :math:`1 - a` has no cancellation); :math:`\arccos(-a) = \pi - \arccos a`.
    The arcsine of an argument at most 1/2 is its Taylor series (24 terms). Input is clipped to
    [-1, 1].
    """
    u = jnp.clip(u, -1.0, 1.0)
    a = jnp.abs(u)
    big = a > 0.5
    s = jnp.where(big, jnp.sqrt(0.5 * (1.0 - a)), a)
    r = _arcsin_small(s)
    acos_abs = jnp.where(big, 2.0 * r, 0.5 * jnp.pi - r)
    return jnp.where(u < 0.0, jnp.pi - acos_abs, acos_abs)


@jax.jit
def _kappa_parts(u):
    """kappa(u) and kappa'(u) from one arccos, u clipped to [-1, 1]."""
    u = jnp.clip(u, -1.0, 1.0)
    rest = jnp.pi - arccos(u)
    sine = jnp.sqrt(jnp.maximum(1.0 - u * u, 0.0))
    return (sine + u * rest) / (2.0 * jnp.pi), rest / (2.0 * jnp.pi)


@jax.custom_jvp
def kappa(u):
    r"""The arc-cosine kernel of unit vectors against their cosine, eq. (153), with a safe JVP.

    :math:`\kappa(u) = (\sqrt{1 - u^2} + u(\pi - \arccos u))/(2\pi)`, u clipped to [-1, 1];
    its derivative :math:`(\pi - \arccos u)/(2\pi)` is supplied by hand, so gradients are finite
    at ``u = 1`` (zero angle) and ``u = -1``.
    """
    return _kappa_parts(u)[0]


@kappa.defjvp
def _kappa_jvp(primals, tangents):
    (u,), (du,) = primals, tangents
    value, slope = _kappa_parts(u)
    return value, slope * du


@jax.jit
def relu_kernel(W, V):
    r""":math:`E\,\mathrm{relu}(w_i \cdot x)\mathrm{relu}(v_j \cdot x) = |w_i||v_j|\kappa(\cos\varphi_{ij})`.

    JAX version of :func:`featurefate.theory.relu.relu_kernel` for rows of any nonzero norm,
    differentiable everywhere including at zero angle.

    Parameters
    ----------
    W : jax.Array, shape (m, d)
    V : jax.Array, shape (k, d)

    Returns
    -------
    jax.Array, shape (m, k)
    """
    norm_w = jnp.sqrt(jnp.sum(W * W, axis=-1))
    norm_v = jnp.sqrt(jnp.sum(V * V, axis=-1))
    scale = norm_w[:, None] * norm_v[None, :]
    return scale * kappa((W @ V.T) / scale)


class ReluParams(NamedTuple):
    """One network (or a batch, with a leading instance axis).

    Attributes
    ----------
    W : jax.Array, shape (m, d)
        Hidden weights, rows on the unit sphere.
    c : jax.Array, shape (m,)
        Output weights.
    """

    W: jax.Array
    c: jax.Array


def init_params(key, dim, width, *, n_instances=None, output_init=0.0) -> ReluParams:
    r"""Rows uniform on :math:`S^{d-1}`, output weights all ``output_init`` (0: docs/theory.md, ReLU training recipe).

    Parameters
    ----------
    key : jax.Array
        PRNG key.
    dim : int
        d >= 1.
    width : int
        m >= 1.
    n_instances : int, optional
        With it, a batch with leading axis K.
    output_init : float, default 0.0

    Returns
    -------
    ReluParams
    """
    dim = v.integer("dim", dim, low=1)
    width = v.integer("width", width, low=1)
    count = v.integer("n_instances", n_instances, low=1, allow_none=True)
    output_init = float(v.real_array("output_init", output_init))
    shape = (width,) if count is None else (count, width)
    return _init(key, (*shape, dim), output_init)


@partial(jax.jit, static_argnums=(1,))
def _init(key, shape, output_init):
    g = jax.random.normal(key, shape, dtype=jnp.float64)
    W = g / jnp.linalg.norm(g, axis=-1, keepdims=True)
    return ReluParams(W=W, c=jnp.full(shape[:-1], output_init, dtype=jnp.float64))


def forward(params: ReluParams, X):
    r""":math:`f(x_s) = \frac1m \sum_i c_i \mathrm{relu}(w_i \cdot x_s)` for the rows of X, shape (n,)."""
    W, c = params
    return jnp.maximum(X @ W.T, 0.0) @ c / W.shape[0]


def tangent(W, G):
    r"""Project each row of G on the tangent space of the sphere at the row of W: :math:`g - (g \cdot w) w`."""
    return G - jnp.sum(G * W, axis=-1, keepdims=True) * W


def retract(W):
    """Back onto the sphere: every row divided by its norm."""
    return W / jnp.sqrt(jnp.sum(W * W, axis=-1, keepdims=True))


# --------------------------------------------------------------------------------------------
# losses


def population_loss(params: ReluParams, U, a):
    r"""Exact population loss against :math:`f_t = \frac1k \sum_j a_j \mathrm{relu}(u_j \cdot x)`.

    Uses the norm-aware kernel :func:`relu_kernel`, so it is a smooth function of rows of any
    norm and can be differentiated by autodiff (the reference for
    :func:`population_value_and_grad`).
    """
    W, c = params
    m, k = W.shape[0], U.shape[0]
    fm, ft = c / m, a / k
    return (
        fm @ relu_kernel(W, W) @ fm
        - 2.0 * fm @ relu_kernel(W, U) @ ft
        + ft @ relu_kernel(U, U) @ ft
    )


def teacher_norm(U, a):
    r""":math:`|f_t|^2 = a^\top K_{kk} a / k^2` for unit rows U, the loss of a network with c = 0."""
    ft = a / U.shape[0]
    return ft @ _kappa_parts(U @ U.T)[0] @ ft


def population_value_and_grad(params: ReluParams, U, a, teacher_norm2):
    r"""Population loss and its gradient for rows on the unit sphere, by hand.

    For :math:`|w_i| = |u_j| = 1` the Gram matrices are :math:`K = \kappa(W W^\top)` and
    :math:`G = \kappa(W U^\top)`, and

    .. math::

        \mathcal L = \frac{c^\top K c}{m^2} - \frac{2 c^\top G a}{mk} + |f_t|^2, \qquad
        \nabla_c \mathcal L = \frac{2}{m}\Big(\frac{K c}{m} - \frac{G a}{k}\Big),

    .. math::

        \nabla_{w_i} \mathcal L = \frac{2 c_i}{m}\, P_i \Big(\frac1m \sum_j c_j \kappa'(w_i \cdot w_j) w_j
            - \frac1k \sum_j a_j \kappa'(w_i \cdot u_j) u_j\Big),

    with :math:`P_i = I - w_i w_i^\top` the tangent projector (the radial part does not move a
    point on the sphere, and only there does :math:`\kappa(w \cdot v)` differ from the norm-aware
    kernel). Two ``(m, m, d)`` matrix products and one ``arccos`` per Gram entry.

    Parameters
    ----------
    params : ReluParams
        Rows of W on the unit sphere.
    U : jax.Array, shape (k, d)
        Teacher rows on the unit sphere.
    a : jax.Array, shape (k,)
        Teacher output weights.
    teacher_norm2 : scalar
        :math:`|f_t|^2` (:func:`teacher_norm`), the constant of the loss.

    Returns
    -------
    loss : scalar
    grads : ReluParams
        Gradient in c, and the tangent gradient in W.
    """
    W, c = params
    m, k = W.shape[0], U.shape[0]
    K, K_slope = _kappa_parts(W @ W.T)
    G, G_slope = _kappa_parts(W @ U.T)
    fm, ft = c / m, a / k
    Kc, Ga = K @ fm, G @ ft
    loss = fm @ Kc - 2.0 * fm @ Ga + teacher_norm2
    grad_c = 2.0 * (Kc - Ga) / m
    field = (K_slope * fm[None, :]) @ W - (G_slope * ft[None, :]) @ U
    grad_W = tangent(W, (2.0 * fm)[:, None] * field)
    return loss, ReluParams(W=grad_W, c=grad_c)


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def low_harmonics(params: ReluParams):
    r"""The degree-0 and degree-1 Hermite parts of the network's function: its mean and linear part.

    For :math:`x \sim N(0, I_d)` and unit rows, :math:`E\,\mathrm{relu}(w \cdot x) = 1/\sqrt{2\pi}`
    and :math:`E\,\mathrm{relu}(w \cdot x)\, x = w/2`, so

    .. math::

        \mu = E f(x) = \frac{1}{m\sqrt{2\pi}} \sum_i c_i, \qquad
        \beta = E f(x)\, x = \frac{1}{2m} \sum_i c_i w_i,

    and, the Hermite polynomials being orthonormal,
    :math:`|f - f_t|^2 = (\mu - \mu_t)^2 + |\beta - \beta_t|^2 + |\text{rest}|^2` (a teacher
    written the same way). These two parts carry the stiffest modes of the population loss
    (:func:`semi_implicit_gradient`).

    Parameters
    ----------
    params : ReluParams
        One network, rows on the unit sphere.

    Returns
    -------
    mu : scalar
    beta : jax.Array, shape (d,)
    """
    W, c = params
    m = W.shape[0]
    return jnp.sum(c) * _INV_SQRT_2PI / m, W.T @ c / (2.0 * m)


def semi_implicit_gradient(params: ReluParams, grads: ReluParams, lr):
    r"""The gradient for a step that treats the mean and linear part of f implicitly.

    Mean-field gradient descent moves :math:`\theta = (W, c)` by :math:`-h\, m\, g`, with
    g the (tangent) gradient and h = ``lr``. Two collective modes of the population loss are far
    stiffer than the rest: the mean :math:`\mu` of f, with curvature :math:`1/\pi` in mean-field
    time, and its linear part :math:`\beta`, with curvature about :math:`\overline{c^2}/2`, which
    grows as the output weights grow (0.28 to 0.55 measured at paper scale, d = 100, m = 1000,
    k = 100, where the next curvature is 0.02). They cap the stable step of the explicit method
    (h = 8 diverges there) while the features form on a time scale of thousands.

    With J the Jacobian of :math:`(\mu, \beta)` (:func:`low_harmonics`; the W-rows projected on
    the tangent spaces), the Gauss-Newton part of the Hessian along these modes is
    :math:`A = 2 J^\top J`, and a linearly implicit Euler step on it (explicit on the rest),
    :math:`(I + h m A)\,\Delta\theta = -h\, m\, g`, moves by :math:`-h\, m\, \tilde g` with

    .. math::

        \tilde g = (I + 2 h m J^\top J)^{-1} g
                 = g - 2 h m\, J^\top (I + 2 h m J J^\top)^{-1} J g,

    by the Woodbury identity: one :math:`(d + 1) \times (d + 1)` solve and a few
    :math:`O(m d)` and :math:`O(m d^2)` products per step. It is a consistent integrator of the
    same gradient flow (``lr -> 0`` gives g) that is unconditionally stable on the two stiff
    modes.

    Parameters
    ----------
    params : ReluParams
        One network, rows on the unit sphere.
    grads : ReluParams
        Its gradient, the W-part on the tangent spaces (:func:`population_value_and_grad`).
    lr : scalar
        The step h in mean-field time.

    Returns
    -------
    ReluParams
        :math:`\tilde g`, the W-part on the tangent spaces.
    """
    W, c = params
    m, d = W.shape
    alpha = 2.0 * lr * m
    # J g (grads.W is tangent already) and J^T by differentiating low_harmonics itself
    _, vjp = jax.vjp(low_harmonics, params)
    Jg = jax.jvp(low_harmonics, (params,), (grads,))[1]
    # J J^T in closed form, the mean's row first
    cross = jnp.sum(W, axis=0) * _INV_SQRT_2PI / (2.0 * m * m)
    c2 = c * c
    linear = ((W * (1.0 - c2)[:, None]).T @ W + jnp.sum(c2) * jnp.eye(d)) / (4.0 * m * m)
    JJ = jnp.block(
        [[jnp.full((1, 1), 1.0 / (2.0 * jnp.pi * m)), cross[None, :]], [cross[:, None], linear]]
    )
    rhs = jnp.concatenate([Jg[0][None], Jg[1]])
    z = jnp.linalg.solve(jnp.eye(d + 1) + alpha * JJ, rhs)
    (back,) = vjp((z[0], z[1:]))
    return ReluParams(W=grads.W - alpha * tangent(W, back.W), c=grads.c - alpha * back.c)


def empirical_loss(params: ReluParams, X, y):
    r""":math:`\frac1n \sum_s (f(x_s) - y_s)^2` (the reference for :func:`empirical_value_and_grad`)."""
    residual = forward(params, X) - y
    return jnp.mean(residual**2)


def empirical_value_and_grad(params: ReluParams, X, y):
    r"""Empirical loss and its gradient, by hand; the W-gradient projected on the sphere.

    With :math:`Z = X W^\top`, :math:`r = \mathrm{relu}(Z) c / m - y`,

    .. math::

        \nabla_c \mathcal L = \frac{2}{nm} \mathrm{relu}(Z)^\top r, \qquad
        \nabla_{w_i} \mathcal L = \frac{2 c_i}{nm} P_i \sum_s r_s \mathbf 1[z_{si} > 0]\, x_s

    (the ReLU's derivative at exactly 0 is taken as 0; that set has probability zero).

    Parameters
    ----------
    params : ReluParams
    X : jax.Array, shape (n, d)
    y : jax.Array, shape (n,)

    Returns
    -------
    loss : scalar
    grads : ReluParams
    """
    W, c = params
    n, m = X.shape[0], W.shape[0]
    Z = X @ W.T
    features = jnp.maximum(Z, 0.0)
    residual = features @ c / m - y
    loss = jnp.mean(residual**2)
    scaled = 2.0 * residual / (n * m)
    grad_c = features.T @ scaled
    back = jnp.where(Z > 0.0, scaled[:, None], 0.0).T @ X
    grad_W = tangent(W, c[:, None] * back)
    return loss, ReluParams(W=grad_W, c=grad_c)


def sphere_error(W) -> np.ndarray:
    """Largest deviation of a row norm from 1, per network (leading axes kept)."""
    return np.max(np.abs(np.linalg.norm(np.asarray(W), axis=-1) - 1.0), axis=-1)
