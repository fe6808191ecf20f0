"""Labeling quality on real data sets the methods were not tuned on, from raw features.

    python benchmarks/quality_data.py data/quality --cifar10 DIR --mpnet DIR   # builds the sets
    python benchmarks/quality.py data/quality [--only SETS] [--methods kmeans,auto,...] [--budget 600]

For each set (``benchmarks/quality_data.py``: two raw representations ``phi_a``, ``phi_b`` of
the same samples and their human labels), every method labels all samples without labels
(transductive) and is scored against the labels afterwards: ACC (Hungarian), NMI, ARI,
empty classes and wall time. Baselines run at their authors' defaults:

* k-means (scikit-learn, ``n_init=10``) on each raw space, and on each space conditioned as
  is common (centred, PCA-50 whitened) and as ``--preset auto`` does (centred, PCA-128, unit rows);
* spectral clustering (scikit-learn, ``affinity="nearest_neighbors"``, 10 neighbours) on each
  space conditioned (centred, PCA-128, unit rows);
* TURTLE mode at TURTLE's defaults (6000 iterations, batch 10000, 10 inner Adam steps, gamma
  10) on the two raw spaces;
* HUME with the ``cpu`` preset on the raw spaces (``a`` as phi1, L2-normalised): what a
  user got before ``--preset auto``;
* the default, ``python -m hume_jax.train``'s ``--preset auto`` (``hume_jax.search.auto.fit_auto``,
  ``--budget`` seconds);
* a supervised linear probe (5-fold, labels used: the ceiling of a linear labeling);
* ``kauto``: ``--k auto`` on the raw spaces (``hume_jax.search.kauto``), the K chosen against the true K;
* class-size priors (named in ``--methods`` only): ``auto-kmeans-sizes`` (``--class-sizes k-means``:
  each run drawn to the sizes of its start's k-means, label-free) and ``auto-true-sizes`` (the true
  sizes given, labels used: what a prior can do at best).

Long-tailed sets: ``NAME@irR`` in ``--only`` (e.g. ``digits@ir10``) is set ``NAME`` cut to a long tail
(``long_tailed``: class ``c`` of ``K``, in a seeded random order, keeps ``n_min * R ** (-c / (K - 1))``
rows), every method run on it alike; rows also give the recall of the smallest third of the classes and
the sizes found.

With the default, each set also gets the premise analysis (``analysis``): kappa of the human
labeling, of the labeling found and of each space's k-means partition in each space, whether the
human labeling is the most separable of those, and whether the label-free warning
(``hume_jax.search.premise``) was right.

Rows marked "(a)" / "(b)" are per space; for each baseline family the table also gives the
better space *chosen with the labels*, an upper bound no label-free user could pick.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
import warnings

import numpy as np

from hume_jax import CPU, fit, predict
from hume_jax.evaluation.metrics import evaluate, hungarian_map
from hume_jax.io.data import l2_normalize
from hume_jax.search.auto import apply_conditioning, fit_auto, fit_conditioning, vote_labels
from hume_jax.search.sizes import as_prior
from hume_jax.training.turtle import TurtleConfig, fit_turtle, predict_turtle


def kmeans(x, k, seed=0):
  from sklearn.cluster import KMeans

  return KMeans(k, n_init=10, random_state=seed).fit_predict(x)


def pca_whiten(x, dim=50):
  from sklearn.decomposition import PCA

  return PCA(min(dim, *x.shape), whiten=True, random_state=0).fit_transform(x)


def spherical(x):
  return apply_conditioning(fit_conditioning(x, unit_rows=True), x)


def spectral(x, k, seed=0):
  from sklearn.cluster import SpectralClustering

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=10, random_state=seed).fit_predict(x)


def probe(a, b, y):
  from sklearn.linear_model import LogisticRegression
  from sklearn.model_selection import cross_val_predict
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return cross_val_predict(
      make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), np.hstack([a, b]), y, cv=5
    )


METHODS = ("kmeans", "spectral", "auto", "probe", "cpu", "turtle", "kauto")
CLASS_SIZE_METHODS = ("auto-kmeans-sizes", "auto-true-sizes")  # only when named in --methods
SETS = "fashion_mnist,digits,debian_sections,fortunes,cifar10,cifar10_lite2,debian_sections_st,fortunes_st"


def long_tailed(y: np.ndarray, ratio: float, seed: int = 0) -> np.ndarray:
  """Rows of a long-tailed subset: the classes in a random order, class ``c`` keeps
  ``n_max * ratio ** (-c / (K - 1))`` of its rows (``n_max``: the smallest class's size, so every
  class can give its share), drawn at random. Returns the kept row indices, sorted."""
  rng = np.random.default_rng(seed)
  classes = rng.permutation(np.unique(y))
  n_max = np.bincount(y).min()
  keep = [
    rng.choice(np.flatnonzero(y == c), max(1, int(round(n_max * ratio ** (-i / (len(classes) - 1))))), replace=False)
    for i, c in enumerate(classes)
  ]
  return np.sort(np.concatenate(keep))


def small_recall(pred: np.ndarray, y: np.ndarray, k: int) -> float:
  """Mean recall (after Hungarian matching) of the smallest third of the true classes."""
  matched = hungarian_map(pred, y, k)[pred]
  small = np.argsort(np.bincount(y, minlength=k))[: max(1, k // 3)]
  return float(np.mean([np.mean(matched[y == c] == c) for c in small]))


def _record(rows, y, k, on_row):
  """``record(method, space, fn)``: runs ``fn`` (labels of every sample), scores and prints it."""

  def record(method, space, fn):
    t0 = time.perf_counter()
    pred = np.asarray(fn())
    sec = time.perf_counter() - t0
    sizes = np.bincount(pred, minlength=k)
    row = {
      "method": method,
      "space": space,
      **evaluate(pred, y),
      "empty": int((sizes[:k] == 0).sum()),
      "small_recall": small_recall(pred, y, k),
      "sizes_found": sorted(sizes[:k].tolist(), reverse=True),
      "seconds": round(sec, 1),
    }
    rows.append(row)
    on_row(rows)
    print(
      f"  {method:<34}{space:>6}{100 * row['acc']:>7.1f}{100 * row['nmi']:>7.1f}{100 * row['ari']:>7.1f}"
      f"{row['empty']:>7}{sec:>9.1f}",
      flush=True,
    )
    return pred

  return record


def analysis(a, b, y, found, k) -> dict:
  """The premise on this set, with the labels: kappa of the human labeling, of the labeling found
  and of each space's k-means partition, in each space (the conditioned spaces of
  ``hume_jax.search.premise``), whether the human labeling is the most separable of the human and k-means
  labelings (each k-means judged in the space it was not clustered in), and the label-free
  warning's verdict."""
  from hume_jax.evaluation.metrics import separability_per_space
  from hume_jax.search.conditioning import condition_spaces
  from hume_jax.search.premise import premise_report

  report = premise_report(a, b, found, k, names=("a", "b"))
  spaces = condition_spaces(a, b)
  human = dict(zip("ab", separability_per_space([spaces.cond2["a"], spaces.cond2["b"]], y)))
  most = human["b"] >= report["k-means of a"]["b"] and human["a"] >= report["k-means of b"]["a"]
  bottleneck = min(report["found"][s] - max(human[s], report["k-means of " + "ba"["ab".index(s)]][s]) for s in "ab")
  return {
    "human": human,
    "found": report["found"],
    "k-means of a": report["k-means of a"],
    "k-means of b": report["k-means of b"],
    "human_most_separable": bool(most),
    "warned": not report["favoured"],
    "warning_right": bool(most == report["favoured"]),
    "search_margin": float(bottleneck),
  }


def run_set(
  path: str,
  budget: float,
  seed: int = 42,
  on_row=lambda rows: None,
  methods=METHODS,
  k_range: tuple[int, int] | None = None,
  k_budget: float = 600.0,
  imbalance: float = 1.0,
) -> tuple[list[dict], dict]:
  with np.load(path) as f:
    a, b, y = f["phi_a"].astype(np.float32), f["phi_b"].astype(np.float32), f["labels"]
  if imbalance > 1:
    rows_kept = long_tailed(y, imbalance)
    a, b, y = a[rows_kept], b[rows_kept], np.unique(y[rows_kept], return_inverse=True)[1]
  k = len(np.unique(y))
  rows, extra = [], {}
  record = _record(rows, y, k, on_row)
  print(f"{os.path.basename(path)}: n={len(y)}, k={k}, d_a={a.shape[1]}, d_b={b.shape[1]}")
  print(f"  {'method':<34}{'space':>6}{'ACC':>7}{'NMI':>7}{'ARI':>7}{'empty':>7}{'seconds':>9}")
  for name, x in [("a", a), ("b", b)] if "kmeans" in methods else []:
    record("k-means, raw", name, lambda: kmeans(x, k))
    record("k-means, PCA-50 whitened", name, lambda: kmeans(pca_whiten(x), k))
    record("k-means, centred PCA-128 unit rows", name, lambda: kmeans(spherical(x), k))
  for name, x in [("a", a), ("b", b)] if "spectral" in methods else []:
    record("spectral, centred PCA-128 unit rows", name, lambda: spectral(spherical(x), k))
  if "auto" in methods:

    def auto():
      res = fit_auto(a, b, k, budget_seconds=budget, seed=seed, progress=False, say=lambda s: print("    " + s))
      return vote_labels(res, a, b)

    found = record("HUME, --preset auto (the default)", "auto", auto)
    extra["analysis"] = analysis(a, b, y, found, k)
    print("    premise: " + json.dumps(extra["analysis"]))
  if "auto-kmeans-sizes" in methods:  # --class-sizes k-means: each run drawn to its start's k-means sizes
    auto_km = lambda: vote_labels(
      fit_auto(a, b, k, budget_seconds=budget, seed=seed, progress=False, say=lambda s: None, prior="k-means"), a, b
    )
    record("HUME, auto, k-means sizes", "auto", auto_km)
  if "auto-true-sizes" in methods:  # the true sizes as prior (labels used: the ceiling of a prior)
    true = as_prior(np.bincount(y))
    auto_true = lambda: vote_labels(
      fit_auto(a, b, k, budget_seconds=budget, seed=seed, progress=False, say=lambda s: None, prior=true), a, b
    )
    record("HUME, auto, true sizes (labels)", "auto", auto_true)
  if "probe" in methods:
    record("linear probe, 5-fold (supervised)", "a+b", lambda: probe(a, b, y))
  if "cpu" in methods:

    def hume_cpu():  # phi1 = a: Open-NSFW for images (the shipped default's phi1), MiniLM for texts
      phi1 = l2_normalize(a, "phi1")
      state, _ = fit(phi1, b, dataclasses.replace(CPU, k=k, seed=seed), progress=False)
      return predict(state.encoder, phi1)

    record("HUME, cpu preset, raw inputs", "a->b", hume_cpu)
  if "turtle" in methods:
    turtle = lambda: predict_turtle(fit_turtle([a, b], TurtleConfig(k=k, seed=seed), progress=False)[0].encoder, [a, b])
    record("TURTLE mode, TURTLE defaults", "a+b", turtle)
  if "kauto" in methods:
    from hume_jax.search.kauto import select_k_auto

    lo, hi = k_range or (2, 15)
    t0 = time.perf_counter()
    sel = select_k_auto(
      a, b, (lo, hi), budget_seconds=k_budget, seed=seed, labels=y, say=lambda s: print("    " + s), progress=False
    )
    extra["kauto"] = {"true_k": k, "chosen_k": sel.chosen_k, "scores": sel.scores, "seconds": time.perf_counter() - t0}
  return rows, extra


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("folder", nargs="?", help="the folder benchmarks/quality_data.py wrote")
  p.add_argument("--only", default=SETS, help=f"comma-separated sets (default {SETS})")
  p.add_argument(
    "--methods",
    default=",".join(METHODS),
    help=f"comma-separated, of {','.join(METHODS + CLASS_SIZE_METHODS)} (default: {','.join(METHODS)})",
  )
  p.add_argument("--budget", type=float, default=600.0, help="--preset auto's budget in seconds (default 600)")
  p.add_argument("--seed", type=int, default=42, help="seed of the HUME and TURTLE runs (default 42)")
  p.add_argument("--k-range", default="2:15", help="kauto: the K tried (default 2:15)")
  p.add_argument("--k-budget", type=float, default=600.0, help="kauto: seconds for the search over K (default 600)")
  p.add_argument("--json", help="also write every row to this file; rows of an existing file are kept unless rerun")
  p.add_argument(
    "--summary", nargs="+", metavar="JSON", help="only print the tables of saved --json files (a set's rows merged)"
  )
  args = p.parse_args()
  if args.summary:
    merged = {}
    for path in args.summary:  # one set's rows may come from several files (methods run apart): later rows win
      with open(path) as f:
        for name, v in json.load(f).items():
          v = v if isinstance(v, dict) else {"rows": v}
          old = merged.get(name, {"rows": []})
          merged[name] = {**old, **v, "rows": merge_rows(old["rows"], v["rows"])}
    summary(merged)
    return
  import jax

  print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} on {jax.devices()[0].platform}")
  results = {}
  if args.json and os.path.exists(args.json):
    with open(args.json) as f:
      results = json.load(f)
  kept = {name: dict(v) for name, v in results.items()}
  for name in args.only.split(","):

    def save(rows, extra=None, name=name):
      merged = merge_rows(kept.get(name, {}).get("rows", []), rows)
      results[name] = {**kept.get(name, {}), **results.get(name, {}), "rows": merged, **(extra or {})}
      if args.json:
        with open(args.json + ".tmp", "w") as f:
          json.dump(results, f, indent=1)
        os.replace(args.json + ".tmp", args.json)

    k_range = tuple(int(x) for x in args.k_range.split(":"))
    rows, extra = run_set(
      os.path.join(args.folder, f"{name.split('@ir')[0]}.npz"),
      args.budget,
      seed=args.seed,
      on_row=save,
      methods=args.methods.split(","),
      k_range=k_range,
      k_budget=args.k_budget,
      imbalance=float(name.split("@ir")[1]) if "@ir" in name else 1.0,
    )
    save(rows, extra)
  summary(results)


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
  """``old`` rows with those of ``new`` of the same (method, space) in their place, then ``new``'s others."""
  fresh = {(r["method"], r["space"]): r for r in new}
  return [fresh.pop((r["method"], r["space"]), r) for r in old] + list(fresh.values())


def summary(results: dict[str, dict]) -> None:
  """The markdown tables of ``benchmarks/README.md``: per set, every row; ACC per family; the
  premise and the search per set; the targets; K auto."""
  rows_of = {name: v["rows"] if isinstance(v, dict) else v for name, v in results.items()}
  for name, rows in rows_of.items():
    print(f"\n{name}\n\n| method | space | ACC | NMI | ARI | empty classes | seconds |\n|---|---|---|---|---|---|---|")
    for r in rows:
      print(
        f"| {r['method']} | {r['space']} | {100 * r['acc']:.1f} | {100 * r['nmi']:.1f} | {100 * r['ari']:.1f} | "
        f"{r['empty']} | {r['seconds']:.0f} |"
      )
  print("\nACC (%), best space chosen with labels for each baseline family:")
  families = list(dict.fromkeys(r["method"] for rows in rows_of.values() for r in rows))
  print("| method | " + " | ".join(rows_of) + " |\n|---" + "|---" * len(rows_of) + "|")
  for fam in families:
    cells = []
    for rows in rows_of.values():
      rs = [r for r in rows if r["method"] == fam]
      best = max(rs, key=lambda r: r["acc"]) if rs else None
      cells.append(
        "-" if best is None else f"{100 * best['acc']:.1f}" + (f" ({best['empty']} empty)" if best["empty"] else "")
      )
    print(f"| {fam} | " + " | ".join(cells) + " |")
  _premise_table(results)
  _targets(rows_of, results)
  _kauto_table(results)


def _premise_table(results: dict) -> None:
  """Per set, the kappas of the premise analysis and the warning's verdict, judged again with the current
  ``hume_jax.search.premise.MARGIN`` from the saved kappas (the same verdict a run of this version gives)."""
  from hume_jax.search.premise import MARGIN, smallest_lead

  sets = [n for n, v in results.items() if isinstance(v, dict) and "analysis" in v]
  if not sets:
    return
  print(
    f"\nkappa in a / b (5-fold logistic regression, 64 leading components of each conditioned space; MARGIN {MARGIN}):"
  )
  print(
    "| set | human labels | found (--preset auto) | k-means of a | k-means of b | human most separable | "
    "smallest lead | warning | warning right | search margin |\n|---|---|---|---|---|---|---|---|---|---|"
  )
  hits = 0
  for n in sets:
    x = results[n]["analysis"]
    lead = smallest_lead(x, ("a", "b"))[0]
    warned = lead < MARGIN
    hits += warned != x["human_most_separable"]
    ab = lambda d: f"{d['a']:.3f} / {d['b']:.3f}"
    print(
      f"| {n} | {ab(x['human'])} | {ab(x['found'])} | {ab(x['k-means of a'])} | {ab(x['k-means of b'])} | "
      f"{'yes' if x['human_most_separable'] else 'no'} | {lead:+.3f} | {'fired' if warned else 'quiet'} | "
      f"{'hit' if warned != x['human_most_separable'] else 'miss'} | {x['search_margin']:+.3f} |"
    )
  print(f"warning right on {hits} of {len(sets)} sets")


def _targets(rows_of: dict, results: dict) -> None:
  print("\ntargets, ACC % of --preset auto against what a user would run instead:")
  print(
    "| set | auto | best k-means row | TURTLE | better probe - 5 (where the human labeling is most separable) | "
    "empty classes |\n|---|---|---|---|---|---|"
  )
  for n, rows in rows_of.items():
    auto = [r for r in rows if r["method"].startswith("HUME, --preset auto")]
    if not auto:
      continue
    km = max((r["acc"] for r in rows if r["method"].startswith("k-means")), default=float("nan"))
    tu = [r["acc"] for r in rows if r["method"].startswith("TURTLE")]
    probe_ = [r["acc"] for r in rows if r["method"].startswith("linear probe")]
    most = results[n].get("analysis", {}).get("human_most_separable") if isinstance(results[n], dict) else None
    print(
      f"| {n} | {100 * auto[0]['acc']:.1f} | {100 * km:.1f} | {f'{100 * tu[0]:.1f}' if tu else 'not run'} | "
      f"{f'{100 * probe_[0] - 5:.1f}' if probe_ and most else '-'} | {auto[0]['empty']} |"
    )


def _kauto_table(results: dict) -> None:
  sets = [n for n, v in results.items() if isinstance(v, dict) and "kauto" in v]
  if not sets:
    return
  print("\n--k auto on raw features (label-free; stability per K, the chosen K in bold):")
  print("| set | true K | chosen K | stability by K | seconds |\n|---|---|---|---|---|")
  for n in sets:
    x = results[n]["kauto"]
    curve = ", ".join(
      (f"**{e['k']}: {e['stability']:.2f}**" if e["k"] == x["chosen_k"] else f"{e['k']}: {e['stability']:.2f}")
      + ("" if e.get("found_k", True) else " (tiny)")
      for e in x["scores"]
    )
    print(f"| {n} | {x['true_k']} | {x['chosen_k']} | {curve} | {x['seconds']:.0f} |")


if __name__ == "__main__":
  main()
