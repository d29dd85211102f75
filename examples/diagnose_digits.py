"""Diagnose on real data: will a small network's features, pretrained on digits 0-4, help on 5-9?

Run from the repository root: ``python examples/diagnose_digits.py [OUT_DIR]`` (about 4 s on
2 cores; the figure goes to OUT_DIR, default docs/img). A one-hidden-layer ReLU network (64 units) is trained to classify the digits
0-4 of scikit-learn's ``digits`` (the source task); its hidden activations are the pretrained
features of the images of 5-9 (the target task: their one-hot labels, scored by mean squared
error). :func:`featurefate.diagnose` sees only n = 150 target samples and predicts, from them,
whether linear probing (ridge on the features) beats training the same network from scratch,
and where that reverses. The rest of the target data then measures both learning curves,
which the prediction is drawn against (docs/diagnose.md, Real data).
"""

# %%
import sys
import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

import featurefate
from featurefate.diagnosis import ridge_gcv

warnings.filterwarnings("ignore", category=ConvergenceWarning)
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/img")
N_USER, HIDDEN, SEED = 150, 64, 0


def scratch_network():
    """The same architecture as the pretrained network, trained from a random init."""
    return MLPRegressor(hidden_layer_sizes=(HIDDEN,), alpha=1e-3, max_iter=600, random_state=SEED)


# %% the source task: digits 0-4; the pretrained features: the hidden ReLU layer
digits = load_digits()
X_all, labels = digits.data / 16.0, digits.target
source, target = labels < 5, labels >= 5
pretrained = MLPClassifier(hidden_layer_sizes=(HIDDEN,), max_iter=600, random_state=SEED)
pretrained.fit(X_all[source], labels[source])


def features(X):
    return np.maximum(X @ pretrained.coefs_[0] + pretrained.intercepts_[0], 0.0)


X, y = X_all[target], np.eye(5)[labels[target] - 5]
rng = np.random.default_rng(SEED)
order = rng.permutation(len(X))
user, rest = order[:N_USER], order[N_USER:]

# %% the diagnosis from the user's 150 samples only
result = featurefate.diagnose(
    X[user], y[user], features(X[user]), scratch=scratch_network(), repeats=4, num_sizes=6,
    seed=SEED,
)  # fmt: skip
t = result.transferability
print(f"n = {result.n}: T = {t.estimate:.4f} [{t.low:.4f}, {t.high:.4f}], {result.verdict}; "
      f"crossover n = {result.crossover_n}; LogME {result.logme:.3f}")  # fmt: skip

# %% the truth the user did not have: both learning curves on the held-back target data
test, pool = rest[:300], rest[300:]
sizes = np.unique(np.geomspace(30, len(pool), 6).astype(int))
measured = []
for m in sizes:
    t_m = []
    for r in range(3):
        train = np.random.default_rng(100 + r).permutation(pool)[:m]
        f_train, f_test = features(X[train]), features(X[test])
        f_mean, y_mean = f_train.mean(0), y[train].mean(0)
        pred, _, _ = ridge_gcv(f_train - f_mean, y[train] - y_mean, f_test - f_mean, centred=True)
        err_probe = np.mean((pred + y_mean - y[test]) ** 2)
        net = scratch_network().fit(X[train], y[train])
        err_scratch = np.mean((net.predict(X[test]) - y[test]) ** 2)
        t_m.append(err_scratch - err_probe)
    measured.append(t_m)
    print(f"m = {m}: measured T = {np.mean(t_m):.4f} +- {np.std(t_m, ddof=1):.4f}")
measured = np.array(measured)

# %% the figure: prediction from 150 samples against the measured transferability
curves = result.curves
fig = Figure(figsize=(6.4, 5.0), layout="constrained")
ax = fig.subplots()
grid = curves["n_curve"].values
ax.fill_between(grid, curves["transferability_low"], curves["transferability_high"],
                color="#2ca02c", alpha=0.2, lw=0, label="90% bootstrap band")  # fmt: skip
ax.plot(grid, curves["transferability"], color="#2ca02c", label=f"predicted from n = {N_USER}")
ax.errorbar(sizes, measured.mean(1), yerr=measured.std(1, ddof=1), fmt="ks", ms=4, capsize=2,
            label="measured on held-back data (3 splits)")  # fmt: skip
ax.axhline(0.0, color="0.3", lw=0.8)
ax.axvline(N_USER, color="k", ls="--", lw=1.0, label=f"diagnosed at n = {N_USER}")
if result.crossover_n is not None:
    ax.axvline(result.crossover_n, color="0.5", ls=":", lw=1.4,
               label=f"predicted crossover n = {result.crossover_n:.0f}")  # fmt: skip
ax.set(xscale="log", xlim=(grid[0], grid[-1]), xlabel="target training samples n",
       ylabel="T = MSE(scratch network) - MSE(linear probe)")  # fmt: skip
ax.set_title("digits: features pretrained on 0-4, target 5-9 (one-hot MSE)", fontsize=10)
ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
ax.grid(alpha=0.3, which="both", lw=0.5)
OUT.mkdir(parents=True, exist_ok=True)
fig.savefig(OUT / "diagnose_digits.png", dpi=150)
print(OUT / "diagnose_digits.png")
