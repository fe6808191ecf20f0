"""The parts of ``report.html`` that read ``metrics.json`` and ``config.json``: the header, the premise
verdict in words, the results table and the protocol (auto, seeds, K auto); and the HTML table every
section of the page draws."""

from __future__ import annotations

import os
from html import escape

import numpy as np

from hume_jax.search.premise import smallest_lead


def _cell(v) -> str:
  if isinstance(v, tuple) and len(v) == 3:  # ("td", attributes, html)
    return f"<td {v[1]}>{v[2]}</td>"
  return f"<td>{v[1] if isinstance(v, tuple) else escape(str(v))}</td>"


def table(head: list[str], rows: list[list], classes: list[str] | None = None) -> str:
  """An HTML table; cells are escaped unless given as ``("html", text)`` or ``("td", attributes, html)``."""
  out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
  for i, row in enumerate(rows):
    attr = f' class="{classes[i]}"' if classes and classes[i] else ""
    out.append(f"<tr{attr}>" + "".join(_cell(v) for v in row) + "</tr>")
  return "".join(out) + "</table>"


def header(view: dict) -> str:
  """The title line and a few cards: classes found, the evaluated split, the CV score, ACC."""
  metrics, config = view["metrics"], view["config"]
  entry = metrics["splits"][view["split"]]
  method = "TURTLE" if "turtle" in config else ("HUME (auto)" if "auto" in metrics else "HUME")
  runs = f" ({len(metrics['seeds'])} seeds)" if metrics.get("seeds") else ""
  cards = [
    (f"{entry['nonempty_classes']} of {view['k']}", "classes found (non-empty)"),
    (f"{entry['n']}", f"samples of the {view['split']} split"),
    (f"{entry['smallest_class']} \u2013 {max(entry['cluster_sizes'])}", "smallest \u2013 largest class"),
    (f"{metrics['cv_score']:.3f}", "CV score (label-free)"),
  ]
  if "acc" in entry:
    cards.append((f"{100 * entry['acc']:.1f}%", "accuracy against the labels"))
  short = entry.get("short_classes") or []
  source = metrics.get("class_size_source")
  prior = "equal sizes" if not metrics.get("class_size_prior") else "the class sizes given"
  prior = "the k-means starts' sizes" if source == "k-means" and metrics.get("class_size_prior") else prior
  note = (
    f"<p class='sub'>{len(short)} found class{'es' * (len(short) > 1)} under a quarter of the size {prior} give "
    f"{'their' if len(short) > 1 else 'its'} rank: "
    + escape(", ".join(f"class {c['class']}: {c['found']} (prior {c['prior']:.0f})" for c in short))
    + "</p>"
    if short
    else ""
  )
  return (
    f"<h1>{escape(str(config.get('dataset', 'run')))}: what {escape(method)} found{runs}</h1>"
    f"<div class='sub'>run folder <code>{escape(str(view['shown_as']))}</code>, labels "
    f"<code>{escape(view['labels_file'])}</code>, trained in {metrics.get('train_seconds', 0):.0f} s</div>"
    + "<div class='cards'>"
    + "".join(f"<div class='card'><div class='stat'>{escape(a)}</div>{escape(b)}</div>" for a, b in cards)
    + "</div>"
    + note
  )


def premise_section(premise: dict | None) -> str:
  """The premise verdict (``hume_jax.search.premise``) in plain words, its measurements below."""
  if not premise:
    return ""

  names = tuple(premise["found"])
  lead, own, other = smallest_lead(premise, names)
  if premise["favoured"]:
    words = (
      "<b>The labeling found stands out.</b> In both representations it is more linearly separable than any "
      "plain k-means partition of either one that is a different labeling"
      + (f" (by at least {lead:.2f} in kappa, {premise['margin']} needed)" if np.isfinite(lead) else "")
      + ". That is what HUME expects of a human-like labeling: the classes below are worth reading as categories."
    )
  else:
    ours, theirs = premise["found"][other], premise[f"k-means of {own}"][other]
    words = (
      f"<b>Caution: these representations may not single out a human-like labeling.</b> A plain k-means "
      f"partition of {escape(own)} is about as separable in {escape(other)} (kappa {theirs:.3f}) as the labeling "
      f"found ({ours:.3f}); a lead of {premise['margin']} is needed. The classes below may be groupings of the "
      "representations rather than human categories. Stronger or more different representations help."
    )
  rows = [[key] + [f"{premise[key][n]:.3f}" for n in names] for key in premise if isinstance(premise[key], dict)]
  detail = table(["labeling"] + [f"kappa in {n}" for n in names], rows)
  return (
    f"<h2>Does the labeling stand out?</h2><div class='card {'ok' if premise['favoured'] else 'warn'}'>"
    f"<p>{words}</p><details><summary>measurements (label-free)</summary>{detail}</details></div>"
  )


def results_section(view: dict) -> str:
  """The printed results table: the run's rows and the baselines, when the split has labels."""
  metrics = view["metrics"]
  rows = [
    [label, *(f"{100 * entry[m]:.1f}" for m in ("acc", "nmi", "ari"))]
    for label, entry in _rows(view).items()
    if "acc" in entry
  ]
  rows += [
    [name, *(f"{100 * m[key]:.1f}" for key in ("acc", "nmi", "ari"))]
    for name, m in metrics.get("baselines", {}).items()
  ]
  if not rows:
    return ""
  return "<h2>Results table</h2>" + table(["method", "ACC %", "NMI %", "ARI %"], rows)


def _rows(view: dict) -> dict:
  metrics, split = view["metrics"], view["split"]
  if metrics.get("seeds"):
    return {
      f"best-CV run (seed {metrics.get('best_seed')})": metrics["splits"][split],
      f"majority vote ({len(metrics['seeds'])} runs)": metrics["splits"].get(f"{split}_vote", {}),
    }
  return {"HUME (auto)" if "auto" in metrics else "this run": metrics["splits"][split]}


def protocol_section(view: dict) -> str:
  metrics = view["metrics"]
  parts = []
  if "k_selection" in metrics:
    parts.append(k_curve(metrics["k_selection"]))
  if "auto" in metrics:
    parts.append(auto_section(metrics["auto"], view["run_dir"]))
  if metrics.get("seeds"):
    parts.append(seeds_section(metrics))
  return "".join(parts)


def auto_section(auto: dict, run_dir: str) -> str:
  """``--preset auto``: the candidates, the kept run, the vote, the refinement and the budget's cuts."""
  kept = _kept_run(run_dir)
  head = ["run", "phi1", "phi2", "start", "separability", "non-empty", "smallest", "iterations", "seconds"]
  rows = [
    [
      i,
      c["phi1"],
      c["phi2"],
      c["start"],
      f"{c['separability']:.3f}",
      c["nonempty_classes"],
      c["smallest_class"],
      f"{c['iterations']} of {c['planned_iterations']}",
      f"{c['seconds']:.1f}",
    ]
    for i, c in enumerate(auto["candidates"])
  ]
  vote, refine, plan = auto.get("vote", {}), auto.get("refinement", {}), auto.get("plan", {})
  cuts = plan.get("cuts", [])
  lines = [
    f"Kept order: phi1 = {auto['phi1']}, phi2 = {auto['phi2']}" + (f"; kept run: {kept}." if kept is not None else "."),
    f"Criterion: {auto.get('criterion', '')}.",
    f"Reported labels: {auto.get('labels', '')}.",
    f"Vote: {'used' if vote.get('used') else 'not used'}; separability {vote.get('separability', 0):.3f}, "
    f"agrees with the kept run on {100 * vote.get('agreement_with_kept_run', 0):.1f}% of the samples.",
    f"Refinement: {'used' if refine.get('used') else 'not used'}; {refine.get('rounds', 0)} rounds, separability "
    f"{refine.get('separability', 0):.3f} (gain {refine.get('separability_gain', 0):+.3f}), agrees with the "
    f"search on {100 * refine.get('agreement_with_search', 0):.1f}%.",
    f"Budget: {plan.get('budget_seconds', 0):.0f} s planned as {plan.get('runs', '?')} runs of "
    f"{plan.get('num_iters', '?')} iterations (estimate {plan.get('estimate_seconds', 0):.0f} s); "
    + ("cuts: " + "; ".join(map(str, cuts)) if cuts else "no cuts."),
  ]
  marks = ["kept" if i == kept else "" for i in range(len(rows))]
  return (
    "<h2>The search (--preset auto)</h2>"
    + "".join(f"<p>{escape(line)}</p>" for line in lines)
    + table(head, rows, marks)
  )


def _kept_run(run_dir: str) -> int | None:
  path = os.path.join(run_dir, "task_encoder.npz")
  if not os.path.isfile(path):
    return None
  with np.load(path, allow_pickle=False) as f:
    return int(f["kept_run"]) if "kept_run" in f.files else None


def seeds_section(metrics: dict) -> str:
  """``--seeds N``: each seed's CV score (and metrics), the kept seed and the vote."""
  seeds, best = metrics["seeds"], metrics.get("best_seed")
  keys = [m for m in ("acc", "nmi", "ari") if all(m in s for s in seeds)]
  rows = [[s["seed"], f"{s['cv_score']:.4f}", *(f"{100 * s[m]:.1f}" for m in keys)] for s in seeds]
  over = metrics.get("over_seeds", {})
  spread = ", ".join(f"{m.upper()} {100 * v['mean']:.1f} \u00b1 {100 * v['std']:.1f}" for m, v in over.items())
  return (
    f"<h2>The seeds</h2><p>{len(seeds)} runs; the run with the best CV score (seed {best}) is kept, and the "
    "reported labels are the majority vote of all runs, each matched to it."
    + (f" Over the seeds: {escape(spread)}." if spread else "")
    + "</p>"
    + table(
      ["seed", "CV score", *(f"{m.upper()} %" for m in keys)],
      rows,
      ["kept" if s["seed"] == best else "" for s in seeds],
    )
  )


def k_curve(selection: dict) -> str:
  """``--k auto``: the label-free scores over K as an inline SVG, the chosen K marked."""
  scores, chosen = selection["scores"], selection["chosen_k"]
  ks = [s["k"] for s in scores]
  series = [("stability (chooses K)", "stability", "#1f77b4"), ("CV score", "cv_score", "#ff7f0e")]
  series += [("chance-corrected CV", "kappa", "#2ca02c"), ("ACC (not used)", "acc", "#9a9a9a")]
  w, h, pad = 560, 260, 40
  lo, hi = min(ks), max(max(ks), min(ks) + 1)
  x = lambda k: pad + (w - 2 * pad) * (k - lo) / (hi - lo)
  y = lambda v: h - pad - (h - 2 * pad) * max(0.0, min(1.0, v))
  svg = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" style="background:#fff;border-radius:8px">']
  svg.append(f'<line x1="{x(chosen):.1f}" y1="{pad / 2}" x2="{x(chosen):.1f}" y2="{h - pad}" stroke="#bbb"/>')
  for i, (label, key, col) in enumerate(series):
    if not all(key in s for s in scores):
      continue
    pts = " ".join(f"{x(s['k']):.1f},{y(s[key]):.1f}" for s in scores)
    svg.append(f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="2"/>')
    svg += [f'<circle cx="{x(s["k"]):.1f}" cy="{y(s[key]):.1f}" r="3" fill="{col}"/>' for s in scores]
    svg.append(f'<text x="{pad + 150 * (i % 3)}" y="{14 + 14 * (i // 3)}" fill="{col}" font-size="12">{label}</text>')
  svg += [f'<text x="{x(k):.1f}" y="{h - pad + 16}" font-size="12" text-anchor="middle">{k}</text>' for k in ks]
  svg += [
    f'<text x="{pad - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:.1f}</text>' for v in (0, 0.5, 1)
  ]
  svg.append(f'<text x="{w / 2}" y="{h - 6}" font-size="12" text-anchor="middle">K (chosen: {chosen})</text></svg>')
  warning = selection.get("warning")
  return (
    f"<h2>The number of classes (--k auto)</h2><p>{escape(selection.get('criterion', ''))}</p>"
    + "".join(svg)
    + (f"<p class='note'>{escape(warning)}</p>" if warning else "")
  )


def footer(view: dict) -> str:
  config = view["config"]
  return (
    f"<h2>How it was made</h2><p class='src'>command: <code>{escape(config.get('command', ''))}</code><br>"
    f"versions: {escape(', '.join(f'{k} {v}' for k, v in config.get('versions', {}).items()))}<br>"
    "regenerate: <code>python -m hume_jax.report RUN_DIR</code></p>"
  )
