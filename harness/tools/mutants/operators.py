"""Mutation operators: every single-site edit of a target function, as a source span and its replacement.

Why not mutmut or cosmic-ray: both mutate a project's own source tree in place and drive their own test runner.
Here the mutated code is an installed third-party package, written into an overlay copy and judged by our own
runner; and an edit must keep every line of the file where it was (coverage.py, which decides whether a cell
reaches a mutant, reports lines), so edits are exact spans of ast nodes, not a re-rendered module.

An edit replaces the span of one node. It keeps the span's number of lines: a statement becomes `pass` and blank
lines, an expression is padded inside parentheses, an operator token is swapped in place. Docstrings, asserts,
logging and `warnings.warn` calls, the expression a `raise` raises (a message is never a behaviour we can see)
and the inside of f-strings are not mutated; a `raise` statement itself is removed like any statement.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate, pairwise

from offload_conformance.harness.tools.mutants.model import Mutant, Target
from offload_conformance.harness.tools.mutants.targets import function_defs

OPERATORS = ("negate-cond", "drop-operand", "and-or", "compare", "boundary", "const", "dict-key", "default-none")
OPERATORS += ("remove-stmt", "remove-call", "return-none", "return-early", "swap-args", "slice-bound", "drop-kwarg")
OPERATORS += ("binop",)

_PAIRS = ((ast.Eq, ast.NotEq), (ast.Is, ast.IsNot), (ast.In, ast.NotIn), (ast.Lt, ast.GtE), (ast.Gt, ast.LtE))
_FLIP = {a: b for pair in _PAIRS for a, b in (pair, pair[::-1])}
_TEXT = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Is: "is"}
_TEXT |= {ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.And: "and", ast.Or: "or", ast.Add: "+"}
_TEXT |= {ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//"}
_BOUNDARY = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult}
_TOKEN = re.compile(r"==|!=|<=|>=|<|>|//|\*|\+|-|\bis\s+not\b|\bnot\s+in\b|\bis\b|\bin\b|\band\b|\bor\b")
_COMMA = re.compile(r"[ \t]*,[ \t]*")
_ATOMS = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant, ast.List, ast.Dict, ast.Set)
_REMOVABLE = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Raise, ast.Delete, ast.Break, ast.Continue)
_LOG_LEVELS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log", "warning_once", "info_once"}
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    replacement: str
    operator: str
    before: str  # what the description shows
    after: str


class Source:
    """The file's text, with ast positions (UTF-8 byte columns) turned into character offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        self.starts = list(accumulate([0] + [len(line) + 1 for line in self.lines]))

    def offset(self, line: int, col: int) -> int:
        text = self.lines[line - 1]
        return self.starts[line - 1] + (col if text.isascii() else len(text.encode()[:col].decode()))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def seg(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.text[start:end]

    def expr(self, node: ast.AST, text: str, bare: bool, op: str, after: ast.AST | str) -> _Edit:
        """`node` replaced by the expression `text`, in parentheses holding the span's line count unless `bare`."""
        start, end = self.span(node)
        pad = self.text.count("\n", start, end) - text.count("\n")
        if pad or not bare:
            text = "(" + text + "\n" * max(pad, 0) + ")"
        return _Edit(start, end, text, op, _show(node), _show(after))

    def stmt(self, node: ast.stmt, text: str, op: str, after: str) -> _Edit:
        """Statement `node` (with its decorators) replaced by the statement `text` and blank lines."""
        line = node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else node.lineno
        start, end = self.offset(line, node.col_offset), self.span(node)[1]
        return _Edit(start, end, text + "\n" * self.text.count("\n", start, end), op, _show(node), after)

    def find(self, pattern: re.Pattern[str], left: ast.AST, right: ast.AST) -> tuple[int, int]:
        """The span of the first `pattern` between two sibling nodes (only parens, blanks and comments are there)."""
        start = self.span(left)[1]
        gap = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), self.text[start : self.span(right)[0]])
        found = pattern.search(gap)
        assert found, f"no {pattern.pattern} in {gap!r}"
        return start + found.start(), start + found.end()

    def token(self, left: ast.AST, right: ast.AST, new: str, op: str, node: ast.AST, after: ast.AST) -> _Edit:
        """The operator token between `left` and `right` replaced by `new`."""
        start, end = self.find(_TOKEN, left, right)
        return _Edit(start, end, new, op, _show(node), _show(after))


def mutants(target: Target, source: str) -> list[Mutant]:
    """Every single-site mutant of `target`, whose file has the text `source`; each compiles and differs."""
    src = Source(source)
    fn = next((d for d in function_defs(ast.parse(source), target.qualname) if d.lineno == target.first_line), None)
    if fn is None:
        raise ValueError(f"no def of {target.qualname} at line {target.first_line} of {target.file}")
    slices = [b for s in ast.walk(fn) if isinstance(s, ast.Slice) for b in (s.lower, s.upper)]
    bounds = {id(n) for b in slices if _int_value(b) is not None for n in ast.walk(b)}  # const leaves them alone
    edits = [(e, _line(stmt)) for node, stmt, loop in _walk(fn) for e in _edits(src, node, stmt, loop, bounds)]
    edits += _return_early(src, fn)
    edits.sort(key=lambda el: (el[0].start, el[0].end))  # stable: the variants of one span keep their order
    lo, hi = src.starts[fn.lineno - 1], src.starts[fn.end_lineno]
    seen, counts, out = {source[lo:hi]}, Counter[tuple[int, str]](), []
    for e, line in edits:
        text = source[lo : e.start] + e.replacement + source[e.end : hi]
        if text in seen or not _compiles(text, indented=fn.col_offset > 0):
            continue
        seen.add(text)
        n = counts[line, e.operator]
        counts[line, e.operator] += 1
        mid = f"{target.name}:{line}:{e.operator}:{n}"
        desc = f"`{e.before}` -> `{e.after}`"
        out.append(Mutant(mid, target.name, target.file, line, e.operator, desc, e.start, e.end, e.replacement))
    return out


def apply(source: str, mutant: Mutant) -> str:
    return source[: mutant.start] + mutant.replacement + source[mutant.end :]


def _compiles(function_text: str, indented: bool) -> bool:
    """Whether the def compiles: only its lines are compiled (a method under an `if 1:`), the rest is unchanged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarning: `x is not 1`, say
        try:
            compile(("if 1:\n" if indented else "") + function_text, "<mutant>", "exec")
        except (SyntaxError, ValueError):
            return False
    return True


def _walk(fn: ast.AST) -> Iterator[tuple[ast.AST, ast.AST, bool]]:
    """(node, its innermost statement, inside a loop of this function) for the nodes of `fn`'s body open to edits."""

    def visit(node: ast.AST, stmt: ast.AST, loop: bool) -> Iterator[tuple[ast.AST, ast.AST, bool]]:
        if isinstance(node, ast.Assert) or _is_log(node) or (isinstance(node, ast.Expr) and _is_log(node.value)):
            return
        stmt = node if isinstance(node, ast.stmt | ast.excepthandler) else stmt
        yield node, stmt, loop
        if isinstance(node, ast.Raise | ast.JoinedStr):
            return
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns"):
                continue
            in_loop = isinstance(node, ast.For | ast.AsyncFor | ast.While) and name in ("body", "orelse")
            inner = False if isinstance(node, _SCOPES) else loop or in_loop
            for child in _body(node) if name == "body" else value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    yield from visit(child, stmt, inner)

    for s in _body(fn):
        yield from visit(s, s, False)


def _edits(src: Source, node: ast.AST, stmt: ast.AST, loop: bool, bounds: set[int]) -> Iterator[_Edit]:
    if isinstance(node, ast.If | ast.While | ast.IfExp):
        yield _negate(src, node.test)
    elif isinstance(node, ast.comprehension):
        yield from (_negate(src, cond) for cond in node.ifs)
    elif isinstance(node, ast.BoolOp):
        yield from _boolop(src, node)
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            for name, table in (("compare", _FLIP), ("boundary", _BOUNDARY)):
                if type(op) in table:
                    new = _copy(node, ops=[*node.ops[:i], table[type(op)](), *node.ops[i + 1 :]])
                    left = node.comparators[i - 1] if i else node.left
                    yield src.token(left, node.comparators[i], _TEXT[table[type(op)]], name, node, new)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP and not _is_str(node.left, node.right):
        new = _copy(node, op=_BINOP[type(node.op)]())
        yield src.token(node.left, node.right, _TEXT[type(new.op)], "binop", node, new)
    elif isinstance(node, ast.Constant) and id(node) not in bounds:  # slice-bound edits slice bounds
        for value in _const_values(node.value):
            yield src.expr(node, repr(value), True, "const", repr(value))
    elif isinstance(node, ast.Dict | ast.Subscript):
        for key in node.keys if isinstance(node, ast.Dict) else [node.slice]:
            yield from _key(src, key)
    elif isinstance(node, ast.Call):
        yield from _call(src, node, stmt)
    elif isinstance(node, ast.Slice):
        yield from _slice(src, node)
    elif isinstance(node, ast.Return) and node.value and ast.unparse(node.value) != "None":
        yield src.stmt(node, "return None", "return-none", "return None")
    bare = isinstance(node, ast.AnnAssign) and node.value is None  # an annotation only
    text = isinstance(node, ast.Expr) and _is_str(node.value)  # a string statement
    if (isinstance(node, _REMOVABLE) or (isinstance(node, ast.Return) and loop)) and not (bare or text):
        yield src.stmt(node, "pass", "remove-stmt", "pass")


def _negate(src: Source, test: ast.expr) -> _Edit:
    return src.expr(test, f"not ({src.seg(test)})", True, "negate-cond", ast.UnaryOp(ast.Not(), test))


def _boolop(src: Source, node: ast.BoolOp) -> Iterator[_Edit]:
    """Each operand dropped (with its operator token), then `and` <-> `or` on every token; the rest kept verbatim."""
    (start, end), values = src.span(node), node.values
    tokens = [src.find(_TOKEN, a, b) for a, b in pairwise(values)]
    for i in range(len(values)):
        cut = (start, tokens[0][1]) if i == 0 else (tokens[i - 1][0], tokens[i][0] if i < len(tokens) else end)
        rest = values[:i] + values[i + 1 :]
        new = rest[0] if len(rest) == 1 else ast.BoolOp(node.op, rest)
        text = (src.text[start : cut[0]] + src.text[cut[1] : end]).strip(" ")
        yield src.expr(node, text, len(rest) > 1 or isinstance(new, _ATOMS), "drop-operand", new)
    swapped = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    text, at = "", tokens[0][0]
    for token_start, token_end in tokens:
        text, at = text + src.text[at:token_start] + _TEXT[type(swapped)], token_end
    yield _Edit(tokens[0][0], tokens[-1][1], text, "and-or", _show(node), _show(_copy(node, op=swapped)))


def _call(src: Source, node: ast.Call, stmt: ast.AST) -> Iterator[_Edit]:
    args = node.args
    one = len(args) == 1 and not isinstance(args[0], ast.Starred) and all(k.arg for k in node.keywords)
    if one and not (isinstance(stmt, ast.Expr) and stmt.value is node):  # removing the statement covers that
        yield src.expr(node, src.seg(args[0]), isinstance(args[0], _ATOMS), "remove-call", args[0])
    if len(args) >= 2 and not any(isinstance(a, ast.Starred) for a in args[:2]):
        (start, mid), (mid_end, end) = src.span(args[0]), src.span(args[1])
        text = src.seg(args[1]) + src.text[mid:mid_end] + src.seg(args[0])
        yield _Edit(start, end, text, "swap-args", _show(node), _show(_copy(node, args=[args[1], args[0], *args[2:]])))
    parts = sorted([*args, *node.keywords], key=lambda n: (n.lineno, n.col_offset))
    for i, kw in enumerate(parts):
        if isinstance(kw, ast.keyword) and kw.arg in ("dtype", "device"):
            start, end = src.span(kw)
            if i:  # from the comma before it
                start = src.find(_COMMA, parts[i - 1], kw)[0]
            elif len(parts) > 1:  # up to the comma after it
                end = src.find(_COMMA, kw, parts[1])[1]
            elif trailing := _COMMA.match(src.text, end):
                end = trailing.end()
            after = _copy(node, keywords=[k for k in node.keywords if k is not kw])
            yield _Edit(start, end, "\n" * src.text.count("\n", start, end), "drop-kwarg", _show(node), _show(after))
    is_getattr = isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(args) == 3
    dict_method = isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "pop", "setdefault")
    if dict_method and args:  # d.get/pop/setdefault(KEY, ...)
        yield from _key(src, args[0])
    default = args[-1] if is_getattr or (dict_method and len(args) == 2) else None
    if isinstance(default, ast.Constant) and isinstance(default.value, str | float):  # a str or float default
        yield src.expr(default, "None", True, "default-none", "None")


def _key(src: Source, key: ast.AST | None) -> Iterator[_Edit]:
    """A non-empty string key, `_mutant` appended to it (its quotes kept)."""
    if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value:
        literal = src.seg(key)
        quote = literal[-3:] if literal[-3:] in ('"""', "'''") else literal[-1]
        new = literal[: -len(quote)] + "_mutant" + quote
        yield src.expr(key, new, True, "dict-key", repr(key.value + "_mutant"))


def _slice(src: Source, node: ast.Slice) -> Iterator[_Edit]:
    """Drop the lower bound, drop the upper bound, an integer bound + 1."""
    lower, upper = (src.seg(b) if b else "" for b in (node.lower, node.upper))
    variants = [(node.lower, "", upper), (node.upper, lower, "")]
    if (value := _int_value(node.lower)) is not None:
        variants.append((node.lower, str(value + 1), upper))
    if (value := _int_value(node.upper)) is not None:
        variants.append((node.upper, lower, str(value + 1)))
    start, end = src.span(node)
    for bound, new_lower, new_upper in variants:
        if bound is not None:
            text = f"{new_lower}:{new_upper}" + (f":{src.seg(node.step)}" if node.step else "")
            pad = "\n" * (src.text.count("\n", start, end) - text.count("\n"))  # inside brackets: no parens
            yield _Edit(start, end, text + pad, "slice-bound", src.seg(node), text)


def _return_early(src: Source, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[_Edit, int]]:
    """`return None` in place of the first statement: the rest is dead code and keeps its lines. Not in generators."""
    body = _body(fn)
    if not body or any(isinstance(n, ast.Yield | ast.YieldFrom) for n in _own_nodes(fn)):
        return []
    return [(src.stmt(body[0], "return None", "return-early", "return None"), _line(body[0]))]


def _const_values(value: object) -> list[object]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [v for v in dict.fromkeys((value + 1, value - 1, 0)) if v != value]
    return []


def _int_value(node: ast.AST | None) -> int | None:
    """The value of an integer literal (`1`, `-1`), or None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int_value(node.operand)
        return -inner if inner is not None else None
    return node.value if isinstance(node, ast.Constant) and type(node.value) is int else None


def _is_log(node: ast.AST) -> bool:
    """A logging call or `warnings.warn`: what it says is never a behaviour a cell sees."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    owner, attr = node.func.value, node.func.attr
    name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
    logging = name == "logging" and attr in _LOG_LEVELS
    return name in ("logger", "_logger") or (name, attr) == ("warnings", "warn") or logging


def _is_str(*nodes: ast.AST) -> bool:
    return any(isinstance(n, ast.JoinedStr) or isinstance(getattr(n, "value", None), str) for n in nodes)


def _body(node: ast.AST) -> list[ast.AST]:
    """`node.body` without its docstring."""
    body = getattr(node, "body", [])
    if isinstance(node, _SCOPES) and not isinstance(node, ast.Lambda) and ast.get_docstring(node, False) is not None:
        return body[1:]
    return body if isinstance(body, list) else [body]


def _own_nodes(fn: ast.AST) -> Iterator[ast.AST]:
    """The nodes of `fn`'s body outside nested functions, lambdas and classes."""
    for child in ast.iter_child_nodes(fn):
        yield child
        if not isinstance(child, _SCOPES):
            yield from _own_nodes(child)


def _line(stmt: ast.AST) -> int:
    """The line coverage.py reports for a statement: its first, a decorated def's first decorator."""
    decorators = getattr(stmt, "decorator_list", None)
    return decorators[0].lineno if decorators else stmt.lineno


def _copy(node: ast.AST, **fields: object) -> ast.AST:
    return type(node)(**(vars(node) | fields))


def _show(node: ast.AST | str, width: int = 36) -> str:
    text = " ".join((node if isinstance(node, str) else ast.unparse(node)).split())
    return text if len(text) <= width else text[: width - 3] + "..."
