"""A fitted model written as level-1 and level-2 (and level-3) equations, as multilevel textbooks do.

Raudenbush & Bryk's (2002) notation, that of the HLM program: with two levels, rows i in
clusters j,

    level 1:   y_ij = β_0j + β_1j x_ij + r_ij,            r_ij ~ N(0, σ²)
    level 2:   β_0j = γ_00 + γ_01 w_j + u_0j
               β_1j = γ_10 + γ_11 w_j + u_1j,          (u_0j, u_1j)ᵀ ~ N(0, T)
    combined:  y_ij = γ_00 + γ_01 w_j + γ_10 x_ij + γ_11 x_ij w_j + u_0j + u_1j x_ij + r_ij

and with three levels π (level 1), β (level 2), γ (level 3), residuals e, r, u, indices i, j, k.
Each fixed-effect column is split into its parts (``x:w`` into x and w) and each part is
placed at the level it varies at: the lowest level within whose clusters it is constant, or
level 1.  The level-1 parts pick the level-1 coefficient, the level-2 parts the term of that
coefficient's level-2 equation, and so on; random-effect columns give the coefficients their
random parts.  Generalized models replace the level-1 equation by the family and the link
(the "level-1 sampling model" and "link function" of HLM).  The grouping factors must be
nested: crossed factors have no levels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..engine.families import Family
from ..errors import FormulaError
from ..protocols import FittedModel

_INTERCEPT = "(Intercept)"
_INDICES = "ijk"
# per number of levels: coefficient symbol at each level (level 1 first), then residual at each level
_COEFFICIENTS = {2: ("beta", "gamma"), 3: ("pi", "beta", "gamma")}
_RANDOM = {2: ("r", "u"), 3: ("e", "r", "u")}
_MEAN_SYMBOL = {"binomial": "phi", "poisson": "lambda", "negative.binomial": "lambda"}
_GREEK = {"beta": "β", "gamma": "γ", "pi": "π", "tau": "τ", "sigma": "σ", "eta": "η", "mu": "μ", "phi": "φ",
          "lambda": "λ"}


class EquatableModel(FittedModel, Protocol):
    """A fitted model with what the variance lines need: per-term covariance matrices."""

    formula: str

    @property
    def covariances(self) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class Symbol:
    """A coefficient or random effect: its Greek or Latin letter and its subscript."""

    letter: str
    subscript: str

    def text(self) -> str:
        return _GREEK.get(self.letter, self.letter) + "_" + self.subscript

    def latex(self) -> str:
        return ("\\" + self.letter if self.letter in _GREEK else self.letter) + "_{" + self.subscript + "}"


@dataclass(frozen=True)
class Variable:
    """A predictor part with the level it varies at."""

    name: str
    level: int


class Equations:
    """The equations of a fit; ``str()`` is plain text, ``latex`` (and Jupyter's ``_repr_latex_``) LaTeX."""

    def __init__(self, lines: list[tuple[str, list[tuple[str, str]]]]):
        self.lines = lines  # (block title, [(text, latex) per line])

    def __str__(self) -> str:
        out = []
        for title, rows in self.lines:
            out.append(title + ":")
            out.extend("  " + text for text, _ in rows)
        return "\n".join(out) + "\n"

    __repr__ = __str__

    @property
    def latex(self) -> str:
        """The equations in a LaTeX ``aligned`` environment (MathJax renders it)."""
        rows = []
        for title, block in self.lines:
            for k, (_, tex) in enumerate(block):
                label = f"\\text{{{title}:}}\\quad" if k == 0 else ""
                rows.append(f"{label} & {tex}")
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def _repr_latex_(self) -> str:
        return "$$\n" + self.latex + "\n$$"


def latex_name(name: str) -> str:
    """A variable name set upright, TeX's special characters escaped."""
    special = {"\\": "\\backslash{}", "_": "\\_", "^": "\\hat{}", "{": "\\{", "}": "\\}", "%": "\\%",
               "&": "\\&", "#": "\\#", "$": "\\$", "~": "\\sim{}", " ": "\\ "}
    return "\\mathrm{" + "".join(special.get(c, c) for c in name) + "}"


def equations(fit: EquatableModel, estimates: bool = False, digits: int = 2) -> Equations:
    """The fitted model's level equations and combined equation (symbols, or ``estimates``
    rounded to ``digits`` decimals)."""
    return _Writer(fit, estimates, digits).write()


class _Writer:
    """Builds the equations of one fit: levels of the variables, the coefficient tree, the lines."""

    def __init__(self, fit: EquatableModel, estimates: bool, digits: int):
        self.fit, self.estimates, self.digits = fit, estimates, digits
        design = fit.design
        self.groups = _nested_groups(fit)
        self.nlevels = len(self.groups) + 1
        if self.nlevels > 3:
            raise FormulaError("equations() writes models of up to three levels; this one has "
                               f"{self.nlevels} ({', '.join(self.groups)} nested)", fit.formula)
        self.idx = _INDICES[: self.nlevels]
        self.level_of: dict[str, int] = {}
        columns = dict(zip(design.xnames, design.X.T))
        for t in design.reterms:
            for a, name in enumerate(t.columns):
                columns.setdefault(name, t.matrix[:, a])
        self.codes = [next(t.codes for t in design.reterms if t.group == g) for g in self.groups]
        for name, values in columns.items():
            self.level_of[name] = self._level(np.asarray(values, dtype=float))
        self.fixed = {name: self.split(name) for name in design.xnames}
        self.response = design.response_name
        self.family: Family | None = getattr(fit, "family", None)

    # ----- structure ------------------------------------------------------------------
    def _level(self, values: np.ndarray) -> int:
        """1 + the number of grouping levels within whose clusters ``values`` are constant."""
        level = 1
        scale = max(float(np.max(np.abs(values))), 1.0) if values.size else 1.0
        for codes in self.codes:
            low, high = np.full(int(codes.max()) + 1, np.inf), np.full(int(codes.max()) + 1, -np.inf)
            np.minimum.at(low, codes, values)
            np.maximum.at(high, codes, values)
            if np.all(high - low <= 1e-10 * scale):
                level += 1
            else:
                break
        return level

    def split(self, column: str) -> tuple[tuple[Variable, ...], ...]:
        """The column's parts grouped by level: one tuple per level, level 1 first."""
        names = [] if column == _INTERCEPT else column.split(":")
        if any(n not in self.level_of for n in names):
            names = [column]  # a part without its own column: the column is one variable
        by_level: list[tuple[Variable, ...]] = []
        for level in range(1, self.nlevels + 1):
            by_level.append(tuple(Variable(n, self.level_of[n]) for n in names if self.level_of[n] == level))
        return tuple(by_level)

    # ----- symbols ----------------------------------------------------------------------
    def coefficient_tree(self) -> dict[tuple, list[tuple]]:
        """Chain of parts (level-1 parts, level-2 parts, ...) → the parts at the next level under it,
        in the order their coefficients are numbered."""
        tree: dict[tuple, list[tuple]] = {}
        chains = [self.fixed[c] for c in self.fit.design.xnames]
        chains += [self.split(name) for t in self.fit.design.reterms for name in t.columns]
        for chain in chains:
            for depth in range(self.nlevels):
                kids = tree.setdefault(chain[:depth], [])
                if chain[depth] not in kids:
                    kids.append(chain[depth])
        for kids in tree.values():  # the constant term (no parts) first, the rest in column order
            kids.sort(key=lambda parts: parts != ())
        return tree

    def symbol(self, chain: tuple, tree: dict[tuple, list[tuple]]) -> Symbol:
        """The coefficient of ``chain``'s last part in the equation of level len(chain): β_pj, γ_pq, ..."""
        return Symbol(_COEFFICIENTS[self.nlevels][len(chain) - 1], _numbers(chain, tree) + self.idx[len(chain):])

    def random_symbol(self, chain: tuple, tree: dict[tuple, list[tuple]]) -> Symbol:
        """The random part of the coefficient ``chain`` at level len(chain) + 1: u_pj, r_pjk, u_pqk."""
        return Symbol(_RANDOM[self.nlevels][len(chain)], _numbers(chain, tree) + self.idx[len(chain):])

    # ----- text -------------------------------------------------------------------------
    def product(self, parts: Sequence[Variable]) -> tuple[str, str]:
        """x_ij × w_j in text and LaTeX ('' for no parts)."""
        pieces = [(f"{v.name}_{self.idx[v.level - 1:]}", f"{latex_name(v.name)}_{{{self.idx[v.level - 1:]}}}")
                  for v in parts]
        return " × ".join(p[0] for p in pieces), " \\times ".join(p[1] for p in pieces)

    def term(self, symbol: Symbol, parts: Sequence[Variable], value: float | None = None) -> _Term:
        """A coefficient (its estimate when ``value`` is given and estimates are asked) times variables."""
        var_t, var_l = self.product(parts)
        if value is not None and self.estimates:
            return _Term(f"{abs(value):.{self.digits}f}", f"{abs(value):.{self.digits}f}", var_t, var_l, value < 0)
        return _Term(symbol.text(), symbol.latex(), var_t, var_l, False)

    def write(self) -> Equations:
        tree = self.coefficient_tree()
        value_of = {self.fixed[c]: float(v) for c, v in self.fit.fixef.items()}
        random_of = self.random_chains()
        level1 = [self.term(self.symbol((parts,), tree), parts) for parts in tree[()]]
        blocks = [("Level 1", self.level1_lines(_sum(level1)))]
        for depth in range(1, self.nlevels):
            rows = []
            for chain in self.chains(tree, depth):
                terms = []
                for child in tree.get(chain, []):
                    full = chain + (child,)
                    last = depth + 1 == self.nlevels
                    if last and full not in value_of:
                        continue  # a random part without a fixed one
                    terms.append(self.term(self.symbol(full, tree), child, value_of.get(full) if last else None))
                if chain in random_of.get(depth + 1, []):
                    terms.append(self.term(self.random_symbol(chain, tree), ()))
                lhs = self.symbol(chain, tree)
                rhs_t, rhs_l = _sum(terms) if terms else ("0", "0")
                rows.append((f"{lhs.text()} = {rhs_t}", f"{lhs.latex()} = {rhs_l}"))
            rows.extend(self.random_distributions(depth + 1, tree))
            blocks.append((f"Level {depth + 1}", rows))
        blocks.append(("Combined", [self.combined(tree, value_of, random_of)]))
        return Equations(blocks)

    def chains(self, tree: dict[tuple, list[tuple]], depth: int) -> list[tuple]:
        """Every chain of ``depth`` parts, in tree order."""
        out: list[tuple] = [()]
        for _ in range(depth):
            out = [c + (k,) for c in out for k in tree.get(c, [])]
        return out

    def random_chains(self) -> dict[int, list[tuple]]:
        """Level → chains (coefficients) with a random part at that level."""
        out: dict[int, list[tuple]] = {}
        for t in self.fit.design.reterms:
            level = self.groups.index(t.group) + 2
            out.setdefault(level, []).extend(self.split(name)[: level - 1] for name in t.columns)
        return out

    def outcome(self) -> tuple[str, str]:
        """The left-hand side of level 1: y_ij, or for GLMMs the link of the mean."""
        y_t, y_l = f"{self.response}_{self.idx}", f"{latex_name(self.response)}_{{{self.idx}}}"
        if self.family is None:
            return y_t, y_l
        mean = _MEAN_SYMBOL.get(self.family.name, "mu")
        link = self.family.link.name
        return (f"{link}({_GREEK[mean]}_{self.idx})",
                f"\\mathrm{{{link}}}(\\{mean}_{{{self.idx}}})")

    def level1_lines(self, rhs: tuple[str, str]) -> list[tuple[str, str]]:
        resid = Symbol(_RANDOM[self.nlevels][0], self.idx)
        lhs_t, lhs_l = self.outcome()
        if self.family is None:
            var_t = f"{float(self.fit.sigma) ** 2:.{self.digits}f}" if self.estimates else "σ²"
            var_l = var_t if self.estimates else "\\sigma^2"
            return [(f"{lhs_t} = {rhs[0]} + {resid.text()}", f"{lhs_l} = {rhs[1]} + {resid.latex()}"),
                    (f"{resid.text()} ~ N(0, {var_t})", f"{resid.latex()} \\sim N(0, {var_l})")]
        return [self.sampling_model(self.family), (f"{lhs_t} = {rhs[0]}", f"{lhs_l} = {rhs[1]}")]

    def sampling_model(self, family: Family) -> tuple[str, str]:
        """HLM's level-1 sampling model: y_ij ~ Binomial(n_ij, φ_ij), Poisson(λ_ij), or family with mean μ_ij."""
        mean = _MEAN_SYMBOL.get(family.name, "mu")
        mean_t, mean_l = f"{_GREEK[mean]}_{self.idx}", f"\\{mean}_{{{self.idx}}}"
        response = self.response
        if family.name == "binomial":
            cbind = re.fullmatch(r"cbind\((.+?),.*\)", response)
            trials = "n" if cbind or self.fit.design.weights is not None else "1"
            response = cbind.group(1).strip() if cbind else response
            law_t, law_l = (f"Binomial({trials}{'_' + self.idx if trials == 'n' else ''}, {mean_t})",
                            f"\\mathrm{{Binomial}}({trials}{'_{' + self.idx + '}' if trials == 'n' else ''}, {mean_l})")
        elif family.name == "poisson":
            law_t, law_l = f"Poisson({mean_t})", f"\\mathrm{{Poisson}}({mean_l})"
        else:
            law_t = f"{family.name}(mean {mean_t})"
            law_l = f"\\mathrm{{{family.name}}}(\\text{{mean }}{mean_l})"
        return (f"{response}_{self.idx} ~ {law_t}", f"{latex_name(response)}_{{{self.idx}}} \\sim {law_l}")

    def random_distributions(self, level: int, tree: dict[tuple, list[tuple]]) -> list[tuple[str, str]]:
        """One line per random-effects term of the grouping factor at ``level``: its normal distribution
        with covariance matrix T (τ's; the estimates with ``estimates``)."""
        rows = []
        for t, S in zip(self.fit.reterms, self.fit.covariances):
            if self.groups.index(t.group) + 2 != level:
                continue
            syms = [self.random_symbol(self.split(name)[: level - 1], tree) for name in t.columns]
            codes = [s.subscript[: level - 1] for s in syms]
            sep = "," if level > 2 else ""
            # three levels: T_π (level 2) and T_β (level 3), as Raudenbush & Bryk
            which = "" if self.nlevels == 2 else _COEFFICIENTS[3][level - 2]
            k = range(len(syms))
            if self.estimates:
                cells_t = cells_l = [[f"{S[a, b]:.{self.digits}f}" for b in k] for a in k]
            else:
                cells_t = [[f"τ_{_GREEK.get(which, '')}{codes[a]}{sep}{codes[b]}" for b in k] for a in k]
                cells_l = [[f"\\tau_{{{chr(92) + which + ' ' if which else ''}{codes[a]}{sep}{codes[b]}}}"
                            for b in k] for a in k]
            if len(syms) == 1:
                rows.append((f"{syms[0].text()} ~ N(0, {cells_t[0][0]})",
                             f"{syms[0].latex()} \\sim N(0, {cells_l[0][0]})"))
                continue
            vec_t = "(" + ", ".join(s.text() for s in syms) + ")ᵀ"
            vec_l = "\\begin{pmatrix}" + " \\\\ ".join(s.latex() for s in syms) + "\\end{pmatrix}"
            mat_t = "[" + "; ".join(", ".join(r) for r in cells_t) + "]"
            mat_l = "\\begin{pmatrix}" + " \\\\ ".join(" & ".join(r) for r in cells_l) + "\\end{pmatrix}"
            rows.append((f"{vec_t} ~ N(0, {mat_t})", f"{vec_l} \\sim N\\left(\\mathbf{{0}}, {mat_l}\\right)"))
        return rows

    def combined(self, tree: dict[tuple, list[tuple]], value_of: dict[tuple, float],
                 random_of: dict[int, list[tuple]]) -> tuple[str, str]:
        """The outcome = fixed part + random part (+ residual), level equations substituted."""
        terms = [self.term(self.symbol(chain, tree), [v for parts in chain for v in parts], value)
                 for chain, value in value_of.items()]
        terms += [self.term(self.random_symbol(chain, tree), [v for parts in chain for v in parts])
                  for _, chains in sorted(random_of.items()) for chain in chains]
        rhs_t, rhs_l = _sum(terms)
        lhs_t, lhs_l = self.outcome()
        if self.family is not None:
            return f"{lhs_t} = {rhs_t}", f"{lhs_l} = {rhs_l}"
        resid = Symbol(_RANDOM[self.nlevels][0], self.idx)
        return f"{lhs_t} = {rhs_t} + {resid.text()}", f"{lhs_l} = {rhs_l} + {resid.latex()}"


@dataclass(frozen=True)
class _Term:
    coef_text: str
    coef_latex: str
    var_text: str
    var_latex: str
    negative: bool


def _sum(terms: Sequence[_Term]) -> tuple[str, str]:
    """a + b x − c w ... in text and LaTeX (a leading minus kept on the first term)."""
    text, tex = "", ""
    for k, t in enumerate(terms):
        sign = ("-" if t.negative else "") if k == 0 else (" - " if t.negative else " + ")
        text += sign + t.coef_text + (" " + t.var_text if t.var_text else "")
        tex += sign + t.coef_latex + ("\\," + t.var_latex if t.var_latex else "")
    return text, tex


def _numbers(chain: tuple, tree: dict[tuple, list[tuple]]) -> str:
    """The subscript digits of a coefficient: its position under each level's parent."""
    return "".join(str(tree[chain[:d]].index(chain[d])) for d in range(len(chain)))


def _nested_groups(fit: EquatableModel) -> list[str]:
    """The grouping factors from the lowest level up (most clusters first); FormulaError unless nested."""
    terms = fit.design.reterms
    groups = list(dict.fromkeys(t.group for t in terms))
    codes = {g: next(t.codes for t in terms if t.group == g) for g in groups}
    groups.sort(key=lambda g: -int(codes[g].max() + 1))
    for low, high in zip(groups, groups[1:]):
        pairs = np.unique(np.column_stack([codes[low], codes[high]]), axis=0)
        if len(pairs) != len(np.unique(codes[low])):
            raise FormulaError(f"equations() writes models whose grouping factors are nested; {low!r} is not "
                               f"nested in {high!r} (crossed random effects have no levels to write)",
                               fit.formula)
    return groups
