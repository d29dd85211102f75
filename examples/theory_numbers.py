"""The paper's closed forms at one point: errors, transferability, negative-transfer regions.

Run: ``python examples/theory_numbers.py`` (no output files; under a second).

T = E[R_scratch] - E[R_transfer] (eq. 7): positive when pretraining helps, negative when it
hurts. alpha = n / D is the number of target samples per dimension, theta the angle between the
source and target teachers (radians), sigma the label noise.
"""

import numpy as np

import featurefate as ff

alpha, theta, sigma = 0.7, np.pi / 4, 0.2

print(f"alpha = {alpha}, theta = pi/4, sigma = {sigma}, D -> infinity")
print(f"  scratch error R_scratch (eq. 10)      {ff.scratch_error(alpha, sigma):.4f}")
print(
    f"  linear-transfer error (eq. 12)        {ff.linear_transfer_error(alpha, theta, sigma):.4f}"
)
for method, kwargs in [
    ("linear", {}),
    ("ridge", {"lam": 0.1}),
    ("finetune", {"variant": "paper"}),
    ("finetune", {"variant": "exact"}),
]:
    t = ff.transferability(method, alpha, theta, sigma, **kwargs)
    label = method + "".join(f", {k}={v}" for k, v in kwargs.items())
    print(f"  T {label:<34} {t:+.4f}")

regions = ff.negative_transfer_regions(theta, sigma)
print(
    f"linear transfer hurts for alpha in ({regions.alpha_lower:.4f}, {regions.alpha_upper:.4f})"
    f" and for alpha > {regions.alpha_threshold:.4f}"
)

# Exact expectations at a finite size: D = 100 inputs, n = alpha * D = 70 samples.
finite = ff.transferability("linear", alpha, theta, sigma, dim=100)
print(f"T linear at D = 100 (exact finite-size form): {finite:+.4f}")
