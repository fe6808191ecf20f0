"""The page of ``hume_jax.report``: HTML with inline CSS and ``data:`` images, no script. Every text
from the data (class names, texts, file names) is escaped."""

from __future__ import annotations

import base64
import os
from html import escape

import numpy as np

from hume_jax.evaluation import metrics as hm
from hume_jax.report import _media as media_
from hume_jax.report import _protocol as protocol

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2329}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:32px 0 12px}h3{font-size:16px;margin:0}
.sub{color:#5b6670}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{background:#fff;border-radius:10px;padding:12px 16px;box-shadow:0 1px 3px #0002}
.stat{font-size:24px;font-weight:600}.ok{border-left:6px solid #2ca02c}.warn{border-left:6px solid #e8a317}
.classes{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
.cls{background:#fff;border-radius:10px;padding:12px 14px;box-shadow:0 1px 3px #0002;border-top:5px solid}
.bar{height:6px;border-radius:3px;margin:6px 0 8px}.lab{font-size:12px;color:#5b6670;margin:6px 0 2px}
.thumbs{display:flex;flex-wrap:wrap;gap:4px}
.thumbs img{width:56px;height:56px;object-fit:cover;border-radius:4px;image-rendering:pixelated;background:#ddd}
.doubt img{outline:2px dashed #e8a317;outline-offset:-2px}
blockquote{margin:4px 0;padding:4px 10px;border-left:3px solid #ccd;background:#f8f9fb;font-size:13px;
white-space:pre-wrap;overflow-wrap:anywhere}
.src{font-size:12px;color:#5b6670;overflow-wrap:anywhere}
table{border-collapse:collapse;background:#fff;font-size:13px}td,th{padding:4px 8px;border:1px solid #e2e5e9;
text-align:right}th{background:#eef0f3}td:first-child,th:first-child{text-align:left}
.cm td{min-width:34px;text-align:center}.cm td.diag{outline:2px solid #333;outline-offset:-2px}
.kept td{font-weight:600;background:#eef6ee}figure{margin:0;display:inline-block;vertical-align:top}
figure img{max-width:560px;background:#fff;border-radius:8px}.note{color:#8a5a00}
details{margin-top:6px}code{font-size:12px;overflow-wrap:anywhere}
"""


def colour(c: int) -> str:
  return PALETTE[c % len(PALETTE)]


def _name(view: dict, c: int) -> str:
  names = view["class_names"]
  return str(names[c]) if names and c < len(names) else f"label {c}"


def _sample(view: dict, i: int) -> str:
  """One sample: its thumbnail, its quoted text, or its source's name."""
  media = view["media"]
  if media.kind == "texts":
    return f"<blockquote>\u201c{escape(str(media.sources[i]))}\u201d</blockquote>"
  uri = media_.thumbnail(media, i)
  title = escape(f"sample {i}" + (f": {media.sources[i]}" if media.sources is not None else ""), quote=True)
  if uri is not None:
    return f'<img src="{uri}" alt="{title}" title="{title}">'
  return f'<div class="src">{title}</div>'


def _samples(view: dict, indices: np.ndarray, doubtful: bool) -> str:
  if not len(indices):
    return '<div class="src">none</div>'
  inner = "".join(_sample(view, int(i)) for i in indices)
  return inner if view["media"].kind == "texts" else f'<div class="thumbs{" doubt" if doubtful else ""}">{inner}</div>'


def _majority(view: dict, c: int) -> str:
  """With labels only, and only as a caption: the true class most members of found class ``c`` have."""
  truth, pred = view["truth"], view["pred"]
  if truth is None or not np.any(pred == c):
    return ""
  counts = np.bincount(truth[pred == c])
  return f" \u00b7 mostly <b>{escape(_name(view, int(counts.argmax())))}</b> ({100 * counts.max() / counts.sum():.0f}%)"


def class_cards(view: dict) -> str:
  """One card per found class: size, nearest other class, typical and least confident samples."""
  classes, n = view["classes"], len(view["pred"])
  biggest = max(c["size"] for c in classes) or 1
  cards = []
  for c in sorted(classes, key=lambda c: -c["size"]):
    near = (
      f"nearest other class: <b>{c['nearest']}</b> (second choice of {100 * c['share']:.0f}% of its samples)"
      if c["nearest"] is not None
      else "no other class"
    )
    cards.append(
      f'<div class="cls" style="border-top-color:{colour(c["id"])}"><h3>class {c["id"]} \u00b7 {c["size"]} '
      f"samples ({100 * c['size'] / max(n, 1):.1f}%){_majority(view, c['id'])}</h3>"
      f'<div class="bar" style="width:{100 * c["size"] / biggest:.1f}%;background:{colour(c["id"])}"></div>'
      f'<div class="src">{near}</div>'
      f'<div class="lab">most typical</div>{_samples(view, c["typical"], False)}'
      f'<div class="lab">least confident</div>{_samples(view, c["doubtful"], True)}</div>'
    )
  return '<div class="classes">' + "".join(cards) + "</div>"


def classes_section(view: dict) -> str:
  media = view["media"]
  head = (
    "<h2>The classes found</h2><p class='sub'>Largest first. Examples are chosen without labels: the most "
    "typical samples are those closest to their class's mean direction in both representations, the least "
    "confident those nearly as close to another class. "
    + ("Mentions of true classes are captions only." if view["truth"] is not None else "")
    + "</p>"
  )
  note = f"<p class='sub'>Samples: {escape(media.note)}</p>" if media.kind != "none" else ""
  if media.kind == "none":
    note = f"<p class='note'>No pictures or texts: {escape(media.note or 'no samples are recorded')}.</p>"
  if view["classes"] is None:
    sizes = view["metrics"]["splits"][view["split"]]["cluster_sizes"]
    return (
      head
      + "".join(f"<p class='note'>{escape(t)}</p>" for t in view["notes"])
      + protocol.table(["class", "samples"], [[c, s] for c, s in enumerate(sizes)])
    )
  return head + note + class_cards(view)


def labels_section(view: dict) -> str:
  """The confusion matrix (true classes by found classes, in matched order) and per-class
  precision and recall of each found class against its matched true class."""
  truth, pred = view["truth"], view["pred"]
  if truth is None:
    return "<h2>Against the labels</h2><p class='sub'>No labels were given: nothing to compare with.</p>"
  k = int(max(pred.max(), truth.max()) + 1)
  counts = hm.contingency(truth, pred, k)  # [true, found]
  to_true = hm.hungarian_map(pred, truth, k)
  order = np.argsort(to_true)
  top = max(int(counts.max()), 1)
  rows = []
  for t in range(k):
    cells = [("html", f"<b>{escape(_name(view, t))}</b>")]
    for j in order:
      c = int(counts[t, j])
      style = f"background:rgba(31,119,180,{0.85 * c / top:.2f});color:{'#fff' if c > top / 2 else '#000'}"
      diag = 'class="diag" ' if to_true[j] == t else ""
      cells.append(("td", f'{diag}style="{style}"', str(c or "")))
    rows.append(cells)
  html = protocol.table(["true \\ found"] + [f"class {j}" for j in order], rows)
  pr = []
  for j in range(int(pred.max()) + 1):
    size, real = int(counts[:, j].sum()), int(counts[to_true[j]].sum())
    hit = int(counts[to_true[j], j])
    pr.append(
      [j, _name(view, int(to_true[j])), size, f"{100 * hit / max(size, 1):.1f}", f"{100 * hit / max(real, 1):.1f}"]
    )
  acc = view["metrics"]["splits"][view["split"]].get("acc")
  return (
    "<h2>Against the labels</h2>"
    + (f"<p>Accuracy after matching each found class to one true class: <b>{100 * acc:.1f}%</b>.</p>" if acc else "")
    + f'<div class="cm">{html}</div><h3 style="margin-top:14px">Precision and recall of each found class</h3>'
    + protocol.table(["found class", "matched true class", "samples", "precision %", "recall %"], pr)
  )


def figures(view: dict) -> str:
  """The run's PNG figures (map, confusion matrix, curves), embedded."""
  shown = [
    f'<figure><img src="data:image/png;base64,{base64.b64encode(open(p, "rb").read()).decode()}" '
    f'alt="{escape(name, quote=True)}"><figcaption class="src">{escape(name)}</figcaption></figure> '
    for name, p in view["figures"].items()
    if os.path.getsize(p) < 4_000_000
  ]
  return "<h2>Figures</h2>" + "".join(shown) if shown else ""


def render(view: dict) -> str:
  """The whole page."""
  metrics, config = view["metrics"], view["config"]
  title = f"HUME report: {config.get('dataset', 'run')}"
  body = [
    protocol.header(view),
    protocol.premise_section(metrics.get("premise")),
    classes_section(view),
    labels_section(view),
    protocol.results_section(view),
    protocol.protocol_section(view),
    figures(view),
    protocol.footer(view),
  ]
  return (
    f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
    f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>'
    f"<body><main>{''.join(body)}</main></body></html>\n"
  )
