"""The chunked training loop shared by the engines, on fake chunks whose answers are known.

The fake engine: instance i has loss ``rate_i ** t`` after t steps of size 0.1 and stops (does
not move) once its loss is at most ``tol``, so it converges after exactly
``ceil(log(tol) / log(rate_i))`` steps.
"""

import math
from functools import partial

import numpy as np
import pytest
from numpy.testing import assert_allclose

from featurefate import _chunked as ch
from featurefate import relu_training, training
from featurefate._jax import jax, jnp

TOL = 1e-3
LR = 0.1


@jax.jit
def _decay_chunk(state, counters, limits, *, rates):
    """Losses multiplied by ``rates`` at every step, until within TOL."""

    def step(loss, can_go, steps):
        moved = can_go & (loss > TOL)
        return jnp.where(moved, loss * rates, loss), jnp.where(moved, LR, 0.0), loss, moved

    return ch.step_loop(step, state, counters, limits)


def _run(rates, *, max_steps=100, max_time=np.inf, length=4, stage="training", progress=None):
    rates = jnp.asarray(rates, dtype=jnp.float64)
    return ch.drive(
        partial(_decay_chunk, rates=rates),
        jnp.ones(rates.shape),
        count=rates.shape[0],
        limits=ch.Limits(max_steps=max_steps, max_time=max_time, length=length),
        divergence=ch.Divergence(reference=np.ones(rates.shape), knob="eta = 0.5"),
        stage=stage,
        progress=progress,
    )


def _steps_to_tol(rate):
    return math.ceil(math.log(TOL) / math.log(rate))


RATES = [0.5, 0.8, 0.9]


@pytest.mark.parametrize("length", [1, 3, 100])
def test_each_instance_stops_at_the_step_it_reaches_tol_whatever_the_chunk_length(length):
    outcome = _run(RATES, length=length)
    expected = [_steps_to_tol(r) for r in RATES]  # 10, 31, 66
    assert outcome.steps.tolist() == expected
    assert not outcome.active.any() and not outcome.at_step_limit.any()
    assert_allclose(outcome.time, LR * np.asarray(expected), rtol=1e-12)
    assert_allclose(np.asarray(outcome.state), np.asarray(RATES) ** expected, rtol=1e-12)
    # one chunk past the last step: the slowest instance must try a step to know it stopped
    assert outcome.chunks == math.ceil((max(expected) + 1) / length)


def test_the_step_limit_is_flagged_not_hidden():
    outcome = _run([0.5, 1.0, 0.99], max_steps=40, length=7)
    assert outcome.steps.tolist() == [10, 40, 40]
    assert outcome.at_step_limit.tolist() == [False, True, True]
    assert outcome.active.tolist() == [False, True, True]


def test_the_time_limit_stops_after_the_step_that_crosses_it():
    outcome = _run([0.5, 0.9, 0.99], max_time=0.35, length=3)
    assert outcome.steps.tolist() == [4, 4, 4]
    assert np.all(outcome.time >= 0.35) and np.all(outcome.time < 0.35 + LR)
    assert not outcome.at_step_limit.any()
    per_instance = _run([0.5, 0.9], max_time=np.asarray([0.15, 10.0]), length=3)
    assert per_instance.steps.tolist() == [2, _steps_to_tol(0.9)]


def test_progress_reports_monotone_counts_once_per_chunk():
    calls = []
    outcome = _run(RATES, max_steps=50, length=6, progress=lambda s, m: calls.append((s, m)))
    counts = [s for s, _ in calls]
    assert len(calls) == outcome.chunks > 3
    assert all(m == 50 for _, m in calls)
    assert counts == sorted(counts) and counts[-1] == 50 == int(outcome.steps.max())
    assert counts[0] == 6


@pytest.mark.parametrize("stage", ["training", "pretraining", "fine-tuning"])
def test_a_growing_loss_raises_naming_the_stage_instance_and_knob(stage):
    # instance 1 grows twofold a step: past 1e3 (reference 1 + floor 1) after 11 steps
    with pytest.raises(ch.TrainingDivergedError) as info:
        _run([0.5, 2.0, 0.9], length=5, stage=stage)
    message = str(info.value)
    assert message.startswith(f"{stage} diverged for instance 1 by step 15 (loss ")
    assert "(loss 1.64e+04, started at 1); " in message and message.endswith(
        "eta = 0.5 is too large for this problem: lower it"
    )


def test_divergence_check_flags_non_finite_and_large_losses_only():
    rule = ch.Divergence(
        reference=np.array([1.0, 0.0, 2.0]),
        knob="lr = 8",
        reference_name="zero network",
        floor=1e-12,
    )
    rule.check(np.array([999.0, 1e-10, 2000.0]), np.array([3, 3, 3]))  # all within bounds
    with pytest.raises(ch.TrainingDivergedError, match=r"instance 1 by step 4 .*zero network 0"):
        rule.check(np.array([1.0, 1e-8, 1.0]), np.array([3, 4, 5]))
    with pytest.raises(ch.TrainingDivergedError, match=r"^ReLU diverged for instance 2.*loss nan"):
        rule.check(np.array([1.0, 0.0, np.nan]), np.array([3, 4, 5]), stage="ReLU")


def test_both_engines_raise_the_one_error():
    assert training.TrainingDivergedError is ch.TrainingDivergedError
    assert issubclass(ch.TrainingDivergedError, FloatingPointError)
    assert relu_training.Divergence is ch.Divergence and training.drive is ch.drive
