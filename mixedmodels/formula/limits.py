"""Size limits that make a hostile or careless formula fail at once instead of hanging.

Every formula meets them, checked or not: its length, its bracket nesting, its number
of random-effects terms, and a bound on the columns its fixed part expands to
(``a*b*c*...`` doubles the terms with every factor, ``(a+b+c)^k`` grows as a binomial
sum).  The bound is computed on formulaic's own expression tree of the part, before
formulaic expands anything; with data, :func:`column_bound` counts a factor's levels.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from formulaic.parser import DefaultFormulaParser
from formulaic.parser.types import ASTNode, Token

from ..errors import FormulaError

MAX_LENGTH = 5_000  # characters of a formula
MAX_DEPTH = 32  # nested brackets
MAX_RANDOM_TERMS = 30  # random-effects terms after '||' and '/' expansion
MAX_TERMS = 2_000  # terms of a fixed or random-effects part, before data
MAX_POWER = 10  # k of a formula power (a + b)^k
_HUGE = 10**15  # bounds are capped here: no big-integer arithmetic on hostile input

_PARSER = DefaultFormulaParser()


def check_size(formula: str) -> None:
    """Raise FormulaError when ``formula`` is longer or nested deeper than the limits."""
    if len(formula) > MAX_LENGTH:
        raise FormulaError(f"the formula has {len(formula):,} characters; the limit is {MAX_LENGTH:,}")
    depth = 0
    for i, ch in enumerate(formula):
        if ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise FormulaError(f"brackets are nested more than {MAX_DEPTH} deep", formula, i)
        elif ch in ")]}":
            depth -= 1


def check_random_terms(count: int, formula: str) -> None:
    """Raise FormulaError when a formula has more random-effects terms than the limit."""
    if count > MAX_RANDOM_TERMS:
        raise FormulaError(f"the formula has {count} random-effects terms; the limit is {MAX_RANDOM_TERMS} "
                           "(is a term repeated?)", formula)


def column_bound(part: str, formula: str, leaf_columns: Callable[[Token], int] = lambda token: 1) -> int:
    """An upper bound on the model-matrix columns of a formula part, without expanding it.

    ``leaf_columns`` gives the columns of one variable (1 for a number, levels − 1 for a
    factor); interactions multiply them.  Raises FormulaError, naming ``formula``, for a
    part formulaic cannot read or a formula power whose exponent is not a small whole number.
    """
    try:
        tree = _tree(part)
    except (Exception, RecursionError, MemoryError) as exc:  # formulaic raises many kinds (IndexError, ...)
        raise FormulaError(f"cannot read the formula part {part!r}: {str(exc).splitlines()[0]}", formula) from None
    if tree is None:
        return 0
    done: dict[int, int] = {}
    stack: list[tuple[ASTNode | Token, bool]] = [(tree, False)]
    while stack:  # post-order without recursion: a long sum is a deep tree
        node, expanded = stack.pop()
        if isinstance(node, Token):
            done[id(node)] = 1 if node.kind is Token.Kind.VALUE else min(leaf_columns(node), _HUGE)
        elif not expanded:
            stack.append((node, True))
            stack.extend((arg, False) for arg in node.args)
        else:
            done[id(node)] = min(_combine(node, [done[id(arg)] for arg in node.args], formula), _HUGE)
    return done[id(tree)]


@lru_cache(maxsize=256)
def _tree(part: str) -> ASTNode | Token | None:
    """formulaic's expression tree of a formula part, kept: only read, and parsing costs more
    than the bound."""
    return _PARSER.get_ast(part)


def _combine(node: ASTNode, sizes: list[int], formula: str) -> int:
    """Columns of an operator node from those of its arguments (an upper bound)."""
    symbol = node.operator.symbol
    if symbol in (":", "%in%"):
        return sizes[0] * sizes[1]
    if symbol == "*":
        return sizes[0] + sizes[1] + sizes[0] * sizes[1]
    if symbol == "/":
        return sizes[0] + sizes[0] * sizes[1]
    if symbol in ("**", "^"):
        exponent = node.args[1]
        if not (isinstance(exponent, Token) and exponent.token.isdigit() and int(exponent.token) <= MAX_POWER):
            raise FormulaError(f"the power of a formula term must be a whole number up to {MAX_POWER}", formula)
        return sum(min(sizes[0], _HUGE) ** i for i in range(1, int(exponent.token) + 1))
    if symbol == "-" and len(sizes) == 2:
        return sizes[0]
    return sum(sizes)
