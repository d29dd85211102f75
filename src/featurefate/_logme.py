r"""LogME: the log marginal evidence of Bayesian linear regression on features (You et al., 2021).

A standard transferability score, reported by :func:`featurefate.diagnose` beside its own
prediction. For features :math:`F` (n, k) and one target column :math:`y` (n,), the model is
:math:`y = F w + \epsilon` with prior :math:`w \sim N(0, \alpha^{-1} I_k)` and noise
:math:`\epsilon \sim N(0, \beta^{-1} I_n)`. Its evidence is

.. math::

    \log p(y \mid F, \alpha, \beta) = \frac n2 \log\beta + \frac k2 \log\alpha
      - \frac n2 \log 2\pi - \frac\beta2 |y - F m|^2 - \frac\alpha2 |m|^2
      - \frac12 \log\det(\alpha I + \beta F^\top F),

with :math:`m = \beta (\alpha I + \beta F^\top F)^{-1} F^\top y` the posterior mean. It is
maximised over :math:`(\alpha, \beta)` by MacKay's fixed point,
:math:`\gamma = \sum_i \beta s_i^2 / (\alpha + \beta s_i^2)`, :math:`\alpha = \gamma / |m|^2`,
:math:`\beta = (n - \gamma) / |y - F m|^2` (:math:`s_i` the singular values of F), and LogME is
the maximum divided by n, averaged over target columns. Larger is better; the score has no
notion of a competing learner or of the sample size at which one would win.
"""

from __future__ import annotations

import numpy as np


def logme(features, y, *, max_iter=100, tol=1e-6) -> float:
    r"""LogME score of ``features`` for targets ``y`` (the evidence above, per sample).

    Parameters
    ----------
    features : array-like, shape (n, k)
    y : array-like, shape (n,) or (n, c)
        Regression targets; for classification pass one-hot columns.
    max_iter : int, default 100
        Fixed-point iterations per target column.
    tol : float, default 1e-6
        Stop when :math:`\alpha / \beta` changes by less than this, relatively.

    Returns
    -------
    float
        :math:`\max_{\alpha,\beta} \log p(y \mid F, \alpha, \beta) / n`, averaged over columns.
    """
    F = np.asarray(features, dtype=np.float64)
    Y = np.asarray(y, dtype=np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    n, k = F.shape
    # Eigenvalues of F^T F from the smaller Gram matrix; the rest are 0.
    from featurefate.diagnosis import _one_thread

    if n >= k:
        with _one_thread():
            s2, V = np.linalg.eigh(F.T @ F)
        proj = (F @ V).T @ Y  # s_i * (u_i . y)
    else:
        with _one_thread():
            s2, U = np.linalg.eigh(F @ F.T)
        proj = (U.T @ Y) * np.sqrt(np.maximum(s2, 0.0))[:, None]
    s2 = np.maximum(s2, 0.0)
    scores = []
    for col in range(Y.shape[1]):
        y_col = Y[:, col]
        yy = y_col @ y_col
        p = proj[:, col]  # s_i z_i, z_i = u_i . y
        with np.errstate(divide="ignore", invalid="ignore"):
            z2 = np.where(s2 > 0, p**2 / np.where(s2 > 0, s2, 1.0), 0.0)
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            d = alpha + beta * s2
            gamma = np.sum(beta * s2 / d)
            m2 = np.sum(beta**2 * s2 * z2 / d**2)  # |m|^2
            res2 = yy - np.sum(z2) + np.sum((alpha / d) ** 2 * z2)  # |y - F m|^2
            new_alpha = gamma / max(m2, 1e-300)
            new_beta = (n - gamma) / max(res2, 1e-300)
            ratio, new_ratio = alpha / beta, new_alpha / new_beta
            alpha, beta = new_alpha, new_beta
            if abs(new_ratio - ratio) <= tol * ratio:
                break
        d = alpha + beta * s2
        m2 = np.sum(beta**2 * s2 * z2 / d**2)
        res2 = yy - np.sum(z2) + np.sum((alpha / d) ** 2 * z2)
        # eigenvalues beyond F's rank contribute log(alpha) each; there are k of them in all
        logdet = np.sum(np.log(d)) + (k - s2.size) * np.log(alpha)
        evidence = (
            0.5 * n * np.log(beta)
            + 0.5 * k * np.log(alpha)
            - 0.5 * n * np.log(2.0 * np.pi)
            - 0.5 * beta * res2
            - 0.5 * alpha * m2
            - 0.5 * logdet
        )
        scores.append(evidence / n)
    return float(np.mean(scores))
