"""``python -m hume_jax.train``."""

from hume_jax.train import main

if __name__ == "__main__":
  main()
