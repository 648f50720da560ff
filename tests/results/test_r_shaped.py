"""Results shaped as R's: anova tables as DataFrames, R's argument abbreviations, lme4's limits
and scale warning, printCoefmat's p-values, the Offset line (values from R: tests/fixtures/r_shaped)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedmodels as mm
from mixedmodels.report.summary import fixed_effects_block
from mixedmodels.report.tables import VarCorr

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "r_shaped"
REF = json.loads((HERE / "r_shaped.json").read_text())
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return mm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def slope(sleep: pd.DataFrame) -> mm.LmerResult:
    return mm.lmer("Reaction ~ Days + (Days | Subject)", sleep)


@pytest.fixture(scope="module")
def cbpp() -> mm.GlmerResult:
    return mm.glmer(CBPP, mm.datasets.load("cbpp"), family="binomial")


def test_anova_is_a_dataframe_that_prints_as_r(sleep: pd.DataFrame, slope: mm.LmerResult) -> None:
    m0 = mm.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    with pytest.warns(mm.RefitWarning):
        table = mm.anova(m0, slope)
    assert isinstance(table, pd.DataFrame)
    p = table["Pr(>Chisq)"]  # R: anova(m0, m1)$`Pr(>Chisq)`
    assert np.isnan(p.iloc[0]) and p.iloc[1] == pytest.approx(7.072e-10, rel=1e-3)
    assert table.loc[table.index[1], "Chisq"] == pytest.approx(42.139, abs=5e-4)
    assert str(table).startswith("Data: sleepstudy\nModels:") or str(table).startswith("Models:")
    assert "Pr(>Chisq)" in str(table) and "7.072e-10 ***" in str(table)
    html = table._repr_html_()
    assert html.startswith("<pre") and "<table" in html and "Data: sleepstudy" in html
    part = table.iloc[1:]  # derived frames keep the heading and the models
    assert isinstance(part, mm.AnovaTable) and part.heading == table.heading and part.models == table.models
    assert type(table.table) is pd.DataFrame


def test_r_abbreviations_of_ddf_and_type(slope: mm.LmerResult) -> None:
    full = slope.summary().coefficients
    pd.testing.assert_frame_equal(slope.summary(ddf="Sat").coefficients, full)
    assert str(slope.summary(ddf="Kenward")).count("Kenward-Roger's method") == 1
    for kind in (3, "3", "III"):
        pd.testing.assert_frame_equal(slope.anova(type=kind).table, slope.anova().table)
    assert "Kenward-Roger" in str(slope.anova(ddf="K"))
    pd.testing.assert_frame_equal(slope.anova(type="II").table, slope.anova(type=2).table)
    with pytest.raises(mm.MixedModelsError, match="type must be one of"):
        slope.anova(type=4)
    with pytest.raises(mm.MixedModelsError, match="ddf must be one of"):
        slope.summary(ddf="Wald")


def test_nagq_above_lme4s_limit_is_refused() -> None:
    data = mm.datasets.load("cbpp")
    with pytest.raises(mm.FamilyError, match="nAGQ = 101 is above lme4's limit of 100"):
        mm.glmer(CBPP, data, family="binomial", nAGQ=101)
    assert mm.glmer(CBPP, data, family="binomial", nAGQ=100).nAGQ == 100


@pytest.mark.parametrize("factor, warns", [(300.0, False), (400.0, True), (1e-4, True)])
def test_scale_warning_as_lme4(sleep: pd.DataFrame, factor: float, warns: bool) -> None:
    """lme4's checkScaleX: SD(Days) = 2.87, so Days·400 (SD 1149 > 1000) and Days·1e-4 warn."""
    data = sleep.assign(Days=sleep["Days"] * factor)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mm.lmer("Reaction ~ Days + (1 | Subject)", data)
    messages = [str(w.message) for w in caught if "different scales" in str(w.message)]
    assert bool(messages) == warns
    if warns:
        assert messages[0].startswith("Some predictor variables are on very different scales: consider rescaling")
        assert "'Days'" in messages[0]


def test_zero_one_columns_do_not_count_for_the_scale_check(sleep: pd.DataFrame) -> None:
    data = sleep.assign(late=(sleep["Days"] > 4).astype(float), big=sleep["Days"] * 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", mm.MixedModelsWarning)
        mm.lmer("Reaction ~ late + big + (1 | Subject)", data)


def test_glmm_pvalues_as_printcoefmat() -> None:
    """R's summary(gm): '1.47e-09', '0.001068', '0.000474', '0.000182' (lme4's SEs)."""
    table = pd.DataFrame({"Estimate": [-1.3983, -0.9919, -1.1282, -1.5797], "Std. Error": [0.2312, 0.3032, 0.3228, 0.4220],
                          "z value": [-6.048, -3.272, -3.495, -3.743],
                          "Pr(>|z|)": [1.46811288411447e-09, 0.00106769560037947, 0.000474475493714369, 0.000181809798518987]},
                         index=["(Intercept)", "period2", "period3", "period4"])
    block = fixed_effects_block(table)
    expected = [line for line in REF["summary_glmer"].splitlines() if line.startswith(("(Intercept)  ", "period"))][:4]
    assert block.splitlines()[2:6] == [line.rstrip() for line in expected]


def test_offset_line_only_for_an_offset_argument() -> None:
    rng = np.random.default_rng(1)
    data = pd.DataFrame({"g": np.repeat(np.arange(10), 10), "exposure": rng.uniform(1, 3, 100)})
    data["y"] = rng.poisson(data["exposure"] * 2.0)
    data["log_exposure"] = np.log(data["exposure"])
    in_formula = mm.glmer("y ~ 1 + offset(log_exposure) + (1 | g)", data, family="poisson")
    as_argument = mm.glmer("y ~ 1 + (1 | g)", data, family="poisson", offset="log_exposure")
    assert "Offset:" not in str(in_formula.summary())
    assert " Offset: (offset given)" in str(as_argument.summary())


def test_glmer_scaled_residuals_are_lme4s_deviance_residuals(cbpp: mm.GlmerResult) -> None:
    """lme4's residuals(gm, scaled = TRUE): deviance residuals / sigma (1 for binomial)."""
    np.testing.assert_allclose(cbpp.scaled_residuals().to_numpy()[:10], REF["scaled_residuals_glmer"], atol=1e-3)  # the modes differ by lme4's PIRLS
    pd.testing.assert_series_equal(cbpp.scaled_residuals(), cbpp.residuals / cbpp.sigma, check_names=False)
    pearson = cbpp.scaled_residuals("pearson")
    assert pearson.iloc[0] == pytest.approx(cbpp.residuals_of("pearson").iloc[0])


def _r_varcorr(name: str) -> VarCorr:
    """R's as.data.frame(VarCorr(m)) rows (jsonlite leaves NA names out)."""
    frame = pd.DataFrame(REF[name], columns=["grp", "var1", "var2", "vcov", "sdcor"])
    return VarCorr(frame.astype({"var1": "str", "var2": "str"}))


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in str(text).rstrip("\n").splitlines()]


@pytest.mark.parametrize("name", ["varcorr_lmer", "varcorr_lmer_uncorrelated", "varcorr_glmer"])
def test_varcorr_prints_as_r(name: str) -> None:
    """R's numbers through the package's VarCorr give R's print(VarCorr(m)) exactly."""
    assert _lines(_r_varcorr(f"{name}_df")) == _lines(REF[name])


def _same_print(ours: object, theirs: str, rel: float) -> None:
    """Line by line: the same words and layout (line lengths), numbers within ``rel``."""
    a, b = _lines(ours), _lines(theirs)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x) == len(y), (x, y)
        for s, t in zip(x.split(), y.split()):
            try:
                assert float(s) == pytest.approx(float(t), rel=rel, abs=1e-3), (x, y)
            except ValueError:
                assert s == t, (x, y)


def test_print_is_print_mermod(sleep: pd.DataFrame, slope: mm.LmerResult, cbpp: mm.GlmerResult) -> None:
    """print(m) as R prints lmerTest's and lme4's fits (numbers as the fits agree: lme4's
    nloptwrap stops 2e-4 from the REML optimum of θ; cbpp's Laplace differs, see lme4-translation)."""
    _same_print(slope, REF["print_lmer"], 1e-4)
    assert repr(slope) == str(slope)
    _same_print(mm.lmer("Reaction ~ Days + (Days | Subject)", sleep, REML=False), REF["print_lmer_ml"], 1e-4)
    _same_print(mm.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep),
                REF["print_lmer_uncorrelated"], 1e-4)
    _same_print(cbpp, REF["print_glmer"], 1e-3)
    _same_print(cbpp.varcorr, REF["varcorr_glmer"], 1e-3)


def test_varcorr_is_as_data_frame_of_varcorr(slope: mm.LmerResult) -> None:
    vc = slope.varcorr
    r = _r_varcorr("varcorr_lmer_df")
    assert isinstance(vc, pd.DataFrame) and list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    pd.testing.assert_frame_equal(vc.table[["grp", "var1", "var2"]], r.table[["grp", "var1", "var2"]])
    np.testing.assert_allclose(vc["sdcor"], r["sdcor"], rtol=1e-4)
    # one missing marker: NaN in every column, as R's NA
    assert vc["var2"].isna().sum() == 3 and vc["var1"].isna().sum() == 1
    assert type(vc[vc["grp"] == "Subject"]) is pd.DataFrame


def test_coef_puts_the_intercept_first(sleep: pd.DataFrame, slope: mm.LmerResult) -> None:
    assert list(slope.coef["Subject"].columns) == REF["coef_lmer_columns"]
    np.testing.assert_allclose(slope.coef["Subject"].iloc[0], REF["coef_lmer_first"], rtol=2e-4)
    no_fixed_intercept = mm.lmer("Reaction ~ 0 + Days + (Days | Subject)", sleep)
    assert list(no_fixed_intercept.coef["Subject"].columns) == ["(Intercept)", "Days"]


def test_tidy_has_broom_mixeds_df_and_pvalue(slope: mm.LmerResult, cbpp: mm.GlmerResult) -> None:
    for fit, name in ((slope, "tidy_lmer"), (cbpp, "tidy_glmer")):
        ours, theirs = fit.tidy("fixed"), pd.DataFrame(REF[name])
        assert list(ours.columns) == list(theirs.columns)
        assert list(ours["term"]) == list(theirs["term"])
    theirs = pd.DataFrame(REF["tidy_lmer"])
    for column in theirs.columns[2:]:
        np.testing.assert_allclose(slope.tidy("fixed")[column], theirs[column], rtol=1e-3)
    ours = cbpp.tidy("fixed")  # the SEs differ from lme4's by its Laplace deviance (see lme4-translation.md)
    np.testing.assert_allclose(ours["estimate"], pd.DataFrame(REF["tidy_glmer"])["estimate"], rtol=1e-3)
    np.testing.assert_allclose(ours["p.value"], 2 * stats.norm.sf(np.abs(ours["statistic"])), rtol=1e-12)
