"""diagnose against the ReLU teacher-student experiment (Section 4, Fig. 4) at known rho.

For each rho (the fraction of the target teacher's neurons the source lacks), the experiment's
own pieces at its quick scale (d = 20, m = 100, k = 20, noiseless) give the pretrained mean-field
network (population pretraining on the source) and n_user target samples; ``diagnose`` sees
those samples, the pretrained network's hidden features relu(W x) and, as its scratch learner,
the experiment's scratch training (a fresh width-m network, both layers, gradient descent),
wrapped as a scikit-learn regressor. Its verdict at n_user and its crossover are printed beside
the sign of T the experiment measures (``relu_phase.run_cell``, 4 instances, exact errors) at
each n of the quick grid.

    PYTHONPATH=src python benchmarks/diagnose_relu_check.py [N_USER, default 200]
"""

from __future__ import annotations

import sys
import time

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from featurefate._jax import jax
from featurefate.diagnosis import diagnose
from featurefate.experiments import relu_phase as rp
from featurefate.relu_training import scratch
from featurefate.tasks import relu_network_output, sample_relu_data

RHOS = (0.0, 0.3, 0.6)
N_GRID = (25, 50, 100, 200, 400)
CONFIG = rp.ReluPhaseConfig(n_instances=4)
ONE = CONFIG  # instance 0 of its teachers and pretraining


class MeanFieldScratch(RegressorMixin, BaseEstimator):
    """The experiment's scratch training as a scikit-learn regressor."""

    def __init__(self, seed=0):
        self.seed = seed

    def fit(self, X, y):
        result = scratch(
            np.asarray(X)[None], np.asarray(y)[None], key=jax.random.PRNGKey(self.seed),
            width=ONE.m, options=ONE.options("scratch"),
        )  # fmt: skip
        self.W_, self.c_ = result.W[0], result.c[0]
        return self

    def predict(self, X):
        return relu_network_output(X, self.W_, self.c_)


def main(n_user=200):
    start = time.perf_counter()
    print(f"quick scale d={ONE.d} m={ONE.m} k={ONE.k}, diagnose from n_user = {n_user} samples")
    for rho in RHOS:
        measured = []
        for n in N_GRID:
            ds = rp.run_cell(CONFIG, {"rho": rho, "n": n}, 0)
            measured.append(float(ds["transferability_linear"].values))
        teachers, pre = rp._pretrained(
            ONE, rho, np.random.SeedSequence(1), np.random.SeedSequence(2)
        )
        X, y = sample_relu_data(teachers.W[0], teachers.c_target[0], n_user, seed=3)
        features = np.maximum(X @ pre.W[0].T, 0.0)
        res = diagnose(X, y, features, scratch=MeanFieldScratch(), repeats=3, num_sizes=5)
        t = res.transferability
        signs = " ".join(
            f"n={n}:{'+' if m > 0 else '-'}({m:+.4f})"
            for n, m in zip(N_GRID, measured, strict=True)
        )
        cross = "none" if res.crossover_n is None else f"{res.crossover_n:.0f}"
        print(f"rho={rho}: diagnose T({n_user}) = {t.estimate:+.4f} [{t.low:+.4f}, {t.high:+.4f}] "
              f"{res.verdict}, crossover {cross}, irreducible {res.irreducible_error.estimate:.4f}"
              f" | experiment T: {signs}", flush=True)  # fmt: skip
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
