"""mkdocs hooks: the benchmark figures (benchmarks/README.md and benchmarks/LOG.md) are pages of the site too.

The pages under docs/ link to them as ``../benchmarks/README.md``, and they link back as ``../docs/PAGE.md``:
relative links that work on a code host. Registering the two files under that name lets the site resolve and check
those links and their anchors, and their links back into docs/ are read relative to the docs folder.
"""

import os

from mkdocs.structure.files import File, InclusionLevel

OUTSIDE = {"benchmarks/README.md": "benchmarks/current/", "benchmarks/LOG.md": "benchmarks/log/"}


def on_files(files, config):
  root = os.path.dirname(config.config_file_path)
  for path, url in OUTSIDE.items():
    page = File.generated(
      config, f"../{path}", abs_src_path=os.path.join(root, path), inclusion=InclusionLevel.INCLUDED
    )
    page.dest_uri, page.url = f"{url}index.html", url
    files.append(page)
  return files


def on_page_markdown(markdown, page, config, files):
  if page.file.src_uri.startswith("../"):
    return markdown.replace("](../docs/", "](/")
  return markdown
