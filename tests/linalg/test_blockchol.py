"""The blocked Cholesky factor against a dense Cholesky of the whole penalised crossproduct.

Random small designs with one to three crossed or nested terms, scalar or vector
valued, with or without weights; the off-diagonal crossproduct blocks are forced
sparse or dense so that both storage kinds, and the cached ``SparseGram`` plan as
well as the generic sparse product, are exercised.
"""

from __future__ import annotations

import dataclasses
import pickle
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import mixedmodels as mm
from mixedmodels.errors import MemoryBudgetError
from mixedmodels.linalg import blockchol
from mixedmodels.linalg.blockchol import BlockedCholesky, SparseGram, _level_blocks, factorize
from mixedmodels.linalg.crossprod import CrossproductBuilder, Crossproducts
from mixedmodels.design.reterm import ReTerm, TermSet

# the same examples on every run (reproducible failures, no flaky CI); no shrinking
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclasses.dataclass
class Problem:
    terms: tuple[ReTerm, ...]  # engine order
    X: np.ndarray
    y: np.ndarray
    w: np.ndarray | None
    lambdas: list[np.ndarray]


def make_term(name: str, codes: np.ndarray, p: int, rng: np.random.Generator) -> ReTerm:
    codes = np.unique(codes, return_inverse=True)[1].astype(np.int64)  # drop unused levels
    nlevels = int(codes.max()) + 1
    matrix = np.column_stack([np.ones(len(codes))] + [rng.normal(size=len(codes)) for _ in range(p - 1)])
    return ReTerm(group=name, codes=codes, levels=pd.Index(np.arange(nlevels)), matrix=matrix,
                  columns=tuple(f"c{a}" for a in range(p)), expr="1" if p == 1 else "1 + x")


def random_lambda(p: int, rng: np.random.Generator, zero: bool) -> np.ndarray:
    T = np.tril(rng.normal(scale=0.8, size=(p, p)))
    T[np.diag_indices(p)] = 0.0 if zero else rng.uniform(0.1, 2.0, size=p)
    return T


@st.composite
def problems(draw) -> Problem:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(20, 120))
    nterms = draw(st.integers(1, 3))
    layout = draw(st.sampled_from(["crossed", "nested"]))
    codes = [rng.integers(0, draw(st.integers(4, 40)), size=n)]
    for _ in range(nterms - 1):
        if layout == "nested":
            codes.append(codes[-1] // draw(st.integers(2, 4)))
        else:
            codes.append(rng.integers(0, draw(st.integers(2, 25)), size=n))
    terms = TermSet(tuple(make_term(f"g{i}", c, draw(st.sampled_from([1, 2])), rng)
                          for i, c in enumerate(codes))).terms
    X = np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(draw(st.integers(0, 2)))])
    y = X @ rng.normal(size=X.shape[1]) + sum(rng.normal(size=t.nlevels)[t.codes] for t in terms) + rng.normal(size=n)
    w = rng.uniform(0.2, 3.0, size=n) if draw(st.booleans()) else None
    at_bound = draw(st.sampled_from([None] * 3 + list(range(len(terms)))))  # sometimes a term with Tᵢ = 0 diagonal
    lambdas = [random_lambda(t.p, rng, i == at_bound) for i, t in enumerate(terms)]
    return Problem(terms, X, y, w, lambdas)


def crossproducts(prob: Problem, dense_fill: float) -> Crossproducts:
    """A of the problem, with between-term blocks stored dense beyond ``dense_fill``."""
    old = CrossproductBuilder.DENSE_FILL
    CrossproductBuilder.DENSE_FILL = dense_fill
    try:
        return CrossproductBuilder(prob.terms)(np.column_stack([prob.X, prob.y]), prob.w)
    finally:
        CrossproductBuilder.DENSE_FILL = old


def dense_z(term: ReTerm) -> np.ndarray:
    Z = np.zeros((len(term.codes), term.q))
    for a in range(term.p):
        Z[np.arange(len(term.codes)), term.codes * term.p + a] = term.matrix[:, a]
    return Z


def dense_system(prob: Problem) -> tuple[np.ndarray, int]:
    """The penalised crossproduct [ΛᵀZᵀWZΛ + I, ΛᵀZᵀW[X y]; ·, [X y]ᵀW[X y]], dense, and q."""
    ZL = np.hstack([dense_z(t) @ np.kron(np.eye(t.nlevels), T) for t, T in zip(prob.terms, prob.lambdas)])
    M = np.hstack([ZL, prob.X, prob.y[:, None]])
    w = np.ones(len(prob.y)) if prob.w is None else prob.w
    Omega = M.T @ (M * w[:, None])
    q = ZL.shape[1]
    Omega[:q, :q] += np.eye(q)
    return Omega, q


def offsets(prob: Problem) -> list[int]:
    return list(np.cumsum([0] + [t.q for t in prob.terms]))


def block_dense(B) -> np.ndarray:
    if sp.issparse(B):
        return B.toarray()
    if B.ndim == 3:  # the first term's (ℓ, p, p) stack
        return sp.block_diag(list(B)).toarray()
    return np.asarray(B)


def assert_factor_matches_dense(F: BlockedCholesky, prob: Problem) -> None:
    Omega, q = dense_system(prob)
    L = np.linalg.cholesky(Omega)
    bounds = offsets(prob) + [Omega.shape[0]]
    K = len(prob.terms)
    for j in range(K + 1):
        for k in range(j + 1):
            expected = L[bounds[j]:bounds[j + 1], bounds[k]:bounds[k + 1]]
            got = block_dense(F.L[j][k])
            if j == k:
                got = np.tril(got)
            np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10, err_msg=f"block ({j}, {k})")
    d = np.diag(L)
    p = prob.X.shape[1]
    assert F.logdet_z() == pytest.approx(2 * np.log(d[:q]).sum(), rel=1e-10, abs=1e-10)
    assert F.logdet_x() == pytest.approx(2 * np.log(d[q:q + p]).sum(), rel=1e-10, abs=1e-10)
    assert F.r == pytest.approx(d[-1], rel=1e-9)


@pytest.fixture(scope="module", autouse=True)
def blocked_path():
    """These problems are small enough for the one-piece dense factorisation; the tests
    are about the blocked algorithm, so it is forced (the dense path is sampled below)."""
    with mock.patch.object(blockchol, "DENSE_ORDER", 0):
        yield


@SETTINGS
@given(prob=problems(), dense_fill=st.sampled_from([0.0, 0.1, 1.0]), small_stack=st.sampled_from([0, 128]),
       dense_order=st.sampled_from([0, 10**6]))
def test_blocked_factor_is_the_dense_cholesky_factor(prob: Problem, dense_fill: float, small_stack: int,
                                                     dense_order: int):
    """Both kernels of the level stacks (column by column: 0; numpy's batched calls: 128),
    and the one-piece dense factorisation of small systems (dense_order 10⁶)."""
    with mock.patch.object(blockchol, "SMALL_STACK", small_stack), \
            mock.patch.object(blockchol, "DENSE_ORDER", dense_order):
        F = factorize(crossproducts(prob, dense_fill), prob.lambdas, prob.X.shape[1])
        assert_factor_matches_dense(F, prob)
        assert_solves_penalised_least_squares(F, prob)


@pytest.mark.parametrize("levels", [5, 300])  # either side of SMALL_STACK
@pytest.mark.parametrize("p", [1, 2, 3])
def test_stack_kernels_equal_numpy(levels: int, p: int):
    rng = np.random.default_rng(levels * 10 + p)
    A = rng.normal(size=(levels, p, p + 2))
    M = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(p)
    L = blockchol._stack_cholesky(M)
    np.testing.assert_allclose(L, np.linalg.cholesky(M), rtol=1e-12, atol=1e-14)
    R = rng.normal(size=(3, levels * p))
    expected = np.hstack([R[:, s * p:(s + 1) * p] @ L[s] for s in range(levels)])
    np.testing.assert_allclose(blockchol._times_block_diag(R, L), expected, rtol=1e-12, atol=1e-14)
    M[levels // 2] = -np.eye(p)  # one level not positive definite
    with pytest.raises(np.linalg.LinAlgError):
        blockchol._stack_cholesky(M)


@SETTINGS
@given(prob=problems())
def test_beta_modes_and_variances_solve_the_penalised_least_squares_problem(prob: Problem):
    assert_solves_penalised_least_squares(factorize(crossproducts(prob, 1.0), prob.lambdas, prob.X.shape[1]), prob)


def assert_solves_penalised_least_squares(F: BlockedCholesky, prob: Problem) -> None:
    """β̂, the modes, (L_X L_Xᵀ)⁻¹ and the conditional blocks against the dense system."""
    Omega, q = dense_system(prob)
    solution = np.linalg.solve(Omega[:-1, :-1], Omega[:-1, -1])  # [u; β] of the penalised normal equations
    beta = F.beta()
    np.testing.assert_allclose(beta, solution[q:], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.concatenate(F.spherical_modes(beta)), solution[:q], rtol=1e-7, atol=1e-9)
    # (L_X L_Xᵀ)⁻¹ is the β-block of the inverse of the whole [Z X] system
    inverse = np.linalg.inv(Omega[:-1, :-1])
    np.testing.assert_allclose(F.beta_precision_inverse(), inverse[q:, q:], rtol=1e-7, atol=1e-10)
    # conditional_precision_blocks: the diagonal blocks of (L_Z L_Zᵀ)⁻¹
    LZ_inverse = np.linalg.inv(Omega[:q, :q])
    for j, (t, start) in enumerate(zip(prob.terms, offsets(prob))):
        blocks = F.conditional_precision_blocks(j, chunk=4)
        for level in range(t.nlevels):
            s = start + level * t.p
            np.testing.assert_allclose(blocks[level], LZ_inverse[s:s + t.p, s:s + t.p], rtol=1e-7, atol=1e-10)


@SETTINGS
@given(prob=problems())
def test_cached_gram_plan_equals_the_generic_path_across_rebuilds(prob: Problem):
    """The SparseGram fast path (plans cached by the builder) against the generic sparse
    product (no plans), also after a rebuild with other weights on the same builder, as PIRLS does."""
    old = CrossproductBuilder.DENSE_FILL
    CrossproductBuilder.DENSE_FILL = 1.0  # every between-term block sparse
    try:
        build = CrossproductBuilder(prob.terms)
    finally:
        CrossproductBuilder.DENSE_FILL = old
    Xy = np.column_stack([prob.X, prob.y])
    rng = np.random.default_rng(len(prob.y))
    p = prob.X.shape[1]
    for w in (prob.w, rng.uniform(0.1, 4.0, size=len(prob.y))):
        A = build(Xy, w)
        fast = factorize(A, prob.lambdas, p)
        generic = factorize(dataclasses.replace(A, plans=None), prob.lambdas, p)
        for j, (row_fast, row_generic) in enumerate(zip(fast.L, generic.L)):
            for k, (a, b) in enumerate(zip(row_fast, row_generic)):
                shape = np.tril if k == j else np.asarray  # diagonal blocks: the lower triangle is the factor
                np.testing.assert_allclose(shape(block_dense(a)), shape(block_dense(b)), rtol=1e-9, atol=1e-11)
        assert_factor_matches_dense(fast, dataclasses.replace(prob, w=w))
    if len(prob.terms) > 1:  # crossed: the plan of the fill; nested: a stacked column needs none
        stacked = blockchol.nested_columns(A)
        assert (("gram", 1) in build.plans) != stacked[1]


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), p=st.integers(1, 3), rows=st.integers(1, 30), levels=st.integers(1, 20),
       density=st.floats(0.02, 0.9))
def test_sparse_gram_is_c_w_ct(seed: int, p: int, rows: int, levels: int, density: float):
    rng = np.random.default_rng(seed)
    present = rng.random((rows, levels)) < density
    C = sp.csr_matrix(np.kron(present, np.ones((1, p))) * rng.normal(size=(rows, levels * p)))
    C = sp.csr_matrix((np.where(C.data == 0, 1.0, C.data), C.indices, C.indptr), shape=C.shape)
    if C.nnz == 0:
        return
    R = rng.normal(size=(levels, p, p))
    W = R @ R.transpose(0, 2, 1)
    gram = SparseGram(C, p, _level_blocks(C, p))
    expected = C.toarray() @ sp.block_diag(list(W)).toarray() @ C.toarray().T
    np.testing.assert_allclose(gram(C, W), expected, rtol=1e-10, atol=1e-10)
    # new values on the same pattern are picked up
    C2 = sp.csr_matrix((rng.normal(size=C.nnz), C.indices, C.indptr), shape=C.shape)
    np.testing.assert_allclose(gram(C2, W), C2.toarray() @ sp.block_diag(list(W)).toarray() @ C2.toarray().T,
                               rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="pattern"):
        gram(sp.csr_matrix(np.ones((rows, levels * p + p))), W)


def test_level_blocks_rejects_partial_blocks():
    C = sp.csr_matrix(np.array([[1.0, 0.0, 2.0, 3.0]]))  # level 0 stored half, p = 2
    assert _level_blocks(C, 2) is None
    assert _level_blocks(C, 1) is not None


def test_plans_are_shared_by_rebuilds_and_not_pickled():
    rng = np.random.default_rng(3)
    n = 200
    terms = TermSet((make_term("a", rng.integers(0, 60, n), 1, rng),
                     make_term("b", rng.integers(0, 40, n), 1, rng))).terms
    build = CrossproductBuilder(terms)
    Xy = np.column_stack([np.ones(n), rng.normal(size=n)])
    A1, A2 = build(Xy, None), build(Xy, rng.uniform(0.5, 2.0, n))
    assert A1.plans is A2.plans is build.plans
    factorize(A1, [np.eye(1), np.eye(1)], 1)
    plan = build.plans[("gram", 1)]
    assert isinstance(plan, SparseGram)
    factorize(A2, [np.eye(1), np.eye(1)], 1)
    assert build.plans[("gram", 1)] is plan
    copy = pickle.loads(pickle.dumps(A1))
    assert len(copy.plans) == 0
    np.testing.assert_allclose(factorize(copy, [np.eye(1), 0.5 * np.eye(1)], 1).logdet_z(),
                               factorize(A1, [np.eye(1), 0.5 * np.eye(1)], 1).logdet_z(), rtol=1e-12)


def test_no_plan_when_it_would_outgrow_the_dense_block():
    """Three rows meeting at 200,000 levels: 1.2 million terms for a 3×3 result; the
    generic sparse product is used instead (and the decision is cached)."""
    from mixedmodels.linalg.blockchol import _sparse_gram

    C = sp.csr_matrix(np.ones((3, 200_000)))
    A = Crossproducts(diag=(), off=((), (C,)), xz=(), xx=np.zeros((0, 0)))
    assert _sparse_gram(A, 1, 1) is None and A.plans == {("gram", 1): None}
    small = Crossproducts(diag=(), off=((), (C[:, :1000].tocsr(),)), xz=(), xx=np.zeros((0, 0)))
    assert isinstance(_sparse_gram(small, 1, 1), SparseGram)


@pytest.mark.parametrize("p", [1, 2])
def test_nested_factors_keep_level_stacks(p: int):
    """(p | a/b/c): every column is a level stack, the blocks between terms stay sparse, and the
    factor is still the dense one; a crossed term after them is dense again."""
    rng = np.random.default_rng(p)
    n = 400
    c = rng.integers(0, 80, n)
    codes = [c, c // 4, c // 16, rng.integers(0, 3, n)]  # c within b within a (5 levels); the last crossed
    terms = TermSet(tuple(make_term(f"g{i}", k, p, rng) for i, k in enumerate(codes))).terms
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.normal(size=n)
    lambdas = [random_lambda(p, rng, zero=False) for _ in terms]
    prob = Problem(terms, X, y, rng.uniform(0.5, 2.0, n), lambdas)
    A = crossproducts(prob, 1.0)
    assert blockchol.nested_columns(A) == (True, True, True, False)
    F = factorize(A, lambdas, 2)
    assert [F.L[k][k].ndim for k in range(4)] == [3, 3, 3, 2]
    assert sp.issparse(F.L[2][1]) and sp.issparse(F.L[2][0])
    assert_factor_matches_dense(F, prob)
    assert_solves_penalised_least_squares(F, prob)
    assert A.plans[("nested",)] == (True, True, True, False)


def crossed_frame(n: int, users: int, items: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, users, n), rng.integers(0, items, n)
    x = rng.normal(size=n)
    eta = 0.3 * x + rng.normal(size=users)[u] + rng.normal(size=items)[i]
    return pd.DataFrame({"y": eta + rng.normal(size=n), "count": rng.poisson(np.exp(eta)), "x": x,
                         "u": pd.Categorical(u), "i": pd.Categorical(i)})


@pytest.mark.parametrize("fit", [
    lambda d: mm.lmer("y ~ x + (1 | u) + (1 | i)", d),
    lambda d: mm.glmer("count ~ x + (1 | u) + (1 | i)", d, family="poisson"),
])
def test_dense_blocks_beyond_the_budget_fail_first(fit):
    """A crossed term's dense block (here 150² doubles = 176 KiB) over the budget: a
    MemoryBudgetError naming its levels before anything is allocated (the GLMM's
    optimizer does not take it for a bad point); within the budget the same model fits."""
    data = crossed_frame(2000, 400, 150, seed=5)
    with mock.patch.object(blockchol, "DENSE_BUDGET", 100 * 2**10):
        with pytest.raises(MemoryBudgetError, match=r"150 levels \(150 effects\).*0\.17 MiB.*0\.10 MiB.*DENSE_BUDGET"):
            fit(data)
    with mock.patch.object(blockchol, "DENSE_BUDGET", 200 * 2**10):
        assert np.isfinite(fit(data).objective)


@pytest.mark.filterwarnings("ignore::mixedmodels.errors.SingularFitWarning")
def test_nested_terms_need_no_dense_budget():
    data = crossed_frame(2000, 400, 150, seed=6)
    data["class"] = pd.Categorical(data["u"].cat.codes.to_numpy() // 4)  # u within class: nested
    with mock.patch.object(blockchol, "DENSE_BUDGET", 0):
        assert np.isfinite(mm.lmer("y ~ x + (1 | class/u)", data).objective)
