"""Rich displays: inline-styled HTML that needs no notebook CSS, tables formatted as R prints them."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.report import display

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "anova"


class Elements(HTMLParser):
    """Every element's tag and style, the text of each <pre>, and the rows of cells of each table."""

    def __init__(self, markup: str):
        super().__init__()
        self.styles: list[tuple[str, str]] = []
        self.pres: list[str] = []
        self.rows: list[list[str]] = []
        self._text: list[str] | None = None
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.styles.append((tag, dict(attrs).get("style") or ""))
        if tag == "tr":
            self.rows.append([])
        if tag in ("pre", "td", "th"):
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self._text is not None:
            self.pres.append("".join(self._text))
        if tag in ("td", "th") and self._text is not None:
            self.rows[-1].append("".join(self._text))
        if tag in ("pre", "td", "th"):
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def assert_self_styled(markup: str) -> Elements:
    """Every element carries its own layout: monospace blocks, preserved spaces, no reliance on CSS."""
    found = Elements(markup)
    assert found.styles, markup
    for tag, style in found.styles:
        if tag in ("pre", "table"):
            assert "monospace" in style and "font-family" in style, (tag, style)
        if tag in ("pre", "td", "th"):
            assert "white-space: pre" in style, (tag, style)
        if tag in ("td", "th"):
            assert "text-align: " in style, (tag, style)
    return found


def r_cells(line: str, label: str) -> list[str]:
    """The cells R printed after a row label (blank cells dropped)."""
    assert line.startswith(label)
    return line[len(label):].split()


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return mm.datasets.load("sleepstudy")


def test_pre_escapes_and_styles():
    found = assert_self_styled(display.pre("a < b & c\n  x  y"))
    assert found.pres == ["a < b & c\n  x  y"]


def test_summary_and_model_display_the_printed_text(sleep):
    m = mm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    assert assert_self_styled(m._repr_html_()).pres == [str(m.summary())]
    assert assert_self_styled(m.summary()._repr_html_()).pres == [str(m.summary())]


def test_icc_report_display():
    report = mm.icc_null("Yield", "Batch", mm.datasets.load("Dyestuff"))
    assert assert_self_styled(report._repr_html_()).pres == [str(report)]


def test_anova_html_table_as_r_prints_it(sleep):
    """lme4's anova(m0, m1): Df '2' (not 2.0), p '7.072e-10' (not 7.072413e-10), stars."""
    printed = json.loads((FIXTURES / "anova.json").read_text(encoding="utf-8"))["lmer_lmer"]["printed"]
    m0 = mm.lmer("Reaction ~ Days + (1 | Subject)", sleep, REML=False)
    m1 = mm.lmer("Reaction ~ Days + (Days | Subject)", sleep, REML=False)
    found = assert_self_styled(mm.anova(m0, m1, names=["m0", "m1"])._repr_html_())
    header, first, second = found.rows
    assert [h for h in header if h] == printed[4].split()
    assert first[0] == "m0" and [c for c in first[1:] if c.strip()] == r_cells(printed[5], "m0")
    assert second[0] == "m1" and [c.strip() for c in second[1:]] == r_cells(printed[6], "m1")
    assert second[header.index("Df")] == "2" and second[header.index("Pr(>Chisq)")] == "7.072e-10"
    assert found.pres[0].splitlines()[:2] == printed[:2]  # Data:, Models: and found.pres[-1].startswith("---\nSignif. codes:")


def test_ranova_html_table_as_lmertest_prints_it(sleep):
    printed = json.loads((FIXTURES / "ranova.json").read_text(encoding="utf-8"))["slope_reml"]["printed"]
    found = assert_self_styled(mm.ranova(mm.lmer("Reaction ~ Days + (Days | Subject)", sleep))._repr_html_())
    label = "Days in (Days | Subject)"
    row = next(r for r in found.rows if r[0] == label)
    assert [c.strip() for c in row[1:]] == r_cells(printed[6], label)  # ... 42.837 2 4.99e-10 ***
    assert found.pres[0].splitlines()[0] == printed[0]


def test_type3_anova_display_has_stars(sleep):
    found = assert_self_styled(mm.lmer("Reaction ~ Days + (Days | Subject)", sleep).anova()._repr_html_())
    assert found.rows[1][0] == "Days" and found.rows[1][-1].strip() == "***"
