"""The maths: HUME's equations as pure functions (Eq. 3's task encoder and its sparsemax, Eq. 5's inner
problem, Eq. 7's objective), the subset draws, one outer step and how it is scheduled on a backend. Nothing here
calls ``jax.jit`` (the caller owns the compilation), loops, reads a file or measures a labeling; it imports only
``hume_jax.config``."""
