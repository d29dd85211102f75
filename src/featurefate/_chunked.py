r"""The chunked training loop shared by every gradient-descent engine (linear and ReLU).

Training a batch of K instances alternates two parts:

- on the device, a compiled *chunk* runs up to ``length`` steps of every instance still going
  (:func:`step_loop`, traced inside the engine's jitted chunk function). Each step reports
  whether it moved; an instance that could move but did not has met its stopping rule
  (converged) and stays frozen from then on. The chunk counts steps and the elapsed time
  :math:`\sum_t \mathrm{lr}_t` (gradient-flow time for the linear networks of Section 3,
  mean-field time for the ReLU networks of Section 4) per instance;
- on the host, between chunks, :func:`drive` checks for divergence (:class:`Divergence`),
  reports progress, and ends the loop once no instance is going: every one has converged,
  reached ``max_steps``, or reached ``max_time``.

The stopping rule itself (the excess loss within ``tol``) is the engine's: it is evaluated at
every step inside the chunk, so that each instance stops at the very step it converges, whatever
the chunk length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from featurefate._jax import jax, jnp

DIVERGENCE_FACTOR = 1e3
"""A loss above this many times its reference (plus a floor) counts as diverged."""


class TrainingDivergedError(FloatingPointError):
    """Gradient descent blew up: the step size is too large for the problem."""


class Counters(NamedTuple):
    """Per-instance progress of a batch, carried from chunk to chunk.

    Attributes
    ----------
    active : array of bool, shape (K,)
        Not yet converged.
    steps : array of int, shape (K,)
        Steps taken.
    time : array, shape (K,)
        Elapsed time, the sum of the step sizes taken.
    """

    active: Any
    steps: Any
    time: Any


class Limits(NamedTuple):
    """Where training stops, and how many steps a chunk runs.

    Attributes
    ----------
    max_steps : int
        Step limit of every instance.
    max_time : float or array of shape (K,)
        Time limit, one for all or one per instance (``inf``: none). The step that crosses it
        is taken whole.
    length : int
        Steps per chunk between host checks.
    """

    max_steps: int
    max_time: Any
    length: int


def start(count: int) -> Counters:
    """The counters of ``count`` fresh instances: all active, no steps, no time."""
    return Counters(
        active=jnp.ones(count, dtype=bool),
        steps=jnp.zeros(count, dtype=jnp.int64),
        time=jnp.zeros(count),
    )


def going(counters: Counters, limits: Limits):
    """Which instances may still step: active, under the step limit and under the time limit.

    Works on NumPy arrays (on the host) and on traced arrays (inside a chunk) alike.
    """
    return counters.active & (counters.steps < limits.max_steps) & (counters.time < limits.max_time)


def step_loop(step: Callable, state, counters: Counters, limits: Limits):
    """Up to ``limits.length`` steps of a batch; traced inside an engine's jitted chunk.

    Parameters
    ----------
    step : callable
        ``step(state, can_go, steps) -> (state, lr, loss, moved)``: one step of every instance,
        frozen where ``can_go`` is False; ``lr`` the step size taken (0 where frozen), ``loss``
        the loss before the step, ``moved`` whether the instance stepped (False where it met
        its stopping rule).
    state : pytree
        The engine's batched state.
    counters : Counters
    limits : Limits

    Returns
    -------
    state, counters, loss
        ``loss`` is that of the last step (``inf`` if no step ran). An instance that could go
        but did not move has converged and is marked inactive. The loop ends early once no
        instance is going.
    """

    def cond(carry):
        _, counters, _, count = carry
        return (count < limits.length) & jnp.any(going(counters, limits))

    def body(carry):
        state, counters, _, count = carry
        can_go = going(counters, limits)
        state, lr, loss, moved = step(state, can_go, counters.steps)
        counters = Counters(
            active=counters.active & ~(can_go & ~moved),
            steps=counters.steps + moved,
            time=counters.time + lr,
        )
        return state, counters, loss, count + 1

    carry = (state, counters, jnp.full(counters.active.shape, jnp.inf), 0)
    state, counters, loss, _ = jax.lax.while_loop(cond, body, carry)
    return state, counters, loss


@dataclass(frozen=True)
class Divergence:
    """When a loss counts as diverged, and how the error says so.

    An instance has diverged when its loss is not finite or exceeds
    ``DIVERGENCE_FACTOR * (reference + floor)``.

    Attributes
    ----------
    reference : ndarray, shape (K,)
        The loss each instance is measured against (its starting loss, or the zero network's).
    knob : str
        The step setting to lower, as the message names it (e.g. ``"eta = 0.5"``).
    reference_name : str
        How the message names the reference (e.g. ``"started at"``).
    floor : float
        Added to the reference, so that a tiny reference does not flag a tiny loss.
    """

    reference: np.ndarray
    knob: str
    reference_name: str = "started at"
    floor: float = 1.0

    def check(self, loss, steps, *, stage: str = "training") -> None:
        """Raise :class:`TrainingDivergedError` naming ``stage`` if any ``loss`` diverged."""
        loss = np.asarray(loss)
        bad = ~np.isfinite(loss) | (loss > DIVERGENCE_FACTOR * (self.reference + self.floor))
        if np.any(bad):
            first = int(np.flatnonzero(bad)[0])
            raise TrainingDivergedError(
                f"{stage} diverged for instance {first} by step {int(steps[first])} "
                f"(loss {loss[first]:.3g}, {self.reference_name} {self.reference[first]:.3g}); "
                f"{self.knob} is too large for this problem: lower it"
            )


@dataclass(frozen=True)
class Outcome:
    """Where :func:`drive` left a batch.

    Attributes
    ----------
    state : pytree
        The engine's final state.
    active, steps, time : ndarray, shape (K,)
        The final :class:`Counters`, on the host.
    at_step_limit : ndarray of bool, shape (K,)
        Instances stopped by ``max_steps`` before converging.
    loss : ndarray, shape (K,)
        The loss of each instance at its last step of the last chunk.
    history : list of ndarray
        ``loss`` after every chunk, in order.
    """

    state: Any
    active: np.ndarray
    steps: np.ndarray
    time: np.ndarray
    at_step_limit: np.ndarray
    loss: np.ndarray
    history: list

    @property
    def chunks(self) -> int:
        """Chunks run."""
        return len(self.history)


def drive(
    chunk: Callable,
    state,
    *,
    count: int,
    limits: Limits,
    divergence: Divergence,
    stage: str = "training",
    progress: Callable | None = None,
) -> Outcome:
    """Run ``chunk`` until no instance is going; check divergence and report after each.

    Parameters
    ----------
    chunk : callable
        ``chunk(state, counters, limits) -> (state, counters, loss)``, normally jitted and
        built on :func:`step_loop`.
    state : pytree
        Initial batched state.
    count : int
        Instances K.
    limits : Limits
    divergence : Divergence
    stage : str, default "training"
        What is being trained, as the divergence error names it.
    progress : callable, optional
        ``progress(steps_done_max, max_steps)`` after each chunk.

    Returns
    -------
    Outcome

    Raises
    ------
    TrainingDivergedError
        After the first chunk that leaves a diverged loss.
    """
    counters = start(count)
    history = []
    while True:
        state, counters, loss = chunk(state, counters, limits)
        loss = np.asarray(loss)
        history.append(loss)
        host = Counters(*(np.asarray(a) for a in counters))
        divergence.check(loss, host.steps, stage=stage)
        if progress is not None:
            progress(int(host.steps.max()), limits.max_steps)
        if not np.any(going(host, limits._replace(max_time=np.asarray(limits.max_time)))):
            break
    return Outcome(
        state=state,
        active=host.active,
        steps=host.steps,
        time=host.time,
        at_step_limit=host.active & (host.steps >= limits.max_steps),
        loss=loss,
        history=history,
    )
