"""The documentation site builds from docs/ without a warning (``mkdocs build --strict``: broken links and anchors,
pages left out of the nav and docstrings the API pages cannot read all fail it), its API pages come from the
docstrings, and the README's links into it hold."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
  out = tmp_path_factory.mktemp("site")
  command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
  done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
  return out


def test_the_site_builds_strictly_and_documents_the_public_api(site):
  page = site / "reference" / "index.html"
  assert page.is_file(), sorted(p.name for p in site.iterdir())
  html = page.read_text()
  for name in ("fit_auto", "fit", "fit_seeds", "select_k", "HUME", "HumeConfig"):
    assert f'id="hume_jax.{name}"' in html, name
  assert (site / "reference" / "auto" / "index.html").read_text().count('id="hume_jax.search.auto.fit_auto"') == 1


def test_the_readme_links_to_files_that_exist_and_anchors_the_site_has(site):
  text = open(os.path.join(ROOT, "README.md")).read()
  links = re.findall(r"\]\(([^)#\s]+\.md)(?:#([^)\s]+))?\)", text)
  assert len(links) >= 10, links
  for path, anchor in links:
    assert os.path.isfile(os.path.join(ROOT, path)), path
    if anchor and path.startswith("docs/"):
      page = path[len("docs/") : -len(".md")]
      built = site / ("index.html" if page == "index" else os.path.join(page, "index.html"))
      assert f'id="{anchor}"' in built.read_text(), f"{path}#{anchor}"
