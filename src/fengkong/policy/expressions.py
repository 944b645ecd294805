"""The policy expression language: parsed into a typed tree, never evaluated with ``eval``.

Grammar (lowest precedence first)::

    expr       := and_expr ('or' and_expr)*
    and_expr   := not_expr ('and' not_expr)*
    not_expr   := 'not' not_expr | comparison
    comparison := sum [ ('=='|'!='|'<'|'<='|'>'|'>=') sum
                      | ['not'] 'in' '[' literal (',' literal)* ']'
                      | 'is' ['not'] 'missing' ]
    sum        := product (('+'|'-') product)*
    product    := unary (('*'|'/') unary)*
    unary      := '-' unary | atom
    atom       := NUMBER | STRING | 'true' | 'false' | NAME | NAME '(' expr (',' expr)* ')' | '(' expr ')'

Missing values follow SQL's three-valued logic: a comparison or arithmetic with a missing operand is
missing; ``and``/``or`` are Kleene (``false and missing`` is false); a rule fires only when its condition is
definitely true. ``x is missing`` and ``coalesce(x, 0)`` handle missing values explicitly. Division by zero
gives missing. All numbers are 64-bit floats, so the row and columnar evaluators agree bit for bit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal as Lit

from fengkong.features.registry import FeatureRegistry, FeatureType
from fengkong.policy.errors import ExpressionError

Value = float | str | bool


# ---------------------------------------------------------------------------------------------- the tree


@dataclass(frozen=True, slots=True)
class Node:
    pos: int


@dataclass(frozen=True, slots=True)
class Const(Node):
    value: Value


@dataclass(frozen=True, slots=True)
class Ref(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Neg(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class Arith(Node):
    op: Lit["+", "-", "*", "/"]
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: Lit["==", "!=", "<", "<=", ">", ">="]
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logic(Node):
    op: Lit["and", "or"]
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class InList(Node):
    operand: Node
    values: tuple[Value, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class IsMissing(Node):
    operand: Node
    negated: bool


@dataclass(frozen=True, slots=True)
class Call(Node):
    func: Lit["coalesce", "min", "max", "abs"]
    args: tuple[Node, ...]


FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "coalesce": (2, None),
    "min": (2, None),
    "max": (2, None),
    "abs": (1, 1),
}
KEYWORDS = {"and", "or", "not", "in", "is", "missing", "true", "false"}


# ---------------------------------------------------------------------------------------------- lexing


@dataclass(frozen=True, slots=True)
class Token:
    kind: Lit["num", "str", "name", "op", "end"]
    text: str
    pos: int


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            hint = " (use 'and', 'or', 'not')" if ch in "&|!" else ""
            hint = " (use == to compare)" if ch == "=" else hint
            if ch in "'\"":
                raise ExpressionError("unterminated string", pos)
            raise ExpressionError(f"unexpected character {ch!r}{hint}", pos)
        kind = m.lastgroup
        if kind != "ws":
            assert kind is not None
            tokens.append(Token(kind, m.group(), pos))  # type: ignore[arg-type]
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


# ---------------------------------------------------------------------------------------------- parsing


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _is(self, text: str) -> bool:
        return self.tok.kind in ("op", "name") and self.tok.text == text

    def _expect(self, text: str) -> Token:
        if not self._is(text):
            raise ExpressionError(f"expected {text!r}, found {self._describe(self.tok)}", self.tok.pos)
        return self._advance()

    @staticmethod
    def _describe(tok: Token) -> str:
        return "end of expression" if tok.kind == "end" else repr(tok.text)

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ExpressionError("empty expression", 0)
        node = self._or()
        tail = self.tok
        if tail.kind != "end":
            raise ExpressionError(f"unexpected {self._describe(tail)}", tail.pos)
        return node

    def _or(self) -> Node:
        first = self._and()
        operands = [first]
        while self._is("or"):
            self._advance()
            operands.append(self._and())
        return first if len(operands) == 1 else Logic(first.pos, "or", tuple(operands))

    def _and(self) -> Node:
        first = self._not()
        operands = [first]
        while self._is("and"):
            self._advance()
            operands.append(self._not())
        return first if len(operands) == 1 else Logic(first.pos, "and", tuple(operands))

    def _not(self) -> Node:
        if self._is("not"):
            tok = self._advance()
            return Not(tok.pos, self._not())
        return self._comparison()

    def _comparison(self) -> Node:
        left = self._sum()
        tok = self.tok
        if tok.kind == "op" and tok.text in ("==", "!=", "<", "<=", ">", ">="):
            self._advance()
            right = self._sum()
            nxt = self.tok
            if nxt.kind == "op" and nxt.text in ("==", "!=", "<", "<=", ">", ">="):
                raise ExpressionError("chained comparisons are not allowed; join them with 'and'", nxt.pos)
            return Compare(tok.pos, tok.text, left, right)  # type: ignore[arg-type]
        if self._is("not") and self.tokens[self.i + 1].text == "in":
            self._advance()
            self._advance()
            return InList(tok.pos, left, self._list(), negated=True)
        if self._is("in"):
            self._advance()
            return InList(tok.pos, left, self._list(), negated=False)
        if self._is("is"):
            self._advance()
            negated = False
            if self._is("not"):
                self._advance()
                negated = True
            self._expect("missing")
            return IsMissing(tok.pos, left, negated)
        return left

    def _list(self) -> tuple[Value, ...]:
        self._expect("[")
        values: list[Value] = []
        while True:
            tok = self.tok
            neg = False
            if tok.kind == "op" and tok.text == "-":
                self._advance()
                neg = True
                tok = self.tok
            atom = self._literal(tok)
            if atom is None:
                raise ExpressionError(f"a list holds only literals, found {self._describe(tok)}", tok.pos)
            if neg:
                if not isinstance(atom, float):
                    raise ExpressionError("'-' applies only to numbers", tok.pos)
                atom = -atom
            values.append(atom)
            self._advance()
            if self._is(","):
                self._advance()
                continue
            self._expect("]")
            break
        kinds = {type(v) for v in values}
        if len(kinds) > 1:
            raise ExpressionError("a list must hold values of one type", tok.pos)
        return tuple(values)

    @staticmethod
    def _literal(tok: Token) -> Value | None:
        if tok.kind == "num":
            return float(tok.text)
        if tok.kind == "str":
            return _unquote(tok.text)
        if tok.kind == "name" and tok.text in ("true", "false"):
            return tok.text == "true"
        return None

    def _sum(self) -> Node:
        node = self._product()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            tok = self._advance()
            node = Arith(tok.pos, tok.text, node, self._product())  # type: ignore[arg-type]
        return node

    def _product(self) -> Node:
        node = self._unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            tok = self._advance()
            node = Arith(tok.pos, tok.text, node, self._unary())  # type: ignore[arg-type]
        return node

    def _unary(self) -> Node:
        if self.tok.kind == "op" and self.tok.text == "-":
            tok = self._advance()
            return Neg(tok.pos, self._unary())
        return self._atom()

    def _atom(self) -> Node:
        tok = self.tok
        literal = self._literal(tok)
        if literal is not None:
            self._advance()
            return Const(tok.pos, literal)
        if tok.kind == "op" and tok.text == "(":
            self._advance()
            node = self._or()
            self._expect(")")
            return node
        if tok.kind == "name":
            if tok.text in KEYWORDS:
                raise ExpressionError(f"unexpected keyword {tok.text!r}", tok.pos)
            self._advance()
            if self._is("("):
                return self._call(tok)
            return Ref(tok.pos, tok.text)
        raise ExpressionError(f"expected a value, found {self._describe(tok)}", tok.pos)

    def _call(self, name: Token) -> Node:
        if name.text not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"unknown function {name.text!r} (known: {known})", name.pos)
        self._expect("(")
        args = [self._or()]
        while self._is(","):
            self._advance()
            args.append(self._or())
        self._expect(")")
        lo, hi = FUNCTIONS[name.text]
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = str(lo) if lo == hi else f"at least {lo}"
            raise ExpressionError(f"{name.text}() takes {want} argument(s), got {len(args)}", name.pos)
        return Call(name.pos, name.text, tuple(args))  # type: ignore[arg-type]


def parse(text: str) -> Node:
    """Parse an expression into its tree, or raise ExpressionError naming the position."""
    return _Parser(text).parse()


# ---------------------------------------------------------------------------------------------- typing

_T = FeatureType


def _literal_type(value: Value) -> FeatureType:
    if isinstance(value, bool):
        return _T.BOOL
    if isinstance(value, float):
        return _T.NUMBER
    return _T.STRING


def check(node: Node, features: FeatureRegistry) -> FeatureType:
    """The type of an expression; raises ExpressionError on unknown features and mixed types."""
    match node:
        case Const(value=value):
            return _literal_type(value)
        case Ref(name=name, pos=pos):
            feature = features.get(name)
            if feature is None:
                raise ExpressionError(f"unknown feature {name!r}{_suggest(name, features)}", pos)
            return feature.type
        case Neg(operand=operand):
            _want(operand, _T.NUMBER, features, "'-'")
            return _T.NUMBER
        case Arith(op=op, left=left, right=right):
            _want(left, _T.NUMBER, features, f"'{op}'")
            _want(right, _T.NUMBER, features, f"'{op}'")
            return _T.NUMBER
        case Compare(op=op, left=left, right=right, pos=pos):
            lt, rt = check(left, features), check(right, features)
            if lt != rt:
                raise ExpressionError(f"cannot compare {lt} with {rt} using '{op}'", pos)
            if op not in ("==", "!=") and lt != _T.NUMBER:
                raise ExpressionError(f"'{op}' compares numbers only, not {lt}", pos)
            for side, other in ((left, right), (right, left)):
                _check_category(side, other, features)
            return _T.BOOL
        case Logic(op=op, operands=operands):
            for operand in operands:
                _want(operand, _T.BOOL, features, f"'{op}'")
            return _T.BOOL
        case Not(operand=operand):
            _want(operand, _T.BOOL, features, "'not'")
            return _T.BOOL
        case InList(operand=operand, values=values, pos=pos):
            ot = check(operand, features)
            vt = _literal_type(values[0])
            if ot != vt:
                raise ExpressionError(f"cannot look for a {ot} in a list of {vt}s", pos)
            for value in values:
                _check_category(operand, Const(pos, value), features)
            return _T.BOOL
        case IsMissing(operand=operand):
            check(operand, features)
            return _T.BOOL
        case Call(func=func, args=args, pos=pos):
            if func == "coalesce":
                types = {check(a, features) for a in args}
                if len(types) > 1:
                    raise ExpressionError("coalesce() arguments must all have one type", pos)
                return types.pop()
            for arg in args:
                _want(arg, _T.NUMBER, features, f"{func}()")
            return _T.NUMBER
    raise AssertionError(f"unhandled node {node!r}")  # pragma: no cover


def _want(node: Node, want: FeatureType, features: FeatureRegistry, what: str) -> None:
    got = check(node, features)
    if got != want:
        raise ExpressionError(f"{what} needs a {want}, got a {got}", node.pos)


def _check_category(side: Node, other: Node, features: FeatureRegistry) -> None:
    """Catch ``employment == 'salary'`` (a value the feature never takes) at load time."""
    if isinstance(side, Ref) and isinstance(other, Const) and isinstance(other.value, str):
        feature = features.get(side.name)
        if feature is not None and feature.values is not None and other.value not in feature.values:
            allowed = ", ".join(feature.values)
            raise ExpressionError(f"{side.name} is never {other.value!r} (its values: {allowed})", other.pos)


def _suggest(name: str, features: FeatureRegistry) -> str:
    import difflib

    close = difflib.get_close_matches(name, features.names(), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def references(node: Node) -> set[str]:
    """The feature names an expression reads."""
    match node:
        case Ref(name=name):
            return {name}
        case Neg(operand=o) | Not(operand=o) | InList(operand=o) | IsMissing(operand=o):
            return references(o)
        case Arith(left=left, right=right) | Compare(left=left, right=right):
            return references(left) | references(right)
        case Logic(operands=items) | Call(args=items):
            out: set[str] = set()
            for item in items:
                out |= references(item)
            return out
    return set()
