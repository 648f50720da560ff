"""The printed summary against the text lme4/lmerTest print for the same model.

The fixtures are R's own output (tests/fixtures/summary/make_summary.R).  Lines are
compared token by token from the ``Formula:`` line on: words must be equal, numbers equal
to the precision R printed (LMM) or present in the same places (GLMM, whose Laplace
deviance differs from lme4's in the last digits: see docs/lme4-translation.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mixedmodels as mm
from mixedmodels.report.summary import Summary

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "summary"
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$")


def body(text: str) -> list[list[str]]:
    """Whitespace-split lines from 'Formula:' on, R's typographic quotes made plain."""
    lines = text.replace("\u2018", "'").replace("\u2019", "'").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Formula:"))
    return [line.split() for line in lines[start:] if line.strip()]


def compare(ours: str, r: str, rel: float | None) -> None:
    mine, theirs = body(ours), body(r)
    assert len(mine) == len(theirs), "\n".join(" ".join(x) for x in mine)
    for a, b in zip(mine, theirs):
        assert len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            if NUMBER.match(y):
                assert NUMBER.match(x), (x, y, a)
                if rel is not None:
                    assert float(x) == pytest.approx(float(y), rel=rel, abs=1.5e-3), (a, b)
            else:
                assert x == y, (a, b)


def test_lmer_summary_prints_as_lmertest():
    m = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))
    summary = m.summary()
    assert isinstance(summary, Summary)
    text = str(summary)
    assert text.startswith("Linear mixed model fit by REML. t-tests use Satterthwaite's method")
    compare(text, (FIXTURES / "sleepstudy_lmertest.txt").read_text(encoding="utf-8"), rel=2e-4)


def test_glmer_summary_has_lme4s_layout():
    cbpp = mm.datasets.load("cbpp")
    g = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    text = str(g.summary())
    # R wraps the title at 80 characters, and then shows the class without quotes
    assert text.startswith("Generalized linear mixed model fit by maximum likelihood (Laplace\n  Approximation) [glmerMod]\n")
    compare(text, (FIXTURES / "cbpp_glmer.txt").read_text(encoding="utf-8"), rel=None)


def test_summary_without_pvalues_is_lme4s_table():
    m = mm.lmer("Reaction ~ Days + (1 | Subject)", mm.datasets.load("sleepstudy"))
    text = str(m.summary(ddf="lme4"))
    assert "Pr(>|t|)" not in text and "Estimate Std. Error t value" in text
