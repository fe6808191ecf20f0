import jax

# Parity and gradient checks run in float64; library code keeps explicit float32 where it wants it.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
