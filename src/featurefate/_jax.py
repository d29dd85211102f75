"""The one place that configures JAX: float64 on, so that simulations can be compared with theory.

Import JAX through this module (``from featurefate._jax import jax, jnp``) in simulation code.
"""

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

__all__ = ["jax", "jnp"]
