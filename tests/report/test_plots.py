"""mixedmodels.report.plots: every plot renders to a PNG and draws the right numbers."""

from __future__ import annotations

import importlib
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

import mixedmodels as mm  # noqa: E402
from mixedmodels import plots  # noqa: E402

Z95 = stats.norm.ppf(0.975)

# lme4 1.1-31: confint(fit, method = "profile") (as in test_profile.py)
LME4_PROFILE_SLEEPSTUDY = {
    "sd_(Intercept)|Subject": (14.38141816, 37.71599532),
    "sd_Days|Subject": (3.80116405, 8.75338075),
    "cor_Days.(Intercept)|Subject": (-0.48150076, 0.68498627),
    "sigma": (22.89826688, 28.85799651),
    "(Intercept)": (237.68069551, 265.12951468),
    "Days": (7.35865328, 13.57591875),
}
LME4_PROFILE_DYESTUFF_SIGMA = (38.229985, 67.657696)


@pytest.fixture(scope="module")
def sleep():
    return mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def dyestuff():
    return mm.lmer("Yield ~ 1 + (1 | Batch)", mm.datasets.load("Dyestuff"))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def assert_png(fig, tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=60)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 3000


def artist(ax, gid: str):
    found = [a for a in [*ax.lines, *ax.collections] if a.get_gid() == gid]
    assert len(found) == 1, f"{len(found)} artists with gid {gid!r}"
    return found[0]


def artists(ax, gid: str) -> list:
    return [a for a in [*ax.lines, *ax.collections] if a.get_gid() == gid]


# ----- caterpillar ---------------------------------------------------------------------
def test_caterpillar_plots_sorted_modes_with_intervals(sleep, tmp_path):
    fig = plots.caterpillar(sleep)
    assert_png(fig, tmp_path, "caterpillar")
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["(Intercept)", "Days"]
    modes, sds = sleep.ranef["Subject"], sleep.ranef_sd["Subject"]
    order = np.argsort(modes["(Intercept)"].to_numpy())
    for a, term in zip(axes, ["(Intercept)", "Days"]):
        points = artist(a, "modes")
        m, s = modes[term].to_numpy()[order], sds[term].to_numpy()[order]
        np.testing.assert_allclose(points.get_xdata(), m)
        np.testing.assert_array_equal(points.get_ydata(), np.arange(18))
        segments = artist(a, "intervals").get_segments()
        np.testing.assert_allclose([seg[0, 0] for seg in segments], m - Z95 * s)
        np.testing.assert_allclose([seg[1, 0] for seg in segments], m + Z95 * s)
    np.testing.assert_allclose(artist(axes[0], "modes").get_xdata(), np.sort(modes["(Intercept)"]))
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels == [str(v) for v in modes.index[order]]


def test_caterpillar_one_term_and_level(sleep):
    fig = plots.caterpillar(sleep, group="Subject", term="Days", level=0.5)
    (ax,) = fig.axes
    m = np.sort(sleep.ranef["Subject"]["Days"].to_numpy())
    np.testing.assert_allclose(artist(ax, "modes").get_xdata(), m)
    seg = artist(ax, "intervals").get_segments()
    widths = np.array([s[1, 0] - s[0, 0] for s in seg])
    sd = sleep.ranef_sd["Subject"]["Days"].to_numpy()[np.argsort(sleep.ranef["Subject"]["Days"].to_numpy())]
    np.testing.assert_allclose(widths, 2 * stats.norm.ppf(0.75) * sd)


def test_caterpillar_draws_into_given_axes_and_checks_their_number(sleep):
    fig, axes = plt.subplots(1, 2)
    assert plots.caterpillar(sleep, ax=axes) is fig
    with pytest.raises(ValueError, match="2 panel"):
        plots.caterpillar(sleep, ax=axes[0])
    with pytest.raises(ValueError, match="no grouping factor 'Batch'.*'Subject'"):
        plots.caterpillar(sleep, group="Batch")
    with pytest.raises(ValueError, match="no random-effect term 'x'"):
        plots.caterpillar(sleep, term="x")


# ----- shrinkage -----------------------------------------------------------------------
def test_shrinkage_2d_arrows_from_no_pooling_to_coef(sleep, tmp_path):
    fig = plots.shrinkage(sleep)
    assert_png(fig, tmp_path, "shrinkage2d")
    (ax,) = fig.axes
    coef = sleep.coef["Subject"]
    partial = artist(ax, "partial_pool")
    np.testing.assert_allclose(partial.get_xdata(), coef["(Intercept)"])
    np.testing.assert_allclose(partial.get_ydata(), coef["Days"])
    data = sleep.design.frame
    ols = np.array([np.polyfit(g["Days"], g["Reaction"], 1)[::-1] for _, g in data.groupby("Subject", observed=True)])
    nopool = artist(ax, "no_pool")
    np.testing.assert_allclose(nopool.get_xdata(), ols[:, 0], rtol=1e-10)
    np.testing.assert_allclose(nopool.get_ydata(), ols[:, 1], rtol=1e-10)
    population = artist(ax, "population")
    np.testing.assert_allclose([population.get_xdata()[0], population.get_ydata()[0]], sleep.fixef)
    arrows = artist(ax, "arrows")
    np.testing.assert_allclose(arrows.X + arrows.U, coef["(Intercept)"])
    np.testing.assert_allclose(arrows.Y + arrows.V, coef["Days"])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("(Intercept)", "Days")
    # the contours of the random-effects distribution are centred on the population
    for ellipse in artists(ax, "ellipse"):
        assert np.mean(ellipse.get_xdata()[:-1]) == pytest.approx(sleep.fixef.iloc[0], abs=1e-6)


def test_shrinkage_1d_for_a_random_intercept(dyestuff, tmp_path):
    fig = plots.shrinkage(dyestuff)
    assert_png(fig, tmp_path, "shrinkage1d")
    (ax,) = fig.axes
    means = dyestuff.design.frame.groupby("Batch", observed=True)["Yield"].mean()
    nopool, partial = artist(ax, "no_pool"), artist(ax, "partial_pool")
    np.testing.assert_allclose(nopool.get_ydata(), means.to_numpy())
    np.testing.assert_array_equal(nopool.get_xdata(), 0.0)
    np.testing.assert_allclose(partial.get_ydata(), dyestuff.coef["Batch"]["(Intercept)"])
    np.testing.assert_array_equal(partial.get_xdata(), 1.0)
    np.testing.assert_allclose(artist(ax, "population").get_ydata(), dyestuff.fixef.iloc[0])
    segments = artist(ax, "shrinkage_lines").get_segments()
    np.testing.assert_allclose([s[0, 1] for s in segments], means.to_numpy())
    np.testing.assert_allclose([s[1, 1] for s in segments], dyestuff.coef["Batch"]["(Intercept)"])
    # partial pooling pulls every batch towards the population mean
    mu = dyestuff.fixef.iloc[0]
    assert np.all(np.abs(partial.get_ydata() - mu) <= np.abs(nopool.get_ydata() - mu) + 1e-9)


def test_shrinkage_one_term_of_a_slope_model_and_glmer_refused(sleep):
    fig = plots.shrinkage(sleep, terms="Days")
    np.testing.assert_allclose(artist(fig.axes[0], "partial_pool").get_ydata(), sleep.coef["Subject"]["Days"])
    glmm = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                    family="binomial")
    with pytest.raises(ValueError, match="lmer"):
        plots.shrinkage(glmm)
    # plots that need no least squares work for GLMMs
    assert len(plots.caterpillar(glmm).axes) == 1
    assert len(plots.residual_diagnostics(glmm).axes) == 3


# ----- residual diagnostics ----------------------------------------------------------------
def test_residual_diagnostics_panels_and_values(sleep, tmp_path):
    fig = plots.residual_diagnostics(sleep)
    assert_png(fig, tmp_path, "residuals")
    axes = fig.axes
    assert len(axes) == 4
    res = artist(axes[0], "residuals")
    np.testing.assert_allclose(res.get_xdata(), sleep.fitted)
    np.testing.assert_allclose(res.get_ydata(), sleep.residuals)
    qq = artist(axes[1], "qq_residuals")
    scaled = np.sort(sleep.scaled_residuals().to_numpy())
    np.testing.assert_allclose(qq.get_ydata(), scaled)
    np.testing.assert_allclose(qq.get_xdata(), stats.probplot(scaled)[0][0])
    for a, term in zip(axes[2:], ["(Intercept)", "Days"]):
        line = artist(a, f"qq_ranef:Subject:{term}")
        np.testing.assert_allclose(line.get_ydata(), np.sort(sleep.ranef["Subject"][term]))
        assert term in a.get_title()


def test_residual_diagnostics_grid_grows_with_terms(tmp_path):
    fit = mm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", mm.datasets.load("Penicillin"))
    fig = plots.residual_diagnostics(fit)
    assert [a.get_title() for a in fig.axes][2:] == ["Normal Q-Q: plate (Intercept)", "Normal Q-Q: sample (Intercept)"]
    fig2 = plt.figure()
    assert plots.residual_diagnostics(fit, fig=fig2) is fig2
    assert len(fig2.axes) == 4


# ----- spaghetti -------------------------------------------------------------------------
def test_spaghetti_population_line_and_group_curves(sleep, tmp_path):
    fig = plots.spaghetti(sleep, "Days")
    assert_png(fig, tmp_path, "spaghetti")
    (ax,) = fig.axes
    pop = artist(ax, "population")
    np.testing.assert_allclose(pop.get_xdata(), np.linspace(0, 9, 101))
    np.testing.assert_allclose(pop.get_ydata(), sleep.fixef.iloc[0] + sleep.fixef.iloc[1] * np.linspace(0, 9, 101))
    assert pop.get_label() == "population (fixed effects, random effects 0)"  # no other covariates
    assert pop.get_linewidth() > max(a.get_linewidth() for a in ax.lines if a.get_gid().startswith("fitted:"))
    assert len([a for a in ax.lines if a.get_gid().startswith("fitted:")]) == 18
    rows = sleep.design.frame["Subject"] == "308"
    line = artist(ax, "fitted:308")
    np.testing.assert_allclose(line.get_xdata(), sleep.design.frame.loc[rows, "Days"])
    np.testing.assert_allclose(line.get_ydata(), sleep.fitted[rows])
    observed = artist(ax, "observed:308")
    np.testing.assert_allclose(observed.get_ydata(), sleep.design.frame.loc[rows, "Reaction"])
    assert observed.get_alpha() < 0.5


@pytest.fixture(scope="module")
def schools() -> pd.DataFrame:
    """Students in schools whose SES and school support are correlated, with a categorical sex."""
    rng = np.random.default_rng(19)
    school = np.repeat(np.arange(30), 20)
    support = rng.normal(0, 1, 30)
    ses = (support[school] + rng.normal(0, 1, school.size)).round(1)  # few distinct values, many rows each
    sex = rng.choice(["girl", "boy"], school.size)
    score = (50 + 2 * support[school] + rng.normal(0, 3, 30)[school]
             + (3 + support[school] + rng.normal(0, 1, 30)[school]) * ses
             + 4 * (sex == "girl") + rng.normal(0, 5, school.size))
    return pd.DataFrame({"school": school, "ses": ses, "support": support[school], "sex": sex, "score": score})


def test_spaghetti_population_line_is_the_fixed_effects_at_typical_covariates(schools):
    """The line is monotone where the model is linear in x (issue 19: it was jagged, averaging rows)."""
    before = schools.copy()
    fit = mm.lmer("score ~ ses * support + sex + (ses | school)", schools)
    ax = plots.spaghetti(fit, "ses", n=6).axes[0]
    pop = artist(ax, "population")
    x, y = np.asarray(pop.get_xdata()), np.asarray(pop.get_ydata())
    np.testing.assert_allclose(x, np.linspace(schools["ses"].min(), schools["ses"].max(), 101))
    assert np.all(np.diff(y) > 0)  # the slope at mean support, 3 + 1 × mean(support) > 0
    b, s_bar = fit.fixef, schools["support"].mean()
    np.testing.assert_allclose(y, b["(Intercept)"] + b["support"] * s_bar  # sex at its reference, boy
                               + (b["ses"] + b["ses:support"] * s_bar) * x, rtol=1e-10)
    assert f"support = {s_bar:.3g} (mean)" in pop.get_label() and "sex = boy (reference)" in pop.get_label()
    assert "score" not in pop.get_label() and "school" not in pop.get_label()
    averaged = fit.predict(re_form="~0").groupby(schools["ses"].to_numpy()).mean()
    assert np.any(np.diff(averaged.to_numpy()) < 0)  # the old row-averaged line was not monotone
    pd.testing.assert_frame_equal(schools, before)


def test_population_grid_typical_values():
    frame = pd.DataFrame({"x": [1.0, 3.0, 2.0], "z": [1.0, 2.0, 6.0], "f": pd.Categorical(["b", "a", "b"]),
                          "s": ["v", "u", "v"], "flag": [True, False, True], "g": ["1", "2", "3"]})
    grid, held = plots.population_grid(frame, "x", exclude={"g"}, npoints=5)
    np.testing.assert_allclose(grid["x"], [1.0, 1.5, 2.0, 2.5, 3.0])
    assert list(grid.columns) == ["x", "z", "f", "s", "flag"]
    assert (grid["z"] == 3.0).all() and (grid["f"] == "a").all() and (grid["s"] == "u").all()
    assert not grid["flag"].any() and grid["f"].dtype == frame["f"].dtype
    assert held == "z = 3 (mean), f = a (reference), s = u (reference), flag = False (reference)"
    grid, _ = plots.population_grid(frame, "f")
    assert list(grid["f"]) == ["a", "b"]


def test_spaghetti_subsets_and_errors(sleep):
    ax = plots.spaghetti(sleep, "Days", n=5).axes[0]
    assert len([a for a in ax.lines if a.get_gid().startswith("fitted:")]) == 5
    ax = plots.spaghetti(sleep, "Days", levels=["309", "310"]).axes[0]
    assert sorted(a.get_gid() for a in ax.lines if a.get_gid().startswith("fitted:")) == ["fitted:309", "fitted:310"]
    with pytest.raises(ValueError, match="'Reaction', 'Days', 'Subject'"):
        plots.spaghetti(sleep, "Hours")
    with pytest.raises(ValueError, match="no level"):
        plots.spaghetti(sleep, "Days", levels=["999"])


# ----- profile ---------------------------------------------------------------------------
def crossings(line) -> tuple[float, float]:
    """Where the plotted ζ (increasing) reaches ∓z, by linear interpolation."""
    v, zeta = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert np.all(np.diff(zeta) > 0)
    return float(np.interp(-Z95, zeta, v)), float(np.interp(Z95, zeta, v))


def test_profile_plot_zeta_crosses_z_at_the_profile_limits(sleep, tmp_path):
    fig = plots.profile_plot(sleep)
    assert_png(fig, tmp_path, "profile")
    names = list(sleep.parameters().index)
    assert [a.get_title() for a in fig.axes] == names
    estimates = sleep.refit_ml().parameters()
    for a, name in zip(fig.axes, names):
        line = artist(a, "zeta")
        lo, hi = LME4_PROFILE_SLEEPSTUDY[name]
        width = hi - lo
        got_lo, got_hi = crossings(line)
        assert got_lo == pytest.approx(lo, abs=0.01 * width), name
        assert got_hi == pytest.approx(hi, abs=0.01 * width), name
        # ζ = 0 at the ML estimate, and the grid reaches beyond both limits
        assert np.interp(0.0, line.get_ydata(), line.get_xdata()) == pytest.approx(estimates[name], abs=1e-3 * width)
        assert min(line.get_xdata()) < lo and max(line.get_xdata()) > hi
        assert sorted(ln.get_ydata()[0] for ln in artists(a, "zcrit")) == pytest.approx([-Z95, Z95])


def test_profile_plot_subset_dyestuff(dyestuff):
    fig = plots.profile_plot(dyestuff, which="sigma", npoints=5)
    (ax,) = fig.axes
    lo, hi = LME4_PROFILE_DYESTUFF_SIGMA
    got = crossings(artist(ax, "zeta"))
    assert got == pytest.approx((lo, hi), abs=0.01 * (hi - lo))
    with pytest.raises(ValueError, match="no parameter 'tau'"):
        plots.profile_plot(dyestuff, which="tau")


# ----- import guards ---------------------------------------------------------------------
def test_missing_matplotlib_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "mixedmodels.report.plots")
    with pytest.raises(ImportError, match=r'pip install "mixedmodels\[plot\]"'):
        importlib.import_module("mixedmodels.report.plots")


def test_importing_mixedmodels_does_not_import_matplotlib():
    code = "import sys, mixedmodels; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_acf_plot_draws_the_autocorrelations_and_nlmes_bounds():
    fit = mm.lmer("Reaction ~ Days + (1 | Subject)", mm.datasets.load("sleepstudy"),
                  residual=mm.AR1(time="Days", group="Subject"))
    table = mm.acf(fit, type="normalized")
    fig = plots.acf_plot(fit, type="normalized", alpha=0.01)
    ax = fig.axes[0]
    bars = next(c for c in ax.collections if c.get_gid() == "acf")
    tops = [seg[1][1] for seg in bars.get_segments()]
    np.testing.assert_allclose(tops, table["ACF"])
    bound = next(line for line in ax.lines if line.get_gid() == "bounds")
    np.testing.assert_allclose(bound.get_ydata(), stats.norm.ppf(0.995) / np.sqrt(table["n_used"]))
    plt.close(fig)


def test_profile_plot_of_a_glmer_fit(tmp_path):
    """cbpp's herd SD: ζ crosses ±z at lme4's profile limits (tests/fixtures/toolbox/glmer_profile.json)."""
    fit = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                   family="binomial")
    fig = plots.profile_plot(fit, which="sd_(Intercept)|herd", npoints=5)
    assert_png(fig, tmp_path, "profile_glmer")
    lo, hi = 0.346073203325377, 1.09997464823781  # lme4 1.1-31
    assert crossings(artist(fig.axes[0], "zeta")) == pytest.approx((lo, hi), abs=0.01 * (hi - lo))
