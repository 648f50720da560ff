"""HTML for Jupyter's rich display that needs no notebook CSS.

JupyterLab, the classic notebook and nbconvert's ``lab`` and ``classic`` HTML templates
style ``<pre>`` and ``<table>`` differently (the lab export sets output in a proportional
font, centres tables and stripes their rows), so every element carries its layout in an
inline ``style``: a monospace font, preserved white space, left alignment, no wrapping;
columns of numbers right-aligned, as R prints them.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

MONOSPACE = ("font-family: SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', 'Liberation Mono', "
             "'Courier New', monospace; font-size: 12px; line-height: 1.35")
PRE_STYLE = (f"{MONOSPACE}; white-space: pre; overflow-x: auto; text-align: left; margin: 0 0 0.5em 0; "
             "padding: 0; border: none; background: transparent; color: inherit")
TABLE_STYLE = (f"{MONOSPACE}; border-collapse: collapse; border: none; table-layout: auto; width: auto; "
               "margin: 0 0 0.5em 0; background: transparent; color: inherit")
PLAIN = "border: none; background: transparent"  # no stripes or rules from the front end's CSS
CELL_STYLE = f"{PLAIN}; white-space: pre; vertical-align: top"


def pre(text: str) -> str:
    """``text`` as a monospaced block that keeps its columns in every Jupyter front end."""
    return f'<pre style="{PRE_STYLE}">{html.escape(text)}</pre>'


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> str:
    """Cells already formatted (as R prints them) in an HTML table; ``align`` is 'l' or 'r' per column.

    Rows, header and cells are unstriped and unruled, columns one space apart, as in R's console.
    """
    def cell(tag: str, text: str, a: str, first: bool) -> str:
        side = "left" if a == "l" else "right"
        pad = "0" if first else "0 0 0 1ch"
        return (f'<{tag} style="{CELL_STYLE}; padding: {pad}; text-align: {side}; font-weight: normal">'
                f"{html.escape(text)}</{tag}>")

    def row(tag: str, cells: Sequence[str]) -> str:
        return (f'<tr style="{PLAIN}">' + "".join(cell(tag, c, a, k == 0) for k, (c, a) in enumerate(zip(cells, align)))
                + "</tr>")

    body = "".join(row("td", r) for r in rows)
    return (f'<table style="{TABLE_STYLE}"><thead style="{PLAIN}">{row("th", header)}</thead>'
            f'<tbody style="{PLAIN}">{body}</tbody></table>')
