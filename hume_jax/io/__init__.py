"""Files and the run folder: representations and labels read from ``.npy`` / ``.npz`` files with their
checks, checkpoints written atomically with a checksum, and the life of a run's output folder (``OUT.partial``
while it runs, renamed to ``OUT`` at the end). It builds on ``hume_jax.core`` (the state a checkpoint holds) and
``hume_jax.config``."""
