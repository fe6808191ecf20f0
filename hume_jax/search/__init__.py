"""The label-free search on a user's own features: conditioning of each space, class-size priors, the
cost model that sizes a search within its time budget, the vote's refinement in both spaces, the check of HUME's
premise, ``--preset auto`` (``auto``) and K by the agreement of runs (``kauto``). It builds on
``hume_jax.training`` and the layers below it."""
