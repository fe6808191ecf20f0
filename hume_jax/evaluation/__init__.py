"""Measures of a labeling: accuracy, NMI and ARI with Hungarian matching, the label-free CV score
and its chance-corrected kappa, multinomial logistic regression and k-means in JAX, the row caps of every label-free
estimate, and the reference rows a result is compared with (k-means on each space, a linear probe). It imports no
other part of hume_jax."""
