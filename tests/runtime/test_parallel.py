"""Bootstrap and power spread over executors: the same replicates as serially, exactly."""

from __future__ import annotations

import pickle
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import threadpoolctl

import mixedmodels as mm
from mixedmodels.runtime import parallel
from mixedmodels.inference.bootstrap import bootstrap
from mixedmodels.inference.confint import confint
from mixedmodels.errors import MixedModelsError, MixedModelsWarning
from mixedmodels.teaching.power import power


@pytest.fixture(scope="module")
def sleep():
    return mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(8), 5)
    x = np.tile(np.arange(5.0), 8)
    y = 1 + 0.4 * x + rng.normal(0, 1, 8)[g] + rng.normal(0, 1, 40)
    return mm.lmer("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]}))


@pytest.fixture(scope="module")
def threads():
    with ThreadPoolExecutor(2) as ex:
        yield ex


@pytest.fixture(scope="module")
def processes():
    with ProcessPoolExecutor(2) as ex:
        yield ex


def slope_and_sigma(fit) -> pd.Series:
    """A custom statistic; module level, so worker processes can unpickle it."""
    return pd.Series({"Days": fit.fixef["Days"], "sigma": fit.sigma})


def fails_for_steep_slopes(fit) -> pd.Series:
    """Counts as a failed replicate (MixedModelsError) when the refitted slope exceeds 10.5."""
    if fit.fixef["Days"] > 10.5:
        raise MixedModelsError("too steep")
    return pd.Series({"Days": fit.fixef["Days"]})


def _same(a, b):
    pd.testing.assert_frame_equal(a.replicates, b.replicates, check_exact=True)
    pd.testing.assert_series_equal(a.estimate, b.estimate, check_exact=True)
    assert a.n_failed == b.n_failed


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_bootstrap_replicates_are_those_of_the_serial_run(sleep, pool, request):
    serial = sleep.bootstrap(8, seed=11, progress=False)
    spread = bootstrap(sleep, 8, seed=11, progress=False, executor=request.getfixturevalue(pool))
    _same(serial, spread)
    assert len(spread.replicates) == 8


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_custom_statistic_in_parallel(sleep, pool, request):
    serial = bootstrap(sleep, 6, seed=3, statistic=slope_and_sigma, progress=False)
    spread = bootstrap(sleep, 6, seed=3, statistic=slope_and_sigma, progress=False,
                       executor=request.getfixturevalue(pool))
    _same(serial, spread)
    assert list(spread.replicates.columns) == ["Days", "sigma"]


def test_what_cannot_be_pickled_is_refused_with_a_hint(sleep, processes):
    with pytest.raises(TypeError, match="worker processes.*ThreadPoolExecutor"):
        bootstrap(sleep, 4, seed=2, statistic=lambda f: f.fixef, progress=False, executor=processes)
    # the pool is still usable, and threads take any statistic
    _same(bootstrap(sleep, 2, seed=2, progress=False), bootstrap(sleep, 2, seed=2, progress=False, executor=processes))
    with ThreadPoolExecutor(2) as threads:
        _same(bootstrap(sleep, 2, seed=2, statistic=lambda f: f.fixef, progress=False),
              bootstrap(sleep, 2, seed=2, statistic=lambda f: f.fixef, progress=False, executor=threads))


def test_a_glmer_fit_in_worker_processes(processes):
    """The same replicates when the GLMM fit pickles; a TypeError while its family holds lambdas."""
    cbpp = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.datasets.load("cbpp"),
                    family="binomial")
    try:
        pickle.dumps(cbpp)
    except (pickle.PicklingError, AttributeError, TypeError):
        with pytest.raises(TypeError, match="worker processes"):
            bootstrap(cbpp, 4, seed=6, progress=False, executor=processes)
    else:
        _same(bootstrap(cbpp, 4, seed=6, progress=False),
              bootstrap(cbpp, 4, seed=6, progress=False, executor=processes))


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_failed_replicates_are_counted_as_serially(sleep, pool, request):
    serial = bootstrap(sleep, 16, seed=4, statistic=fails_for_steep_slopes, progress=False)
    assert 0 < serial.n_failed < 16  # the seed gives some of each
    spread = bootstrap(sleep, 16, seed=4, statistic=fails_for_steep_slopes, progress=False,
                       executor=request.getfixturevalue(pool))
    _same(serial, spread)


def test_chunking_does_not_change_the_replicates(sleep, threads):
    children = np.random.SeedSequence(9).spawn(5)
    payload = (sleep, slope_and_sigma)
    from mixedmodels.inference.bootstrap import _replicate

    one = parallel.run(_replicate, payload, children, progress=False)
    for size in (1, 2, 5):
        again = parallel.run(_replicate, payload, children, threads, progress=False, chunk_size=size)
        for a, b in zip(one, again):
            pd.testing.assert_series_equal(a, b, check_exact=True)


def test_confint_boot_with_an_executor(sleep, threads):
    serial = sleep.confint(method="boot", nsim=6, seed=8, progress=False)
    spread = confint(sleep, method="boot", nsim=6, seed=8, progress=False, executor=threads)
    pd.testing.assert_frame_equal(serial, spread, check_exact=True)


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_power_table_is_that_of_the_serial_run(small, pool, request):
    args = dict(nsim=6, n_groups=[6, 10], effect=0.3, seed=21, progress=False)
    serial = power(small, "x", **args)
    spread = power(small, "x", executor=request.getfixturevalue(pool), **args)
    pd.testing.assert_frame_equal(serial.table, spread.table, check_exact=True)
    assert list(spread.table["n_groups"]) == [6, 10]


def test_progress_advances_by_chunks(sleep, threads, capsys):
    bootstrap(sleep, 5, seed=1, progress=True, executor=threads)
    assert "5/5" in capsys.readouterr().err


def test_an_unexpected_error_propagates(sleep, threads):
    with pytest.raises(ZeroDivisionError):
        bootstrap(sleep, 4, seed=1, statistic=lambda f: 1 / 0, progress=False, executor=threads)


def test_not_an_executor():
    with pytest.raises(TypeError, match="executor must be"):
        parallel.run(abs, None, [1], executor=object())


def test_the_fitted_model_pickles(sleep):
    again = pickle.loads(pickle.dumps(sleep))
    np.testing.assert_array_equal(again.refit(sleep.design.y).theta, sleep.refit(sleep.design.y).theta)


def test_quiet_refits_leaves_no_filter_behind(threads):
    def noisy(_payload, job):
        warnings.warn("refit warning", MixedModelsWarning)
        return job

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before = list(warnings.filters)
        assert parallel.run(noisy, None, list(range(40)), threads, progress=False, chunk_size=1) == list(range(40))
        assert not [w for w in caught if issubclass(w.category, MixedModelsWarning)]
        assert warnings.filters == before
        warnings.warn("after", MixedModelsWarning)
        assert [str(w.message) for w in caught] == ["after"]


def test_threaded_refits_leave_the_blas_threads_as_they_were(small, threads):
    before = [(i["internal_api"], i["num_threads"]) for i in threadpoolctl.threadpool_info()]
    power(small, "x", nsim=8, seed=1, progress=False, executor=threads)  # refits call satterthwaite()
    assert [(i["internal_api"], i["num_threads"]) for i in threadpoolctl.threadpool_info()] == before
