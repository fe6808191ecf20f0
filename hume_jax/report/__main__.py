"""``python -m hume_jax.report``."""

from hume_jax.train.report import report_main

report_main()
