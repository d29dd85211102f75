"""featurefate diagnose: the own-data prediction, its JSON, its figure and its one-line errors."""

import importlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

import featurefate
from featurefate._logme import logme
from featurefate.cli import app, main
from featurefate.diagnosis import check_data, diagnose, load_data, min_norm_predict, ridge_gcv
from featurefate.theory import linear_transfer_error, scratch_error

runner = CliRunner()
FAST = {"repeats": 4, "num_sizes": 6, "bootstrap": 100}


def _teacher_pair(rng, n, dim, theta, sigma, junk=0):
    """Deep-linear target data at angle theta to the source teacher e_0, and its pretrained
    features: the rank-one X beta_s (Theorem 3.4), plus ``junk`` random directions."""
    beta_t = np.zeros(dim)
    beta_t[0], beta_t[1] = np.cos(theta), np.sin(theta)
    X = rng.standard_normal((n, dim))
    y = X @ beta_t + sigma * rng.standard_normal(n)
    directions = np.zeros((dim, 1 + junk))
    directions[0, 0] = 1.0
    if junk:
        directions[:, 1:] = rng.standard_normal((dim, junk)) / np.sqrt(dim)
    return X, y, X @ directions


def test_known_truth_rank_one_features():
    """Deep-linear teacher pair: the interval covers eq. (10) minus eq. (12) at n, and the
    verdict is the sign of the truth where the truth is far from 0."""
    rng = np.random.default_rng(3)
    dim, sigma = 40, 0.3
    for theta, n in ((0.2, 30), (np.pi / 3, 160)):
        X, y, F = _teacher_pair(rng, n, dim, theta, sigma)
        result = diagnose(X, y, F, fit_intercept=False, **FAST)
        truth = scratch_error(n / dim, sigma, dim=dim) - linear_transfer_error(
            n / dim, theta, sigma, dim=dim
        )
        t = result.transferability
        assert t.low <= truth <= t.high, (theta, n, t, truth)
        assert result.verdict == ("positive" if truth > 0 else "negative")
        # positive: scratch wins only beyond n; negative: it already wins at n
        if result.crossover_n is not None:
            assert (result.crossover_n > n) == (result.verdict == "positive")
        # the part of beta_t outside the feature's span is sin^2 theta (eq. 12)
        r = result.irreducible_error
        assert r.low <= np.sin(theta) ** 2 <= r.high


def test_result_dataset_and_json_fields():
    rng = np.random.default_rng(0)
    X, y, F = _teacher_pair(rng, 60, 20, 0.5, 0.1, junk=2)
    result = diagnose(X, np.stack([y, -y], axis=1), F, **FAST)
    ds = result.curves
    assert ds["error_scratch"].dims == ("n", "split")
    assert ds.sizes["split"] == 4 and ds["n"].max() <= 60 - 12
    assert np.all(ds["transferability_low"] <= ds["transferability_high"])
    i_n = int(np.searchsorted(ds["n_curve"].values, 60))
    assert ds["n_curve"][i_n] == 60
    assert ds["transferability"][i_n] == result.transferability.estimate
    assert result.verdict in ("positive", "negative", "uncertain")
    assert (result.transferability.low > 0) == (result.verdict == "positive")
    doc = result.to_dict()
    assert set(doc) >= {
        "n", "transferability", "verdict", "crossover_n", "irreducible_error", "parameters",
        "curves",
    }  # fmt: skip
    assert doc["settings"]["num_targets"] == 2


def test_learners_hit_known_solutions():
    """Minimum-norm predictions equal NumPy's pinv fit; ridge equals the closed form at the
    chosen penalty, and the penalty minimises the brute-force GCV score."""
    rng = np.random.default_rng(1)
    for m, p in ((15, 30), (40, 10)):
        A, Y, A_test = (
            rng.standard_normal((m, p)),
            rng.standard_normal((m, 2)),
            rng.standard_normal((5, p)),
        )
        np.testing.assert_allclose(
            min_norm_predict(A, Y, A_test), A_test @ np.linalg.pinv(A) @ Y, rtol=1e-8, atol=1e-10
        )
        Ac, Yc = A - A.mean(0), Y - Y.mean(0)
        np.testing.assert_allclose(
            min_norm_predict(Ac, Yc, A_test, centred=True),
            A_test @ np.linalg.pinv(Ac) @ Yc,
            rtol=1e-8,
            atol=1e-10,
        )
        lams = np.array([1e-3, 1e-1, 1.0, 10.0])
        pred, lam, dof = ridge_gcv(A, Y, A_test, lams=lams)
        coef = np.linalg.solve(A.T @ A + lam * np.eye(p), A.T @ Y)
        np.testing.assert_allclose(pred, A_test @ coef, rtol=1e-8, atol=1e-10)
        hat = A @ np.linalg.solve(A.T @ A + lam * np.eye(p), A.T)
        assert dof == pytest.approx(np.trace(hat), rel=1e-9)
        again, _, _ = ridge_gcv(A, Y, A_test, lam=lam)  # the Cholesky path at a given penalty
        np.testing.assert_allclose(again, pred, rtol=1e-8, atol=1e-10)
        scale = np.trace(A.T @ A) / p

        def brute_gcv(lam_abs, A=A, Y=Y, m=m, p=p):
            H = A @ np.linalg.solve(A.T @ A + lam_abs * np.eye(p), A.T)
            return m * np.sum((Y - H @ Y) ** 2) / (m - np.trace(H)) ** 2

        assert lam == pytest.approx(lams[np.argmin([brute_gcv(x * scale) for x in lams])] * scale)


def test_logme_matches_direct_evidence():
    """At the fixed point the evidence equals the Gaussian log density of y under
    N(0, F F^T / alpha + I / beta), computed directly; better features score higher."""
    rng = np.random.default_rng(2)
    n, k = 50, 4
    F = rng.standard_normal((n, k))
    y = F @ np.array([1.0, -0.5, 0.0, 0.2]) + 0.3 * rng.standard_normal(n)
    score = logme(F, y, max_iter=1000, tol=1e-12)
    # recover (alpha, beta) by maximising the direct evidence on a fine grid around the optimum
    from scipy.optimize import minimize

    def neg_evidence(log_ab):
        alpha, beta = np.exp(log_ab)
        cov = F @ F.T / alpha + np.eye(n) / beta
        _, logdet = np.linalg.slogdet(cov)
        return 0.5 * (n * np.log(2 * np.pi) + logdet + y @ np.linalg.solve(cov, y))

    best = minimize(
        neg_evidence, x0=[0.0, 2.0], method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12}
    )
    assert score == pytest.approx(-best.fun / n, abs=1e-6)
    assert logme(F, y) > logme(rng.standard_normal((n, k)), y)
    # wide features (n < k) go through the other Gram matrix
    assert np.isfinite(logme(rng.standard_normal((10, 30)), rng.standard_normal(10)))


def test_general_scratch_learner_power_law():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(4)
    X, y, F = _teacher_pair(rng, 80, 10, 0.1, 0.1)
    result = diagnose(X, y, F, scratch=Ridge(alpha=1.0), **FAST)
    assert result.parameters["scratch"]["form"] == "power law plus floor"
    assert result.settings["scratch"] == "Ridge"
    ridge = diagnose(X, y, F, scratch="ridge", **FAST)
    assert ridge.parameters["linear"]["form"] == "power law plus floor"
    with pytest.raises(ValueError, match="scratch must be"):
        diagnose(X, y, F, scratch=3)


def _write(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return str(path)


def _good(n=40, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    X, y, F = _teacher_pair(rng, n, dim, 0.4, 0.2)
    return {"X": X, "y": y, "features": F}


def test_cli_json_and_figure(tmp_path):
    path = _write(tmp_path, **_good())
    result = runner.invoke(
        app, ["diagnose", path, "--json", "--repeats", "3", "--out", str(tmp_path / "fig")]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["verdict"] in ("positive", "negative", "uncertain")
    assert set(doc["transferability"]) == {"estimate", "low", "high"}
    assert doc["crossover_n"] is None or isinstance(doc["crossover_n"], float)
    assert (tmp_path / "fig" / "diagnose.png").stat().st_size > 0
    table = runner.invoke(app, ["diagnose", path, "--repeats", "2"])
    assert table.exit_code == 0 and "verdict" in table.stdout


def test_cli_table_formats(tmp_path):
    good = _good()
    for key, arr in good.items():
        np.save(tmp_path / f"{key}.npy", arr)
    X, _, F = load_data(
        tmp_path / "X.npy", y=tmp_path / "y.npy", features=tmp_path / "features.npy"
    )
    np.testing.assert_array_equal(F, good["features"])
    np.testing.assert_array_equal(X, good["X"])
    import pandas as pd

    columns = {f"x_{j}": good["X"][:, j] for j in range(good["X"].shape[1])}
    columns["y"] = good["y"]
    columns["f_0"] = good["features"][:, 0]
    pd.DataFrame(columns).to_csv(tmp_path / "data.csv", index=False)
    X2, y2, F2 = load_data(tmp_path / "data.csv")
    np.testing.assert_allclose(F2[:, 0], good["features"][:, 0])
    np.testing.assert_allclose(X2, good["X"])
    np.testing.assert_allclose(y2[:, 0], good["y"])
    with pytest.raises(ValueError, match="f_"):
        pd.DataFrame({"x_0": good["y"], "y": good["y"]}).to_csv(tmp_path / "bad.csv", index=False)
        load_data(tmp_path / "bad.csv")


def _bad_inputs():
    good = _good()
    nan = {**good, "X": good["X"].copy()}
    nan["X"][3, 2] = np.nan
    inf = {**good, "features": good["features"].copy()}
    inf["features"][0, 0] = np.inf
    return {
        "mismatched n": ({**good, "y": good["y"][:-1]}, "one row per sample"),
        "NaN": (nan, "X must be finite"),
        "inf": (inf, "features must be finite"),
        "too few samples": ({k: a[:12] for k, a in good.items()}, "at least 20 samples"),
        "constant targets": ({**good, "y": np.full(40, 2.5)}, "y has zero variance"),
        "constant features": ({**good, "features": np.ones((40, 3))}, "features has zero variance"),
        "missing array": ({"X": good["X"], "y": good["y"]}, "missing features"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_input_one_line_exit_2(tmp_path, capsys, case):
    arrays, message = _bad_inputs()[case]
    path = _write(tmp_path, **arrays)
    with pytest.raises(SystemExit) as exc:
        main(["diagnose", path])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_constant_columns_dropped_and_counted():
    good = _good()
    F = np.column_stack([good["features"], np.zeros(40)])  # a dead ReLU unit
    _, Y, F2, dropped = check_data(good["X"], good["y"], F)
    assert F2.shape[1] == 1 and dropped == {"X": 0, "features": 1} and Y.shape == (40, 1)


def test_lazy_export():
    assert featurefate.diagnose is diagnose
    importlib.import_module("featurefate.diagnosis")  # must not rebind the name to a module

    assert featurefate.diagnose is diagnose


def test_crossover_picks_the_sign_change_that_matters_at_n():
    """T on a grid: + until 10, - to 30 (a double-descent bump from 30 to 50), - beyond 50."""
    from featurefate.diagnosis import _crossover

    grid = np.array([1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 100.0])
    t = np.array([0.4, 0.2, 0.1, -0.1, 0.3, 0.5, 0.1, -0.2, -0.3])
    # negative at n = 100: the last + -> - crossing at or below n, between 50 and 60
    assert 50.0 < _crossover(grid, t, 100.0) < 60.0
    # positive at n = 5: the first crossing above n, between 10 and 20 (log-linear)
    assert _crossover(grid, t, 5.0) == pytest.approx(np.exp(np.log(10) + 0.5 * np.log(2)))
    # positive everywhere, or negative everywhere: no crossover
    assert _crossover(grid, np.abs(t), 5.0) is None
    assert _crossover(grid, -np.abs(t), 5.0) is None
