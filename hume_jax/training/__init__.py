"""Training: the loop every method shares (progress, logs, checkpoints, stops, deadlines), HUME's fit
with its jit cache, TURTLE, many seeds as one program with the best CV score and the vote, HUME and TURTLE as
``Method`` values, stops on SIGTERM and SIGINT, and the memory plan of one outer step. It builds on
``hume_jax.core``, ``hume_jax.evaluation`` and ``hume_jax.io``."""
