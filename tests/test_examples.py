"""Every script in examples/ runs cleanly and prints the numbers it promises.

The scripts are started all at once (each in its own ``sys.executable``
subprocess, with this checkout first on ``PYTHONPATH``) and then checked one
test per script: exit status 0, some output, no traceback, and a few key
printed values parsed back and checked for range or against lme4's values.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))  # _teaching.py is a helper
TIMEOUT = 300  # seconds for all scripts together (each takes well under 15 s alone)
NUMBER = r"(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Run every example script concurrently; name -> completed process."""
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p))
    plots = tmp_path_factory.mktemp("plots")
    procs = {}
    for name in SCRIPTS:
        args = [sys.executable, str(EXAMPLES / name)] + ([str(plots)] if name == "plots_gallery.py" else [])
        procs[name] = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
    out = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            stderr += f"\n[test_examples] {name} timed out after {TIMEOUT} s"
        out[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    out["_plots_folder"] = plots
    return out


def value(pattern: str, text: str, group: int = 1) -> float:
    """The number captured by ``pattern`` (use NUMBER for it) in the printed text."""
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in the output"
    return float(match.group(group))


def test_every_example_is_collected():
    expected = {
        "quickstart.py", "schools_random_intercept.py", "school_varying_slopes.py",
        "cross_level_interaction.py", "growth_curves.py", "three_level.py",
        "hospital_binary_glmer.py", "crossed_random_effects.py", "power_analysis.py",
        "plots_gallery.py", "centering_contextual.py", "after_the_fit.py", "residual_correlation.py",
    }
    assert expected <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs_cleanly(runs, name):
    done = runs[name]
    assert done.returncode == 0, f"{name} exited with {done.returncode}:\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"{name} printed nothing"
    assert "Traceback" not in done.stderr, f"{name} wrote a traceback:\n{done.stderr[-3000:]}"


def test_quickstart_numbers(runs):
    out = runs["quickstart.py"].stdout
    icc = value(rf"ICC \(adjusted\):\s+{NUMBER}", out)
    assert 0 < icc < 1
    assert value(rf"ICC \(unadjusted\):\s+{NUMBER}", out) == pytest.approx(icc)


def test_schools_random_intercept_numbers(runs):
    out = runs["schools_random_intercept.py"].stdout
    icc = value(rf"ICC \(adjusted\):\s+{NUMBER}", out)
    assert 0 < icc < 1
    m = value(rf"mean cluster size m:\s+{NUMBER}", out)
    deff = value(rf"design effect:\s+{NUMBER}", out)
    assert deff == pytest.approx(1 + (m - 1) * icc, abs=2e-3)
    assert value(rf"effective sample size:\s+{NUMBER}", out) == pytest.approx(1000 / deff, abs=0.2)
    chisq = value(rf"LRT: Chisq = {NUMBER} on 1 df", out)
    assert chisq > 3.84  # ses (true slope 3) is clearly needed
    assert 0 < value(rf"R2 marginal:\s+{NUMBER}", out) < value(rf"R2 conditional:\s+{NUMBER}", out) < 1


def test_school_varying_slopes_numbers(runs):
    out = runs["school_varying_slopes.py"].stdout
    assert 1.5 < value(rf"Average payoff: {NUMBER} points per hour", out) < 2.5  # true 2
    assert 0.3 < value(rf"Slope SD between schools: {NUMBER}", out) < 1.5  # true 0.8
    p = value(rf"Slope-variance test: LRT = {NUMBER}, p = {NUMBER}", out, group=2)
    assert 0 <= p < 0.05
    small = value(rf"Median shrinkage of the slope: smallest third {NUMBER}", out)
    large = value(rf"largest third {NUMBER}", out)
    assert 0 < large < small < 1
    assert "median shrinkage per term" in out


def test_cross_level_interaction_numbers(runs):
    out = runs["cross_level_interaction.py"].stdout
    pattern = rf"Cross-level interaction: {NUMBER} \(true 0.6\), t = {NUMBER} on {NUMBER} df, p = {NUMBER}"
    match = re.search(pattern, out)
    assert match
    beta, t, df, p = map(float, match.groups())
    assert 0.3 < beta < 0.9 and t > 2 and 30 < df < 60 and p < 0.05  # df near the 50 schools
    without = value(rf"Slope variance without the interaction: {NUMBER}", out)
    with_ = value(rf"Slope variance with the interaction:\s+{NUMBER}", out)
    assert 0 < with_ < without
    share = value(rf"Share of slope variance explained by school_support: {NUMBER}", out)
    assert share == pytest.approx(1 - with_ / without, abs=0.01)
    assert 0 < share < 1


def test_growth_curves_numbers(runs):
    out = runs["growth_curves.py"].stdout
    # lme4: predict(m, data.frame(Subject = "new", Days = 9), allow.new.levels = TRUE) = 345.6107
    assert value(rf"New subject on day 9: {NUMBER} ms", out) == pytest.approx(345.6, abs=0.11)
    match = re.search(rf"Days: {NUMBER} ms/day, 95% profile CI {NUMBER} to {NUMBER}\.", out)
    assert match
    est, lo, hi = map(float, match.groups())
    # lme4: fixef 10.467; confint(m)["Days", ] = 7.358652, 13.575920
    assert est == pytest.approx(10.47, abs=0.01)
    assert lo == pytest.approx(7.36, abs=0.02) and hi == pytest.approx(13.58, abs=0.02)
    assert "day 9: 345.6 ms" in out  # the population curve (re_form="~0")


def test_three_level_numbers(runs):
    out = runs["three_level.py"].stdout
    school = value(rf"ICC \(same school, different class\):\s+{NUMBER}", out)
    same_class = value(rf"ICC \(same class\):\s+{NUMBER}", out)
    assert 0 < school < same_class < 1
    assert value(rf"ICC \(adjusted, all random effects\):\s+{NUMBER}", out) == pytest.approx(same_class, abs=1e-3)
    assert "classroom:school" in out


def test_hospital_binary_glmer_numbers(runs):
    out = runs["hospital_binary_glmer.py"].stdout
    icc = value(rf"ICC \(adjusted, latent scale\): {NUMBER}", out)
    assert 0 < icc < 1
    var_h = value(rf"hospital variance \(log-odds scale\): {NUMBER}", out)
    assert icc == pytest.approx(var_h / (var_h + 3.289868), abs=2e-3)
    assert 1.2 < value(rf"Odds ratio per decade of age: {NUMBER}", out) < 1.9  # true 1.49
    assert 1.5 < value(rf"Odds ratio for emergency surgery: {NUMBER}", out) < 3.5  # true 2.23
    p = value(rf"in a typical hospital: probability {NUMBER}", out)
    assert 0 < p < 1


def test_crossed_random_effects_numbers(runs):
    out = runs["crossed_random_effects.py"].stdout
    # lme4's Penicillin fit: plate 0.7169, sample 3.7309, residual 0.3024
    total = 0.7169 + 3.7309 + 0.3024
    assert value(rf"ICC plate: {NUMBER}", out) == pytest.approx(0.7169 / total, abs=2e-3)
    assert value(rf"ICC sample: {NUMBER}", out) == pytest.approx(3.7309 / total, abs=2e-3)
    assert "Number of obs: 15243" in out  # the InstEval subset


def test_power_analysis_numbers(runs):
    out = runs["power_analysis.py"].stdout
    assert out.count("Power to detect treatment = 4 at alpha = 0.05") == 3
    rows = re.findall(rf"^\s+(\d+)\s+(\d+)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+40\s+(\d+)\s*$", out, re.M)
    assert len(rows) == 8  # 3 + 3 group sizes, 2 pupil numbers
    for groups, per_group, power, lower, upper, failed in rows:
        assert 0 <= float(lower) <= float(power) <= float(upper) <= 1
        assert int(failed) <= 2
    assert {int(r[0]) for r in rows} == {10, 20, 40}


def test_plots_gallery_files(runs):
    out = runs["plots_gallery.py"].stdout
    if importlib.util.find_spec("matplotlib") is None:
        assert "matplotlib is not installed" in out
        return
    folder = runs["_plots_folder"]
    names = {"caterpillar.png", "shrinkage.png", "residual_diagnostics.png", "spaghetti.png", "profile.png"}
    assert names <= {p.name for p in folder.iterdir()}
    for name in names:
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Done: 5 PNG files in {folder}" in out


def test_centering_contextual_numbers(runs):
    out = runs["centering_contextual.py"].stdout
    within = value(rf"within-school effect: {NUMBER} \(truth 2\)", out)
    between = value(rf"between-school effect: {NUMBER} \(truth 5\)", out)
    contextual = value(rf"contextual effect: {NUMBER} \(SE", out)
    assert within == pytest.approx(2, abs=0.3) and between == pytest.approx(5, abs=0.8)
    assert contextual == pytest.approx(between - within, abs=2e-3)  # the same model, reparameterised
    assert value(rf"between - within from model 3: {NUMBER}", out) == pytest.approx(contextual, abs=2e-3)
    assert 2 < value(rf"slope of raw ses: {NUMBER}", out) < 5  # a blend of the two


def test_after_the_fit_numbers(runs):
    out = runs["after_the_fit.py"].stdout
    assert "Type I Analysis of Variance Table with Satterthwaite's method" in out
    early_late = re.search(r"early - late\s+" + NUMBER + r"\s+" + NUMBER, out)
    assert early_late and float(early_late.group(1)) == pytest.approx(-43.2, abs=0.1)  # mean days 2-5 minus 6-9
    assert "P value adjustment: tukey method for comparing a family of 3 estimates" in out
    risk = re.search(r"infection risk by period: \[" + NUMBER, out)
    assert risk and float(risk.group(1)) == pytest.approx(0.198, abs=0.001)  # lme4: plogis(-1.3983)
    assert re.search(r"herds\s+5 194\.05", out)
    assert value(rf"without subject 309 the slope is {NUMBER}", out) == pytest.approx(10.95, abs=0.01)  # lme4: 10.9500
    assert value(rf"largest studentized residual: {NUMBER}", out) == pytest.approx(5.53, abs=0.01)  # lme4: 5.5270
    assert "Model found:\nReaction ~ Days + (Days | Subject)" in out


def test_residual_correlation_numbers(runs):
    out = runs["residual_correlation.py"].stdout
    aic = {name: value(rf"{name}\s+df = \d+, AIC = {NUMBER}", out) for name in ("random slopes", "AR\\(1\\) residuals", "both")}
    assert aic["both"] < aic["AR\\(1\\) residuals"] < aic["random slopes"]  # simulated with slopes and AR(1)
    assert 0.4 < value(rf"both\s+df = 9, AIC = {NUMBER}, Phi = {NUMBER}", out, 2) < 0.9  # simulated φ = 0.6
    # the LRT's χ² is the difference of the ML deviances printed above it
    match = re.search(rf"slopes\s+8 .* {NUMBER}\s*\nboth\s+9 .* {NUMBER} {NUMBER}\s+1 ", out)
    assert match
    dev0, dev1, chisq = map(float, match.groups())
    assert chisq == pytest.approx(dev0 - dev1, abs=0.06)  # deviances printed to 0.1
    assert abs(value(rf"Lag-1 autocorrelation of the normalized residuals: {NUMBER}", out)) < 0.25
