"""The documentation builds, its links resolve, and the tutorial notebook runs.

* ``mkdocs build --strict`` (``mkdocs.yml``: pages, nav, API reference by
  mkdocstrings; broken links and anchors between pages are errors), skipped
  when mkdocs or mkdocstrings is not installed;
* every relative link in README.md, docs/*.md and the notebook's Markdown
  cells points to an existing file;
* every code cell of docs/tutorial.ipynb runs, in order, in one namespace
  (matplotlib's Agg backend), and the notebook's code is the code shown in
  docs/tutorial.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOK = DOCS / "tutorial.ipynb"
TUTORIAL = DOCS / "tutorial.md"

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", re.I)


def _notebook_cells(kind: str) -> list[str]:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == kind]


def _markdown_sources() -> list[tuple[str, Path, str]]:
    """(label, the folder links are relative to, Markdown text) of every checked document."""
    files = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    sources = [(str(f.relative_to(ROOT)), f.parent, f.read_text(encoding="utf-8")) for f in files]
    sources += [(f"docs/tutorial.ipynb (Markdown cell {i})", DOCS, text)
                for i, text in enumerate(_notebook_cells("markdown"))]
    return sources


def relative_links(text: str) -> list[str]:
    """Targets of inline links and images outside code, without URLs and same-page anchors."""
    text = CODE_SPAN.sub("", FENCE.sub("", text))
    return [t for t in LINK.findall(text) if not EXTERNAL.match(t)]


def test_relative_links_point_to_existing_files():
    broken = []
    for label, base, text in _markdown_sources():
        for target in relative_links(text):
            path = target.split("#", 1)[0].split("?", 1)[0]
            if not (base / path).exists():
                broken.append(f"{label}: {target}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def test_link_finder_skips_code_and_urls():
    text = textwrap.dedent("""\
        [a](docs/a.md) ![img](pic.png "title") [web](https://example.org) [top](#top)
        `[no](code.md)` and [b](b.md#part)
        ```
        [no](fenced.md)
        ```
        """)
    assert relative_links(text) == ["docs/a.md", "pic.png", "b.md#part"]


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("mkdocstrings_handlers.python")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / "site" / "api" / "index.html").is_file()


_RUNNER = textwrap.dedent("""\
    import json, sys, traceback
    cells = [c for c in json.load(open(sys.argv[1], encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    namespace = {"__name__": "__main__"}
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        try:
            exec(compile(source, f"<tutorial.ipynb code cell {i}>", "exec"), namespace)
        except BaseException:
            print(f"code cell {i} failed:\\n{source}\\n", file=sys.stderr)
            traceback.print_exc()
            sys.exit(1)
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
    print(f"ran {len(cells)} code cells")
    """)


def test_tutorial_notebook_runs(tmp_path):
    pytest.importorskip("matplotlib")
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p))
    proc = subprocess.run([sys.executable, "-c", _RUNNER, str(NOTEBOOK)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "ran" in proc.stdout


def test_notebook_code_is_the_tutorials():
    shown = re.findall(r"^```python\n(.*?)^```", TUTORIAL.read_text(encoding="utf-8"), re.S | re.M)
    assert [s.rstrip("\n") for s in shown] == [c.rstrip("\n") for c in _notebook_cells("code")]
