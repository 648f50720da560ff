"""The command line: ``mixedmodels fit FORMULA --data file.csv`` prints what the Python API computes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import mixedmodels as mm
from mixedmodels.cli import main

SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("csv")
    for name in ("sleepstudy", "cbpp"):
        mm.datasets.load(name).to_csv(d / f"{name}.csv", index=False)
    return d


def _run_json(capsys, *args: str) -> dict:
    assert main(["fit", *args, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def _assert_matches(doc: dict, fit) -> None:
    assert doc["formula"] == fit.formula
    assert doc["nobs"] == fit.nobs and doc["ngroups"] == fit.ngroups
    for key in ("objective", "loglik", "aic", "bic"):
        assert doc[key] == pytest.approx(getattr(fit, key), rel=1e-8)
    terms = [r["term"] for r in doc["fixed_effects"]]
    assert terms == list(fit.fixef.index)
    np.testing.assert_allclose([r["estimate"] for r in doc["fixed_effects"]], fit.fixef, rtol=1e-7)
    np.testing.assert_allclose([r["std_error"] for r in doc["fixed_effects"]], fit.se, rtol=1e-6)
    vc = fit.varcorr
    assert [r["group"] for r in doc["variance_components"]] == list(vc["grp"])
    np.testing.assert_allclose([r["variance"] for r in doc["variance_components"]], vc["vcov"], rtol=1e-6)
    np.testing.assert_allclose([r["sd_cor"] for r in doc["variance_components"]], vc["sdcor"], rtol=1e-6)
    assert doc["converged"] is True and doc["singular"] is False


def test_fit_json_lmer_matches_python(capsys, csv_dir):
    doc = _run_json(capsys, SLEEP, "--data", str(csv_dir / "sleepstudy.csv"))
    fit = mm.lmer(SLEEP, mm.datasets.load("sleepstudy"))
    _assert_matches(doc, fit)
    assert (doc["family"], doc["link"], doc["method"]) == ("gaussian", "identity", "REML")
    sat = fit.satterthwaite()
    fixed = doc["fixed_effects"]
    np.testing.assert_allclose([r["df"] for r in fixed], sat["df"], rtol=1e-5)
    np.testing.assert_allclose([r["statistic"] for r in fixed], sat["t value"], rtol=1e-6)
    np.testing.assert_allclose([r["p_value"] for r in fixed], sat["Pr(>|t|)"], rtol=1e-4)
    # the t statistic is estimate / SE; the p-value its two-sided t tail at the Satterthwaite df
    for r in fixed:
        assert r["statistic"] == pytest.approx(r["estimate"] / r["std_error"], rel=1e-12)
        assert r["p_value"] == pytest.approx(2 * stats.t.sf(abs(r["statistic"]), r["df"]), rel=1e-10)
    assert doc["variance_components"][2]["var2"] == "Days"  # the correlation row
    assert doc["variance_components"][0]["var2"] is None


def test_fit_json_ml(capsys, csv_dir):
    doc = _run_json(capsys, SLEEP, "--data", str(csv_dir / "sleepstudy.csv"), "--ml")
    fit = mm.lmer(SLEEP, mm.datasets.load("sleepstudy"), REML=False)
    _assert_matches(doc, fit)
    assert doc["method"] == "ML"
    assert doc["objective"] == pytest.approx(-2 * doc["loglik"], rel=1e-12)
    assert doc["aic"] == pytest.approx(doc["objective"] + 2 * 6, rel=1e-12)  # 2 β, 3 θ, σ


def test_fit_json_glmer_with_factors_and_link(capsys, csv_dir):
    path = str(csv_dir / "cbpp.csv")
    doc = _run_json(capsys, CBPP, "--data", path, "--family", "binomial", "--factors", "period,herd")
    fit = mm.glmer(CBPP, mm.datasets.load("cbpp"), family="binomial")
    _assert_matches(doc, fit)
    assert [r["term"] for r in doc["fixed_effects"]] == ["(Intercept)", "period2", "period3", "period4"]
    for r in doc["fixed_effects"]:
        assert "df" not in r
        assert r["p_value"] == pytest.approx(2 * stats.norm.sf(abs(r["estimate"] / r["std_error"])), rel=1e-8)

    probit = _run_json(capsys, CBPP, "--data", path, "--family", "binomial", "--link", "probit",
                       "--factors", "period,herd", "--nagq", "5")
    fit = mm.glmer(CBPP, mm.datasets.load("cbpp"), family=mm.families.Binomial(link="probit"), nAGQ=5)
    _assert_matches(probit, fit)
    assert probit["link"] == "probit" and "nAGQ = 5" in probit["method"]


def test_fit_prints_the_summary(capsys, csv_dir):
    assert main(["fit", SLEEP, "--data", str(csv_dir / "sleepstudy.csv")]) == 0
    out = capsys.readouterr().out
    expected = str(mm.lmer(SLEEP, mm.datasets.load("sleepstudy")).summary())
    assert out.rstrip("\n") == expected.rstrip("\n")  # the CSV's stem is the data name, as the data set's


def test_warnings_are_one_line_each_and_in_the_json(capsys, tmp_path):
    path = tmp_path / "dyestuff2.csv"
    mm.datasets.load("Dyestuff2").to_csv(path, index=False)
    assert main(["fit", "Yield ~ 1 + (1 | Batch)", "--data", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["singular"] is True and any("singular" in w for w in doc["warnings"])
    assert captured.err.startswith("mixedmodels: warning: boundary (singular) fit")


@pytest.mark.parametrize(
    "args, message",
    [
        ([SLEEP.replace("Days +", "Dayz +"), "--data", "{dir}/sleepstudy.csv"], "'Dayz' in the formula is not a column"),
        (["Reaction ~ Days + (Days | Subject", "--data", "{dir}/sleepstudy.csv"], "'(' is never closed"),
        ([SLEEP, "--data", "{dir}/missing.csv"], "no such file"),
        ([SLEEP, "--data", "{dir}/sleepstudy.csv", "--factors", "Day"], "--factors: 'Day' is not a column"),
        ([SLEEP, "--data", "{dir}/sleepstudy.csv", "--family", "binomal"], "Did you mean 'binomial'"),
        ([SLEEP, "--data", "{dir}/sleepstudy.csv", "--link", "probit"], "give --family too"),
        ([CBPP, "--data", "{dir}/cbpp.csv", "--family", "binomial", "--ml"], "--ml applies to linear"),
        (["Reaction ~ Days + __import__('os').getpid() + (1 | Subject)", "--data", "{dir}/sleepstudy.csv"],
         "dunder"),
    ],
)
def test_errors_are_one_line_with_status_2(capsys, csv_dir, args, message):
    assert main(["fit", *[a.format(dir=csv_dir) for a in args]]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("mixedmodels: error: ")
    assert message in captured.err
    assert "Traceback" not in captured.err


def test_unsafe_allows_python_expressions_in_formulas(capsys, csv_dir):
    formula = "Reaction ~ I(Days > 4) + (1 | Subject)"
    assert main(["fit", formula, "--data", str(csv_dir / "sleepstudy.csv")]) == 2
    assert "mixedmodels: error: " in capsys.readouterr().err
    doc = _run_json(capsys, formula, "--data", str(csv_dir / "sleepstudy.csv"), "--unsafe")
    assert doc["nobs"] == 180


def test_help_explains_options_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--data", "--family", "--link", "--ml", "--nagq", "--json", "--factors", "examples:"):
        assert option in out
    assert 'mixedmodels fit "Reaction ~ Days + (Days | Subject)" --data sleepstudy.csv' in out


def test_python_dash_m(csv_dir):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(mm.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "mixedmodels", "fit", SLEEP, "--data", str(csv_dir / "sleepstudy.csv"), "--json"],
        capture_output=True, text=True, env=env, check=False,
    )
    assert done.returncode == 0, done.stderr
    _assert_matches(json.loads(done.stdout), mm.lmer(SLEEP, mm.datasets.load("sleepstudy")))
