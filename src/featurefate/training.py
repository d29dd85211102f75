r"""Gradient flow (6) for deep linear networks, integrated on many instances at once.

Losses come from sufficient statistics (docs/theory.md, Deep linear model and training). With :math:`w` the end-to-end vector,

.. math::

    \mathcal L(w) = w^\top S w - 2 b^\top w + c,

which is the empirical loss :math:`\frac1n |Xw - y|^2` (a plain mean, no factor 1/2) for
:math:`S = X^\top X / n`, :math:`b = X^\top y / n`, :math:`c = |y|^2 / n`, and the population loss
:math:`|w - \beta|^2` for :math:`S = I`, :math:`b = \beta`, :math:`c = |\beta|^2`. S is kept as
its eigendecomposition :math:`S = V^\top \mathrm{diag}(\lambda) V` on its range, with
:math:`\min(n, D)` rows (:class:`Statistics`). A step costs :math:`O(L D^2)` whatever n is (the
data enter only through V, :math:`\lambda` and b), and the gradient is taken through the
end-to-end vector, never through the data.

Dense layers (the ``random`` and ``balanced`` inits) train with their first layer's inputs in
S's eigenbasis (:func:`_rotate_dense_in`: S is then diagonal and a step needs no product with
V), and with their rank-one updates deferred (:class:`_Deferred`): a step reads each layer once
from each side and writes none of it; the updates are folded in every :data:`BLOCK` steps. This
is memory-bound work at the machine's bandwidth (``benchmarks/linear_bench.py``).

Rank-one chains (:class:`featurefate.nets.linear.RankOneParams`, ``init="rank_one"``) are
trained by a second engine that takes the same steps in O(D): in the eigenbasis of S only the
first layer's factor and the amplitudes move, and every quantity of the dense step (loss,
gradient norms, step size, stopping rule, semi-implicit direction) is a few sums over D numbers
(:func:`_rank_one_step`). Both engines share the step rule (:func:`_step_size`) and the chunked loop
(:mod:`featurefate._chunked`), and take the same iterates on the same chain (tested).

The semi-implicit step (``method="semi-implicit"``, the default). Gradient flow moves w as
:math:`\dot w = -P \nabla_w \mathcal L` with the tangent kernel :math:`P = J J^\top`,
:math:`J = \partial w / \partial \theta` (:func:`tangent_kernel`), so its modes relax at the
rates :math:`2 \lambda_i P`: a time scale :math:`1 / \lambda_{\min}(S)` for the slowest, while
explicit gradient descent is stable only for steps below :math:`1 / \lambda_{\max}(S)`. It
needs about :math:`\lambda_{\max} / \lambda_{\min}` steps, which diverges at alpha = 1 (n = D):
:math:`10^6` to :math:`10^8` at D = 500. The semi-implicit step treats the Gauss-Newton part of
the curvature implicitly (a linearly implicit Euler step):

.. math::

    \theta_{t+1} = \theta_t - \mathrm{lr}_t\, J^\top \tilde g, \qquad
    \tilde g = (I + 2\, \mathrm{lr}_t\, S P)^{-1} \nabla_w \mathcal L ,

which is :math:`(I + \mathrm{lr}_t J^\top 2 S J)^{-1} \nabla_\theta \mathcal L`: each layer
takes its gradient step with g replaced by :math:`\tilde g`. Every mode is damped by
:math:`1 / (1 + 2\, \mathrm{lr}\, \lambda_i P)` instead of amplified by
:math:`1 - 2\, \mathrm{lr}\, \lambda_i P`, so no step is unstable through S, and once the fast
modes have settled the steps grow far past the explicit limit: at the end they are Gauss-Newton
steps, and the slow modes converge in a few dozen of them at any conditioning. Since every layer
moves along its own gradient factor with the same :math:`\tilde g`, the conserved quantities (35)
change only at second order in the step, as under gradient descent. The kernel is
:math:`P = |u_1|^2 I + Q`, the first layer's isotropic part plus the upper layers' share Q: for a
rank-one chain :math:`Q = \beta s s^\top`, so the system is diagonal plus rank one in S's
eigenbasis and Sherman-Morrison solves it in O(D) (:func:`_rank_one_direction`); for dense
layers conjugate gradients preconditioned by the diagonal part solve it, in a few iterations of
2 (L - 1) matrix-vector products each, since Q is rank one up to O(``init_scale``) terms once
features have formed (:func:`_dense_direction`). ``method="explicit"`` is plain gradient descent.

Step size. By default (``step_size="auto"``) every instance takes, at every step, the step
:math:`\eta / H_t` where :math:`H_t` bounds the largest eigenvalue of the loss Hessian in the
parameters at the current point,

.. math::

    H_t = 2 \lambda_{\max}(S) \sum_l \prod_{k \ne l} \|W_k\|_F^2
        + \|\nabla_w \mathcal L\| \sum_{l < m} \prod_{k \ne l, m} \|W_k\|_F ,

(Gauss-Newton part plus residual part; :func:`curvature_bound`). With :math:`\eta < 2` explicit
descent is stable. The semi-implicit step bounds only the residual part, the one it treats
explicitly: :math:`\mathrm{lr}_t = \eta / (\|\nabla_w \mathcal L\| \sum_{l<m} \prod \|W_k\|_F)`,
which grows without bound as the gradient vanishes. :math:`\eta` sets the accuracy with which
the discrete path follows gradient flow (a time reparametrisation does not move the flow's path,
only how fast it is traversed). The elapsed time :math:`\sum_t \mathrm{lr}_t` is tracked, and can
be capped; it is gradient-flow time while the step resolves the modes that still move (with the
semi-implicit step, not in its final Gauss-Newton steps, where it grows by orders of magnitude). A
fixed float ``step_size`` reproduces plain gradient descent (the authors used 0.01 and 0.1).

Accuracy. Where the path matters (fine-tuning below alpha = 1, whose endpoint depends on the
conserved quantities that a discrete step slowly violates) the step can also be capped so that
no step moves the parameters by more than ``max_move`` (Euclidean norm over all layers):
:math:`\mathrm{lr}_t = \min(\eta / H_t,\ \mathrm{max\_move} / \|\nabla_\theta \mathcal L\|)`
(the semi-implicit step moves less than the explicit one of the same size, so the cap holds for
both). This makes the steps small only while the gradients are large, where the drift is made,
and lets them grow for the slow final convergence. Both methods converge to the flow at first
order in ``max_move`` (tested against the endpoint that the conservation laws fix for a rank-one
chain). Without a cap the semi-implicit path is coarse (the drift of the invariants is then of
order one) but endpoints that do not depend on the path are the same: pretraining and scratch
training land on the endpoints of small-step gradient descent within 1e-6 (tested).

Stopping. An instance stops when its excess loss, :math:`\frac14 g^\top S^+ g` with
:math:`g = \nabla_w \mathcal L` (:func:`excess_from_gradient`: a sum of positive terms, accurate
down to the smallest values, unlike the difference of the loss and its minimum), is within
``tol``; one that reaches ``max_steps`` (or ``max_time``) stops unconverged and is reported as
such. A non-finite or exploding loss raises :class:`TrainingDivergedError`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import numpy as np

from featurefate import _validation as v
from featurefate._chunked import Divergence, Limits, drive, going, step_loop
from featurefate._chunked import TrainingDivergedError as TrainingDivergedError  # public here
from featurefate._jax import jax, jnp
from featurefate.estimators import resolvable, thin_svd
from featurefate.nets.linear import (
    RankOneParams,
    conserved_quantities,
    end_to_end,
    hidden_features,
    rank_one_conserved,
    rank_one_end_to_end,
    rank_one_feature_scale,
    upstream_rows,
)

METHODS = ("semi-implicit", "explicit")
"""How :func:`train` steps the flow (module docstring)."""


class Statistics(NamedTuple):
    r"""Batched quadratic losses :math:`w^\top S w - 2 b^\top w + c` and what training needs of them.

    S is kept as its eigendecomposition on its range, :math:`S = V^\top \mathrm{diag}(\lambda) V`
    with ``min(n, D)`` rows in V, so that :math:`S w` costs :math:`O(\min(n, D) D)`;
    ``V = None`` stands for the identity (the population loss). The rank-one engine works in
    this eigenbasis; the dense engine uses the thin factor :attr:`R`, derived from it.

    Attributes
    ----------
    b : jax.Array, shape (K, D)
    c : jax.Array, shape (K,)
    lam_max : jax.Array, shape (K,)
        Largest eigenvalue of S (the loss curvature in w).
    loss_min : jax.Array, shape (K,)
        :math:`\min_w \mathcal L = c - b^\top S^+ b`.
    V : jax.Array, shape (K, r, D), or None
        Orthonormal eigenvector rows of S spanning its range (None: the identity).
    lam : jax.Array, shape (K, r)
        The eigenvalues of S, largest first.
    """

    b: jax.Array
    c: jax.Array
    lam_max: jax.Array
    loss_min: jax.Array
    V: jax.Array | None
    lam: jax.Array

    @property
    def R(self) -> jax.Array | None:
        r"""The thin factor :math:`R = \mathrm{diag}(\sqrt\lambda) V`, :math:`S = R^\top R` (None: identity)."""
        return None if self.V is None else jnp.sqrt(self.lam)[..., None] * self.V


def empirical_statistics(X, y, *, svd=None):
    r"""Statistics of the empirical loss :math:`\frac1n|Xw - y|^2` for a batch of data sets.

    From the thin SVD :math:`X = U \mathrm{diag}(\sigma) V` (:func:`featurefate.estimators.thin_svd`, or ``svd``
    if already computed): :math:`S = X^\top X / n` has eigenvalues :math:`\sigma^2 / n` and
    eigenvector rows V. Directions with :math:`\sigma` below NumPy's pseudo-inverse cutoff
    (:func:`featurefate.estimators.resolvable`) count as the null space.

    Parameters
    ----------
    X : array-like, shape (K, n, D)
    y : array-like, shape (K, n)
    svd : tuple of arrays, optional
        ``thin_svd(X)``.
    """
    X, y = v.data(X, y, batched=True)
    return _statistics(X, y, svd=svd)


def _statistics(X, y, *, svd=None) -> Statistics:
    """:func:`empirical_statistics` of validated float64 arrays."""
    n = X.shape[1]
    _, sv, Vt = thin_svd(X) if svd is None else svd
    b = np.einsum("knd,kn->kd", X, y) / n
    c = np.sum(y**2, axis=1) / n
    keep = resolvable(sv, X.shape)
    lam = np.where(keep, sv**2 / n, 0.0)
    b_rot = np.einsum("krd,kd->kr", Vt, b)
    loss_min = c - np.sum(np.where(keep, b_rot**2 / np.where(keep, lam, 1.0), 0.0), axis=1)
    return Statistics(
        b=jnp.asarray(b),
        c=jnp.asarray(c),
        lam_max=jnp.asarray(lam[:, 0]),
        loss_min=jnp.asarray(np.maximum(loss_min, 0.0)),
        V=jnp.asarray(Vt),
        lam=jnp.asarray(lam),
    )


def population_statistics(beta):
    r"""Statistics of the population loss :math:`|w - \beta|^2` (label noise dropped: a constant).

    Parameters
    ----------
    beta : array-like, shape (K, D)
    """
    beta = np.asarray(beta, dtype=np.float64)
    k = beta.shape[0]
    return Statistics(
        b=jnp.asarray(beta),
        c=jnp.asarray(np.sum(beta**2, axis=1)),
        lam_max=jnp.ones(k),
        loss_min=jnp.zeros(k),
        V=None,
        lam=jnp.ones(beta.shape),
    )


def _second_moment(R, w):
    """:math:`S w = R^T R w`, or w itself for the identity."""
    return w if R is None else (R @ w) @ R


def quadratic_loss(params, R, b, c):
    r""":math:`w^\top S w - 2 b^\top w + c` for one network, ``w`` its end-to-end vector."""
    w = end_to_end(params)
    return w @ _second_moment(R, w) - 2.0 * (b @ w) + c


def excess_from_gradient(grad_rot, inv_lam):
    r"""The excess loss :math:`\mathcal L(w) - \min \mathcal L`, from the gradient in S's eigenbasis.

    With :math:`g = \nabla_w \mathcal L = 2(S w - b)` and b in the range of S,

    .. math::

        \mathcal L(w) - \min \mathcal L = (w - w_*)^\top S (w - w_*) = \tfrac14 g^\top S^+ g
        = \tfrac14 \sum_i g_i^2 / \lambda_i ,

    a sum of positive terms: unlike the difference of the loss and its minimum (two numbers of
    order :math:`|b|^2 / \lambda`), it keeps its relative accuracy down to the smallest excess,
    which the stopping rule needs where S is ill-conditioned (alpha near 1).

    Parameters
    ----------
    grad_rot : array, shape (..., r)
        :math:`g` in S's eigenbasis.
    inv_lam : array, shape (..., r)
        :math:`1 / \lambda_i`, 0 on the null space.
    """
    return 0.25 * jnp.sum(grad_rot * grad_rot * inv_lam, axis=-1)


def _inverse(lam):
    """:math:`1/\\lambda` on the range, 0 on the null space."""
    positive = lam > 0
    return jnp.where(positive, 1.0 / jnp.where(positive, lam, 1.0), 0.0)


def _curvature_parts(norms2, grad_w_norm, lam_max):
    r"""The Gauss-Newton and the residual part of :math:`H_t` (module docstring), one network."""
    norms = [jnp.sqrt(n2) for n2 in norms2]
    depth = len(norms2)

    def product(values, skip):
        out = jnp.ones_like(values[0])
        for i, value in enumerate(values):
            if i not in skip:
                out = out * value
        return out

    gauss_newton = sum(product(norms2, {i}) for i in range(depth))
    residual = sum(product(norms, {i, j}) for i in range(depth) for j in range(i + 1, depth))
    return 2.0 * lam_max * gauss_newton, grad_w_norm * residual


def curvature_bound(norms2, grad_w_norm, lam_max):
    r"""The bound :math:`H_t` on the parameter-space Hessian (module docstring), one network.

    Parameters
    ----------
    norms2 : sequence of scalars
        Squared Frobenius norms of the layers.
    grad_w_norm : scalar
        :math:`\|\nabla_w \mathcal L\|`.
    lam_max : scalar
        Largest eigenvalue of S.
    """
    gauss_newton, residual = _curvature_parts(norms2, grad_w_norm, lam_max)
    return gauss_newton + residual


class _Deferred(NamedTuple):
    r"""A layer with its latest updates kept aside: :math:`W = W_0 - A^\top B`.

    The dense engine takes rank-one steps :math:`W \leftarrow W - \mathrm{lr}\, u v^\top`; written
    into W at once, every step reads and writes the whole (D, D) layer. Kept aside as rows
    :math:`\mathrm{lr}\, u` of A and :math:`v` of B (``BLOCK`` of them) and folded into
    :math:`W_0` once per block, a step only reads :math:`W_0` (twice: one product on each side)
    and the update costs O(D ``BLOCK``).
    """

    base: jax.Array
    left: jax.Array
    right: jax.Array


BLOCK = 32
"""Steps of the dense engine between folds of the deferred updates (:class:`_Deferred`)."""


def _mv(layer, x):
    """:math:`W x` for a plain or a :class:`_Deferred` layer."""
    if isinstance(layer, _Deferred):
        return layer.base @ x - (layer.right @ x) @ layer.left
    return layer @ x


def _vm(x, layer):
    """:math:`x^\top W` for a plain or a :class:`_Deferred` layer."""
    if isinstance(layer, _Deferred):
        return x @ layer.base - (layer.left @ x) @ layer.right
    return x @ layer


def _upstream(params):
    """:func:`featurefate.nets.linear.upstream_rows` for plain or :class:`_Deferred` layers."""
    return upstream_rows(params, vecmat=_vm)


def _downstream(params, grad_w):
    downs = [grad_w]
    for i in range(1, len(params)):
        downs.append(_mv(params[i - 1], downs[-1]))
    return downs


def layer_gradients(params, grad_w):
    r"""Exact gradients of :math:`\mathcal L(w)` in every layer, as rank-one factors.

    With :math:`w^\top = W_L \cdots W_1` and :math:`g = \nabla_w \mathcal L`,
    :math:`\partial \mathcal L / \partial W_l = u_l v_l^\top` with the upstream row
    :math:`u_l^\top = W_L \cdots W_{l+1}` and the downstream vector
    :math:`v_l = W_{l-1} \cdots W_1 g`. Returns ``(ups, downs, w)`` where ``ups[i]`` and
    ``downs[i]`` are the factors of layer ``i`` (0-based; the last layer's up-factor is 1). One
    matrix-vector product per layer each way: O(L D^2), and the (D, D) gradients are never
    materialised (the update fuses them).
    """
    ups, w = upstream_rows(params)
    return ups, _downstream(params, grad_w), w


def tangent_kernel(params, x):
    r""":math:`P x` for the tangent kernel :math:`P = J J^\top` of the end-to-end vector, one network.

    :math:`J = \partial w / \partial \theta`; with the factors of :func:`layer_gradients`,
    :math:`P = \sum_l |u_l|^2\, \Phi_{l-1}^\top \Phi_{l-1}` where
    :math:`\Phi_{l-1} = W_{l-1} \cdots W_1` (:math:`\Phi_0 = I`): gradient flow moves w as
    :math:`\dot w = -P \nabla_w \mathcal L`. Returns ``(|u_1|^2 x, rest)``, the first layer's
    isotropic term and the others' sum; 2 (L - 1) matrix-vector products.
    """
    ups, _ = upstream_rows(params)
    return (ups[0] @ ups[0]) * x, _kernel_rest(params, ups, x)


def _kernel_rest(params, ups, x):
    """:math:`\\sum_{l > 1} |u_l|^2 \\Phi_{l-1}^\\top \\Phi_{l-1} x` (:func:`tangent_kernel`), Horner-style."""
    depth = len(params)
    phis = [x]
    for layer in params[: depth - 1]:
        phis.append(_mv(layer, phis[-1]))
    acc = (ups[-1] @ ups[-1]) * phis[-1]
    for i in range(depth - 1, 1, -1):
        acc = _vm(acc, params[i - 1]) + (ups[i - 1] @ ups[i - 1]) * phis[i - 1]
    return _vm(acc, params[0])


CG_TOL = 1e-10
"""Relative residual at which the conjugate gradients of :func:`_dense_direction` stop."""
CG_MAX_ITERATIONS = 64


def _dense_direction(params, ups, grad_rot, *, lam, inv_lam, lr):
    r"""The semi-implicit direction :math:`\tilde g = (I + 2\, \mathrm{lr}\, S P)^{-1} g` of a dense network.

    The network's inputs are in S's eigenbasis (:func:`_rotate_dense_in`: S is diagonal there),
    and with :math:`\tilde g = \Lambda^{1/2} y` the system is the symmetric positive definite

    .. math::

        \big(I + 2\, \mathrm{lr}\, |u_1|^2 \Lambda
        + 2\, \mathrm{lr}\, \Lambda^{1/2} Q \Lambda^{1/2}\big)\, y = \Lambda^{-1/2} g,

    :math:`Q = P - |u_1|^2 I` (:func:`tangent_kernel`), solved by conjugate gradients
    preconditioned with its diagonal part (exact when Q = 0) until the preconditioned residual
    falls to :data:`CG_TOL` of the right-hand side's (at most :data:`CG_MAX_ITERATIONS`). Q is
    the upper layers' share of the kernel: rank one for a rank-one chain (one iteration is then
    exact, as Sherman-Morrison) and rank one up to terms of order ``init_scale`` for a network
    trained from small initialisation (Theorem 3.4), so a few iterations suffice; each costs
    2 (L - 1) matrix-vector products with the layers.
    """
    root = jnp.sqrt(lam)
    diag = 1.0 + 2.0 * lr * (ups[0] @ ups[0]) * lam

    def operator(y):
        return diag * y + (2.0 * lr) * root * _kernel_rest(params, ups, root * y)

    def ratio(num, den):
        return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)

    rhs = grad_rot * jnp.sqrt(inv_lam)
    y = rhs / diag
    residual = rhs - operator(y)
    precond = residual / diag
    rho = jnp.sum(residual * precond)
    target = CG_TOL**2 * jnp.sum(rhs * rhs / diag)

    def going(carry):
        count, _, _, _, rho = carry
        return (count < CG_MAX_ITERATIONS) & (rho > target)

    def iteration(carry):
        count, y, residual, direction, rho = carry
        image = operator(direction)
        step = ratio(rho, jnp.sum(direction * image))
        y = y + step * direction
        residual = residual - step * image
        precond = residual / diag
        rho_next = jnp.sum(residual * precond)
        return count + 1, y, residual, precond + ratio(rho_next, rho) * direction, rho_next

    _, y, _, _, _ = jax.lax.while_loop(going, iteration, (0, y, residual, precond, rho))
    return root * y


class StepRule(NamedTuple):
    """The numbers of the step rule, traced (one compilation serves every value).

    Which of them count is static: ``fixed`` (``lr``), ``capped`` (``max_move``) and
    ``semi_implicit`` are compile-time flags of the chunk functions.
    """

    eta: float
    lr: float
    tol: float
    max_move: float


_CHUNK_STATIC = ("fixed", "capped", "semi_implicit")


def _step_size(excess, active, *, norms2, grad_w_norm, lam_max, grad_norm, rule, fixed, capped,
               semi_implicit):  # fmt: skip
    r"""The step rule of both engines (module docstring): ``(lr, still_active)`` of one network.

    ``grad_norm`` is a callable giving :math:`\|\nabla_\theta \mathcal L\|` over all layers,
    evaluated only when ``max_move`` caps the step. An instance whose excess loss is within
    ``tol`` stops (``lr = 0``). The semi-implicit step bounds only the residual part of
    :math:`H_t`: the Gauss-Newton part is what it treats implicitly.
    """
    if fixed:
        lr = jnp.asarray(rule.lr, dtype=excess.dtype)
    else:
        gauss_newton, residual = _curvature_parts(norms2, grad_w_norm, lam_max)
        bound = residual if semi_implicit else gauss_newton + residual
        lr = rule.eta / bound
        if capped:
            lr = jnp.minimum(lr, rule.max_move / grad_norm())
    active = active & (excess > rule.tol)
    return jnp.where(active, lr, 0.0), active


def _one_step(params, norms2, ups, w, slot, lam, inv_lam, b_rot, lam_max, loss_min, active, rule,
              *, fixed, capped, semi_implicit):  # fmt: skip
    r"""One step of one dense network, its inputs in S's eigenbasis; frozen where ``active`` is
    False.

    Explicit: :math:`W_l \leftarrow W_l - \mathrm{lr}\, u_l v_l^\top` with the factors of
    :func:`layer_gradients`. Semi-implicit: the same with g replaced by
    :func:`_dense_direction`. The layers are :class:`_Deferred`: the update goes into row
    ``slot`` of their deferred factors, so that a step reads each layer twice (the downstream
    and the upstream products) and writes none of it. ``ups`` and ``w`` (the forward pass of
    ``params``) come in with the parameters and the new ones go out with the updated
    parameters. The squared layer norms are carried along and updated in closed form,
    :math:`\|W - \eta u v^\top\|^2 = \|W\|^2 - 2\eta\, u^\top W v + \eta^2 |u|^2 |v|^2`,
    so the step size costs no extra pass either.
    """
    depth = len(params)
    grad_rot = 2.0 * (lam * w - b_rot)
    excess = excess_from_gradient(grad_rot, inv_lam)
    downs = _downstream(params, grad_rot)
    lr, active = _step_size(
        excess, active, norms2=norms2, grad_w_norm=jnp.sqrt(jnp.sum(grad_rot * grad_rot)),
        lam_max=lam_max,
        grad_norm=lambda: jnp.sqrt(sum((u @ u) * (d @ d) for u, d in zip(ups, downs, strict=True))),
        rule=rule, fixed=fixed, capped=capped, semi_implicit=semi_implicit,
    )  # fmt: skip
    if semi_implicit:
        direction = _dense_direction(params, ups, grad_rot, lam=lam, inv_lam=inv_lam, lr=lr)
        downs = _downstream(params, direction)
    # u_l^T W_l v_l: the row just below layer l, dotted with its down-factor
    rows_below = [w, *ups[: depth - 1]]
    new_params, new_norms2 = [], []
    for i in range(depth):
        up, down, layer = ups[i], downs[i], params[i]
        cross = rows_below[i] @ down
        new_norms2.append(norms2[i] - 2.0 * lr * cross + lr**2 * (up @ up) * (down @ down))
        new_params.append(
            _Deferred(
                layer.base,
                layer.left.at[slot].set(lr * up),
                layer.right.at[slot].set(down),
            )
        )
    new_ups, new_w = _upstream(new_params)
    return tuple(new_params), tuple(new_norms2), new_ups, new_w, lr, loss_min + excess, active


def _eigen_constants(stats):
    """``(V, lam, 1/lam, b in the eigenbasis)`` of a batch of statistics."""
    b_rot = stats.b if stats.V is None else jnp.einsum("krd,kd->kr", stats.V, stats.b)
    return stats.V, stats.lam, _inverse(stats.lam), b_rot


def _no_updates(layer):
    """The deferred factors ``(A, B)`` of a batched layer with no update aside: zeros."""
    k, rows, cols = layer.shape
    return jnp.zeros((k, BLOCK, rows), layer.dtype), jnp.zeros((k, BLOCK, cols), layer.dtype)


def _fold(layer):
    """:math:`W_0 - A^\top B` of a batched :class:`_Deferred` layer, as a plain layer."""
    return layer.base - jnp.einsum("kjr,kjc->krc", layer.left, layer.right)


@partial(jax.jit, static_argnames=_CHUNK_STATIC)
def _dense_chunk(params, counters, limits, *, stats, null_norm2, rule, fixed, capped,
                 semi_implicit):  # fmt: skip
    """Up to ``limits.length`` steps of :func:`_one_step` on a batch of dense networks
    (:func:`featurefate._chunked.step_loop`).

    In blocks of :data:`BLOCK` steps: within a block the layers are :class:`_Deferred`, their
    bases constant (so never copied); between blocks the deferred updates are folded in.
    ``params`` and ``stats`` are in S's eigenbasis (:func:`_rotate_dense_in`, ``stats.V`` None);
    ``null_norm2`` is added to the first layer's squared norm: the part of it that
    :func:`_rotate_dense_in` set aside (zeros where nothing was).
    """
    if stats.V is not None:
        raise ValueError("_dense_chunk takes statistics in S's eigenbasis (_rotate_dense_in)")
    _, lam, inv_lam, b_rot = _eigen_constants(stats)  # derived once per chunk
    one = jax.vmap(
        partial(_one_step, rule=rule, fixed=fixed, capped=capped, semi_implicit=semi_implicit),
        in_axes=(0, 0, 0, 0, None, 0, 0, 0, 0, 0, 0),
    )
    constants = (lam, inv_lam, b_rot, stats.lam_max, stats.loss_min)

    def block(carry):
        bases, norms2, ups, w, counters, _, count = carry

        def step(state, can_go, steps):
            factors, norms2, ups, w, slot = state
            layers = tuple(_Deferred(base, *f) for base, f in zip(bases, factors, strict=True))
            layers, norms2, ups, w, lr, loss, moved = one(
                layers, norms2, ups, w, slot, *constants, can_go
            )
            factors = tuple((layer.left, layer.right) for layer in layers)
            return (factors, norms2, ups, w, slot + 1), lr, loss, moved

        factors = tuple(_no_updates(base) for base in bases)
        state = (factors, norms2, ups, w, jnp.int32(0))
        in_block = limits._replace(length=jnp.minimum(BLOCK, limits.length - count))
        state, counters, loss = step_loop(step, state, counters, in_block)
        factors, norms2, ups, w, slot = state
        bases = tuple(_fold(_Deferred(base, *f)) for base, f in zip(bases, factors, strict=True))
        return bases, norms2, ups, w, counters, loss, count + slot

    def more(carry):
        *_, counters, _, count = carry
        return (count < limits.length) & jnp.any(going(counters, limits))

    # exact norms at the start of every chunk; tracked in closed form within it
    norms2 = tuple(jnp.sum(layer**2, axis=(-2, -1)) for layer in params)
    norms2 = (norms2[0] + null_norm2, *norms2[1:])
    ups, w = jax.vmap(upstream_rows)(params)
    loss = jnp.full(counters.active.shape, jnp.inf)
    carry = (tuple(params), norms2, ups, w, counters, loss, 0)
    params, _, _, _, counters, loss, _ = jax.lax.while_loop(more, block, carry)
    return params, counters, loss


def _rotate_dense_in(params, stats: Statistics):
    r"""Dense networks and their losses with the first layer's inputs in S's eigenbasis.

    The gradient of the first layer is :math:`u_1 g^\top` with g in the range of S, so only
    :math:`W_1 V^\top` (r columns) moves; its part on the null space of S is constant and
    enters only through the layer's norm, returned as ``null_norm2``. In these coordinates S is
    diagonal and the dense step needs no product with V: it runs on
    ``(params_rot, stats_rot, null_norm2)``. Population losses (``V = None``) are returned as
    they are.
    """
    k = stats.b.shape[0]
    if stats.V is None:
        return params, stats, jnp.zeros(k)
    first = jnp.einsum("khd,krd->khr", params[0], stats.V)
    null_norm2 = jnp.maximum(
        jnp.sum(params[0] ** 2, axis=(1, 2)) - jnp.sum(first**2, axis=(1, 2)), 0.0
    )
    _, _, _, b_rot = _eigen_constants(stats)
    stats_rot = stats._replace(b=b_rot, V=None)
    return (first, *params[1:]), stats_rot, null_norm2


def _rotate_dense_out(params_rot, start_rot, start, stats: Statistics):
    """The dense networks in the input coordinates again (:func:`_rotate_dense_in`).

    The first layer gets the change of its rotated part, rotated back:
    :math:`W_1 + (W_1' - W_1) V`, its null-space part untouched.
    """
    if stats.V is None:
        return params_rot
    first = start[0] + jnp.einsum("khr,krd->khd", params_rot[0] - start_rot[0], stats.V)
    return (first, *params_rot[1:])


def _others(amplitudes):
    """For each amplitude, the product of all the others (no division: exact at zero)."""
    count = amplitudes.shape[0]
    return jnp.stack(
        [jnp.prod(amplitudes[:i]) * jnp.prod(amplitudes[i + 1 :]) for i in range(count)]
    )


def _rank_one_gradient(z, amplitudes, lam, b_rot):
    r""":math:`g = \nabla_w \mathcal L = 2 (A \Lambda z - b_V)` of a rank-one chain, in S's eigenbasis."""
    return 2.0 * (jnp.prod(amplitudes) * lam * z - b_rot)


def _rank_one_direction(grad_rot, z, *, lam, gain, others, lr):
    r"""The semi-implicit direction :math:`(I + 2\, \mathrm{lr}\, S P)^{-1} g` of a rank-one chain; O(D).

    The chain's tangent kernel is :math:`P = A^2 I + \beta s s^\top` with
    :math:`\beta = \sum_l (A / a_l)^2` (:func:`tangent_kernel`), so in S's eigenbasis the
    system is diagonal plus rank one; by Sherman-Morrison, with
    :math:`d_i = 1 / (1 + 2\, \mathrm{lr}\, A^2 \lambda_i)`,

    .. math::

        s^\top \tilde g = \frac{\sum_i d_i z_i g_i}{1 + 2\, \mathrm{lr}\, \beta \sum_i d_i \lambda_i z_i^2},
        \qquad
        \tilde g = d \odot \big(g - 2\, \mathrm{lr}\, \beta\, (s^\top \tilde g)\, \Lambda z\big).

    Returns :math:`\tilde g` and :math:`s^\top \tilde g`.
    """
    inv = 1.0 / (1.0 + (2.0 * lr * gain * gain) * lam)
    lam_z = lam * z
    coupling = 2.0 * lr * jnp.sum(others * others)
    s_dot = jnp.sum(z * inv * grad_rot) / (1.0 + coupling * jnp.sum(z * inv * lam_z))
    return inv * (grad_rot - (coupling * s_dot) * lam_z), s_dot


def _rank_one_step(z, amplitudes, perp2, lam, inv_lam, b_rot, lam_max, loss_min, active, rule,
                   *, fixed, capped, semi_implicit):  # fmt: skip
    r"""One step of one rank-one chain, in the eigenbasis of S; O(D).

    The state is :math:`z = V s` (the part of the first layer's factor in S's range; the rest,
    of squared norm ``perp2``, never moves: the loss gradient lies in the range) and the
    amplitudes. With :math:`A = \prod_l a_l` and :math:`g = \nabla_w \mathcal L` (in the
    eigenbasis, :math:`g_V = 2(A \Lambda z - b_V)`), the layer gradients of
    :func:`layer_gradients` reduce to :math:`\partial_s = A g` and
    :math:`\partial_{a_l} = (A / a_l)\, s^\top g`, and every quantity of the dense step
    (loss, step size, cap, stopping rule, semi-implicit direction) is the same number: the
    iterates are those of the dense network.
    """
    gain = jnp.prod(amplitudes)
    others = _others(amplitudes)
    # sums, not dot products: under vmap a dot is a library call per instance, a sum fuses
    grad_rot = _rank_one_gradient(z, amplitudes, lam, b_rot)
    excess = excess_from_gradient(grad_rot, inv_lam)
    grad_w_norm = jnp.sqrt(jnp.sum(grad_rot * grad_rot))
    s_dot_g = jnp.sum(z * grad_rot)
    norms2 = [jnp.sum(z * z) + perp2, *(amplitudes[i] ** 2 for i in range(amplitudes.shape[0]))]
    lr, active = _step_size(
        excess, active, norms2=norms2, grad_w_norm=grad_w_norm, lam_max=lam_max,
        grad_norm=lambda: jnp.sqrt((gain * grad_w_norm) ** 2 + jnp.sum((others * s_dot_g) ** 2)),
        rule=rule, fixed=fixed, capped=capped, semi_implicit=semi_implicit,
    )  # fmt: skip
    if semi_implicit:
        grad_rot, s_dot_g = _rank_one_direction(
            grad_rot, z, lam=lam, gain=gain, others=others, lr=lr
        )
    new_z = z - (lr * gain) * grad_rot
    return new_z, amplitudes - lr * others * s_dot_g, lr, loss_min + excess, active


@partial(jax.jit, static_argnames=_CHUNK_STATIC)
def _rank_one_chunk(state, counters, limits, *, constants, rule, fixed, capped, semi_implicit):
    """Up to ``limits.length`` steps of :func:`_rank_one_step` on a batch; the twin of
    :func:`_dense_chunk`."""
    one = jax.vmap(
        partial(_rank_one_step, rule=rule, fixed=fixed, capped=capped, semi_implicit=semi_implicit)
    )

    def step(state, can_go, steps):
        z, amplitudes, lr, loss, moved = one(*state, *constants, can_go)
        return (z, amplitudes), lr, loss, moved

    return step_loop(step, state, counters, limits)


@jax.jit
def _batched_excess(params, stats):
    V, lam, inv_lam, b_rot = _eigen_constants(stats)
    w = jax.vmap(end_to_end)(params)
    grad_rot = 2.0 * (lam * (w if V is None else jnp.einsum("krd,kd->kr", V, w)) - b_rot)
    return excess_from_gradient(grad_rot, inv_lam)


@dataclass(frozen=True)
class TrainResult:
    """Trained parameters and per-instance diagnostics (all arrays over instances).

    Attributes
    ----------
    params : tuple of jax.Array or RankOneParams
        Batched ``(W_1, ..., W_L)``, or the factors of rank-one chains.
    steps : ndarray of int
        Gradient steps taken.
    converged : ndarray of bool
        Loss within ``tol`` of its minimum; False for instances stopped by a limit.
    excess_loss : ndarray
        Final loss minus its minimum (:func:`excess_from_gradient`).
    time : ndarray
        Elapsed gradient-flow time :math:`\\sum_t \\mathrm{lr}_t`.
    drift : ndarray
        Largest Frobenius-norm change of the conserved quantities (35) during training.
    """

    params: tuple
    steps: np.ndarray
    converged: np.ndarray
    excess_loss: np.ndarray
    time: np.ndarray
    drift: np.ndarray

    @property
    def w(self) -> np.ndarray:
        """End-to-end vectors, shape (K, D)."""
        return end_to_end_vectors(self.params)


def train(
    params,
    stats: Statistics,
    *,
    step_size="auto",
    eta=0.5,
    tol=1e-10,
    max_steps=20_000,
    max_time=None,
    check_every=200,
    max_move=None,
    progress=None,
    method="semi-implicit",
) -> TrainResult:
    r"""Integrate gradient flow (6) on a batch of networks until each converges or hits a limit.

    Parameters
    ----------
    params : tuple of jax.Array or RankOneParams
        Batched initial parameters ``(W_1, ..., W_L)``, leading axis K; or rank-one chains
        (:class:`featurefate.nets.linear.RankOneParams`), trained by the O(D)-per-step engine of
        :func:`_rank_one_step` (the same iterates as their dense layers; the returned
        ``drift`` is then the largest change of the scalars of :func:`rank_one_conserved`).
    stats : Statistics
        The loss of each instance.
    step_size : "auto" or float
        ``"auto"``: the curvature-adaptive step (module docstring); a float: that constant step.
    eta : float, default 0.5
        Fraction of the stability limit used by ``"auto"``, in (0, 2).
    tol : float, default 1e-10
        Stop an instance when its loss is within ``tol`` of its minimum (the excess loss of
        :func:`excess_from_gradient`).
    max_steps : int, default 20000
    max_time : float or array-like of shape (K,), optional
        Cap on gradient-flow time per instance (one for all, or one each: training in segments
        up to successive times, :func:`train_checkpoints`). The step that crosses it is taken
        whole, so an instance stops at most one step past its cap.
    check_every : int, default 200
        Steps per compiled chunk between divergence checks and progress updates.
    max_move : float, optional
        Cap on the parameter displacement of one step (``"auto"`` only; module docstring).
    progress : callable, optional
        Called as ``progress(steps_done_max, max_steps)`` after each chunk.
    method : {"semi-implicit", "explicit"}, default "semi-implicit"
        ``"semi-implicit"``: the linearly implicit step of the module docstring, whose step is
        not limited by the smallest eigenvalue of S; ``"explicit"``: plain gradient descent.

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingDivergedError
        If a loss becomes non-finite or grows a thousandfold.
    """
    plan = _plan(
        count=stats.b.shape[0], step_size=step_size, eta=eta, tol=tol, max_steps=max_steps,
        max_time=max_time, check_every=check_every, max_move=max_move, method=method,
    )  # fmt: skip
    return _train(params, stats, plan=plan, progress=progress)


@dataclass(frozen=True)
class _Plan:
    """The validated options of :func:`train`, as the engines take them.

    ``rule`` holds the traced numbers of the step rule; ``fixed``, ``capped`` and
    ``semi_implicit`` are the compile-time flags of the chunk functions; ``knob`` names the step
    setting in the divergence message.
    """

    rule: StepRule
    fixed: bool
    capped: bool
    semi_implicit: bool
    tol: float
    limits: Limits
    knob: str


def _plan(*, count, step_size, eta, tol, max_steps, max_time, check_every, max_move, method):
    """Validate :func:`train`'s options (the public boundary) into a :class:`_Plan`."""
    semi_implicit = v.choice("method", method, METHODS) == "semi-implicit"
    if isinstance(step_size, str):
        v.choice("step_size", step_size, ("auto",))
        fixed_lr = None
        eta = float(v.real_array("eta", eta, low=0.0, high=2.0, low_open=True, high_open=True))
    else:
        fixed_lr = float(v.real_array("step_size", step_size, low=0.0, low_open=True))
    tol = float(v.real_array("tol", tol, low=0.0))
    max_steps = v.integer("max_steps", max_steps, low=1)
    length = v.integer("check_every", check_every, low=1)
    if max_move is not None:
        max_move = float(v.real_array("max_move", max_move, low=0.0, low_open=True))
    rule = StepRule(
        *(jnp.asarray(x, dtype=jnp.float64) for x in (eta, fixed_lr or 0.0, tol, max_move or 0.0))
    )
    if max_time is None:
        max_time = np.inf
    else:
        max_time = v.real_array("max_time", max_time, low=0.0)
        if max_time.ndim:
            if max_time.shape != (count,):
                raise ValueError(
                    f"max_time must be a number or one per instance, shape ({count},); "
                    f"got shape {max_time.shape}"
                )
            max_time = jnp.asarray(max_time)
        else:
            max_time = float(max_time)
    return _Plan(
        rule=rule,
        fixed=fixed_lr is not None,
        capped=fixed_lr is None and max_move is not None,
        semi_implicit=semi_implicit,
        tol=tol,
        limits=Limits(max_steps=max_steps, max_time=max_time, length=length),
        knob=f"step_size = {fixed_lr:g}" if fixed_lr is not None else f"eta = {eta:g}",
    )


def _train(params, stats: Statistics, *, plan: _Plan, progress=None, stage="training"):
    """:func:`train` on validated options; ``stage`` names the run in the divergence error."""
    flags = {"fixed": plan.fixed, "capped": plan.capped, "semi_implicit": plan.semi_implicit}
    rank_one = isinstance(params, RankOneParams)
    if rank_one:
        state, s_perp, constants = _rotate_in(params, stats)
        excess_start = np.asarray(_rank_one_batched_excess(state, constants))
        chunk = partial(_rank_one_chunk, constants=constants, rule=plan.rule, **flags)
    else:
        state, stats_rot, null_norm2 = _rotate_dense_in(params, stats)
        start_rot = state
        excess_start = np.asarray(_batched_excess(params, stats))
        chunk = partial(
            _dense_chunk, stats=stats_rot, null_norm2=null_norm2, rule=plan.rule, **flags
        )
    outcome = drive(
        chunk,
        state,
        count=stats.b.shape[0],
        limits=plan.limits,
        divergence=Divergence(reference=np.asarray(stats.loss_min) + excess_start, knob=plan.knob),
        stage=stage,
        progress=progress,
    )
    if rank_one:
        excess = np.asarray(_rank_one_batched_excess(outcome.state, constants))
        new_params = _rotate_out(outcome.state, s_perp, stats)
    else:
        new_params = _rotate_dense_out(outcome.state, start_rot, params, stats)
        excess = np.asarray(_batched_excess(new_params, stats))
    return TrainResult(
        params=new_params,
        steps=outcome.steps,
        converged=excess <= plan.tol,
        excess_loss=excess,
        time=outcome.time,
        drift=conserved_drift(params, new_params),
    )


def conserved_drift(start, end) -> np.ndarray:
    r"""Largest change of the conserved quantities (35) from ``start`` to ``end``, per instance.

    Dense networks: the largest Frobenius norm over l of the change of
    :math:`W_l W_l^\top - W_{l+1}^\top W_{l+1}`; rank-one chains: the largest absolute change
    of the scalars of :func:`~featurefate.nets.linear.rank_one_conserved`. Shape (K,).
    """
    if isinstance(start, RankOneParams):
        change = rank_one_conserved(end) - rank_one_conserved(start)
        return np.max(np.abs(np.asarray(change)), axis=1)
    change = jax.vmap(conserved_quantities)(end) - jax.vmap(conserved_quantities)(start)
    return np.asarray(jnp.max(jnp.sqrt(jnp.sum(change**2, axis=(-2, -1))), axis=1))


def train_checkpoints(params, stats: Statistics, times, *, tol=1e-10, max_steps=20_000, **kwargs):
    r"""Train through successive gradient-flow times; yield the networks at each one.

    The same gradient descent as :func:`train`, run in segments: segment j continues every
    instance from where segment j - 1 left it, capped at flow time ``times[j]`` (each instance
    stops at the first step that reaches it, so its recorded time can pass ``times[j]`` by up
    to one step; an instance that has converged stays where it is). Nothing is recompiled
    between segments.

    Parameters
    ----------
    params, stats :
        As in :func:`train`.
    times : array-like, shape (J,)
        Non-decreasing gradient-flow times :math:`\ge 0`; a time 0 yields the initialisation.
    tol : float, default 1e-10
        As in :func:`train`.
    max_steps : int, default 20000
        Step budget of the whole run (not of each segment).
    **kwargs :
        The other options of :func:`train` (``step_size``, ``eta``, ...); not
        ``max_time``.

    Returns
    -------
    iterator of TrainResult
        One per time, with ``steps``, ``time`` and ``drift`` counted from the start of the
        whole run; ``converged`` is False for an instance that has not yet reached ``tol``.
    """
    times = v.real_array("times", times, low=0.0)
    if times.ndim != 1 or np.any(np.diff(times) < 0):
        raise ValueError(f"times must be a non-decreasing 1-d sequence; got {times!r}")
    if "max_time" in kwargs:
        raise ValueError("max_time is set by times in train_checkpoints; do not pass it")
    progress = kwargs.pop("progress", None)
    options = _train_defaults()
    unknown = set(kwargs) - set(options)
    if unknown:
        raise TypeError(f"train_checkpoints got unexpected options {sorted(unknown)}")
    options.update(kwargs)
    plan = _plan(count=stats.b.shape[0], tol=tol, max_steps=max_steps, max_time=None, **options)
    # validated here, before the first segment: the generator trusts its inputs
    return _segments(params, stats, times=times, plan=plan, progress=progress)


def _train_defaults() -> dict:
    """The defaults of :func:`train`'s step options, which :func:`train_checkpoints` passes on."""
    own = ("tol", "max_steps", "max_time", "progress")
    return {
        name: parameter.default
        for name, parameter in inspect.signature(train).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in own
    }


def _segments(params, stats, *, times, plan: _Plan, progress):
    """The generator of :func:`train_checkpoints`."""
    k = stats.b.shape[0]
    max_steps = plan.limits.max_steps
    start, current = params, params
    steps, elapsed = np.zeros(k, dtype=np.int64), np.zeros(k)
    for target in times:
        budget = max_steps - int(steps.max())
        remaining = np.maximum(target - elapsed, 0.0)
        if budget > 0 and np.any(remaining > 0):
            limits = plan.limits._replace(max_steps=budget, max_time=jnp.asarray(remaining))
            segment = replace(plan, limits=limits)
            result = _train(current, stats, plan=segment, progress=progress)
            current, steps, elapsed = result.params, steps + result.steps, elapsed + result.time
            excess, converged = result.excess_loss, result.converged
        else:
            excess = _excess_loss(current, stats)
            converged = excess <= plan.tol
        yield TrainResult(
            params=current,
            steps=steps.copy(),
            converged=converged,
            excess_loss=excess,
            time=elapsed.copy(),
            drift=conserved_drift(start, current),
        )


def _excess_loss(params, stats: Statistics) -> np.ndarray:
    """The excess loss of :func:`train`'s stopping rule, without training."""
    if isinstance(params, RankOneParams):
        state, _, constants = _rotate_in(params, stats)
        return np.asarray(_rank_one_batched_excess(state, constants))
    return np.asarray(_batched_excess(params, stats))


def _rotate_in(params: RankOneParams, stats: Statistics):
    """Rank-one state in S's eigenbasis: ``(z, amplitudes)``, the fixed rest of s, the constants.

    The eigenbasis is padded to D directions with zero rows (eigenvalue 0, no data along them,
    so their coordinate stays 0): the compiled step then has one shape for every n. The
    rotations are NumPy (no compilation per shape).
    """
    s = np.asarray(params.s)
    if stats.V is None:
        z, s_perp, b_rot = s, np.zeros_like(s), np.asarray(stats.b)
        lam = np.asarray(stats.lam)
    else:
        V = np.asarray(stats.V)
        z = np.einsum("krd,kd->kr", V, s)
        s_perp = s - np.einsum("krd,kr->kd", V, z)
        b_rot = np.einsum("krd,kd->kr", V, np.asarray(stats.b))
        pad = [(0, 0), (0, s.shape[1] - z.shape[1])]
        z, b_rot, lam = (np.pad(a, pad) for a in (z, b_rot, np.asarray(stats.lam)))
    perp2 = np.sum(s_perp**2, axis=1)
    inv_lam = np.where(lam > 0, 1.0 / np.where(lam > 0, lam, 1.0), 0.0)
    constants = tuple(
        jnp.asarray(a) for a in (perp2, lam, inv_lam, b_rot, stats.lam_max, stats.loss_min)
    )
    return (jnp.asarray(z), jnp.asarray(params.amplitudes)), s_perp, constants


def _rotate_out(state, s_perp, stats: Statistics) -> RankOneParams:
    z, amplitudes = (np.asarray(a) for a in state)
    if stats.V is None:
        s = z
    else:
        V = np.asarray(stats.V)
        s = np.einsum("krd,kr->kd", V, z[:, : V.shape[1]]) + s_perp
    return RankOneParams(s=jnp.asarray(s), amplitudes=jnp.asarray(amplitudes))


@jax.jit
def _rank_one_batched_excess(state, constants):
    _, lam, inv_lam, b_rot, _, _ = constants
    grad_rot = jax.vmap(_rank_one_gradient)(*state, lam, b_rot)
    return excess_from_gradient(grad_rot, inv_lam)


def end_to_end_vectors(params) -> np.ndarray:
    """End-to-end vectors of a batch of networks, dense or :class:`RankOneParams`, shape (K, D)."""
    if isinstance(params, RankOneParams):
        return np.asarray(rank_one_end_to_end(params))
    return np.asarray(jax.vmap(end_to_end)(params))


def feature_singular_values(params, k=3):
    """Top ``k`` singular values of the hidden features of each network, shape (K, k)."""
    if isinstance(params, RankOneParams):
        top = np.asarray(rank_one_feature_scale(params))
        return np.concatenate([top[:, None], np.zeros((top.shape[0], k - 1))], axis=1)
    features = jax.vmap(hidden_features)(params)
    return np.asarray(jnp.linalg.svd(features, compute_uv=False)[:, :k])
