"""The mutation operators on small hand-written functions: exact mutated texts, stable ids, lines kept in place."""

from __future__ import annotations

import ast
import textwrap

import pytest

from offload_conformance.harness.tools.mutants.model import Mutant, Target
from offload_conformance.harness.tools.mutants.operators import OPERATORS, apply, mutants
from offload_conformance.harness.tools.mutants.targets import function_defs


def _target(source: str, qualname: str = "f") -> Target:
    (node,) = function_defs(ast.parse(source), qualname)
    return Target(f"toy.{qualname}", "toy", "toy.py", qualname, node.lineno, node.end_lineno or node.lineno)


def _mutants(source: str, qualname: str = "f") -> list[Mutant]:
    return mutants(_target(source, qualname), source)


def _changes(source: str, operator: str, qualname: str = "f") -> list[list[tuple[int, str]]]:
    """For each mutant of `operator`, the lines (number, new text) where its file differs from `source`."""
    old = source.split("\n")
    out = []
    for m in _mutants(source, qualname):
        if m.operator == operator:
            new = apply(source, m).split("\n")
            assert len(new) == len(old), m
            out.append([(i + 1, b) for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b])
    return out


def _src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_negate_cond_on_if_while_ifexp_and_comprehension_tests() -> None:
    source = _src("""
        def f(a, b):
            if a == 1:
                b = 2
            while b:
                b = 0
            return b if a else [x for x in b if x]
    """)
    assert _changes(source, "negate-cond") == [
        [(2, "    if not (a == 1):")],
        [(4, "    while not (b):")],
        [(6, "    return b if not (a) else [x for x in b if x]")],
        [(6, "    return b if a else [x for x in b if not (x)]")],
    ]


def test_drop_operand_and_and_or() -> None:
    source = _src("""
        def f(a, b, c):
            return a and b or c
    """)
    assert _changes(source, "drop-operand") == [
        [(2, "    return b or c")],
        [(2, "    return a or c")],
        [(2, "    return c")],
        [(2, "    return (a and b)")],
    ]
    assert _changes(source, "and-or") == [[(2, "    return a or b or c")], [(2, "    return a and b and c")]]


def test_drop_operand_keeps_a_multiline_condition_on_its_lines() -> None:
    source = _src("""
        def f(a, b):
            return (
                a
                and b
            )
    """)
    assert _changes(source, "drop-operand") == [[(3, "        (b"), (4, ")")], [(4, "")]]


def test_compare_flips_and_boundaries() -> None:
    source = _src("""
        def f(a, b, c):
            return a == b, a is not None, a in b, a < b <= c
    """)
    assert _changes(source, "compare") == [
        [(2, "    return a != b, a is not None, a in b, a < b <= c")],
        [(2, "    return a == b, a is None, a in b, a < b <= c")],
        [(2, "    return a == b, a is not None, a not in b, a < b <= c")],
        [(2, "    return a == b, a is not None, a in b, a >= b <= c")],
        [(2, "    return a == b, a is not None, a in b, a < b > c")],
    ]
    assert _changes(source, "boundary") == [
        [(2, "    return a == b, a is not None, a in b, a <= b <= c")],
        [(2, "    return a == b, a is not None, a in b, a < b < c")],
    ]


def test_const_integers_and_bools_but_not_none_strings_or_slice_bounds() -> None:
    source = _src("""
        def f(x):
            y = x[1] + 0
            return y is True, x[1:], None, "s"
    """)
    assert _changes(source, "const") == [
        [(2, "    y = x[2] + 0")],
        [(2, "    y = x[0] + 0")],
        [(2, "    y = x[1] + 1")],
        [(2, "    y = x[1] + -1")],
        [(3, '    return y is False, x[1:], None, "s"')],
    ]


def test_dict_key_on_dict_literals_subscripts_and_dict_methods() -> None:
    source = _src("""
        def f(d):
            d["a"] = {'b': 1, "": 2, 3: 4}
            return d.pop("c", None), getattr(d, "e")
    """)
    assert _changes(source, "dict-key") == [
        [(2, '    d["a_mutant"] = {\'b\': 1, "": 2, 3: 4}')],
        [(2, '    d["a"] = {\'b_mutant\': 1, "": 2, 3: 4}')],
        [(3, '    return d.pop("c_mutant", None), getattr(d, "e")')],
    ]


def test_default_none_on_str_and_float_defaults() -> None:
    source = _src("""
        def f(o, d):
            return getattr(o, "name", "x"), d.get("k", 1.5), d.pop("k", 0), d.get("k")
    """)
    assert _changes(source, "default-none") == [
        [(2, '    return getattr(o, "name", None), d.get("k", 1.5), d.pop("k", 0), d.get("k")')],
        [(2, '    return getattr(o, "name", "x"), d.get("k", None), d.pop("k", 0), d.get("k")')],
    ]


def test_remove_stmt_replaces_simple_statements_with_pass() -> None:
    source = _src('''
        def f(a):
            """Doc."""
            b = a
            b += 1
            c: int = 2
            d: int
            print(b)
            "a string statement"
            for x in a:
                if x:
                    break
                continue
            for x in a:
                return x
            del b
            raise ValueError(
                "no"
            )
    ''')
    assert _changes(source, "remove-stmt") == [
        [(3, "    pass")],
        [(4, "    pass")],
        [(5, "    pass")],
        [(7, "    pass")],
        [(11, "            pass")],
        [(12, "        pass")],
        [(14, "        pass")],
        [(15, "    pass")],
        [(16, "    pass"), (17, ""), (18, "")],
    ]


def test_remove_call_with_one_positional_argument() -> None:
    source = _src("""
        def f(a):
            b = len(a)
            print(a)
            c = g(*a)
            return str(a + b), h(a, b)
    """)
    assert _changes(source, "remove-call") == [[(2, "    b = a")], [(5, "    return (a + b), h(a, b)")]]


def test_return_none() -> None:
    source = _src("""
        def f(a):
            if a:
                return
            for x in a:
                return x
            return (
                None
            )

        def g(a):
            return (
                a
            )
    """)
    assert _changes(source, "return-none") == [[(5, "        return None")]]
    assert _changes(source, "return-none", "g") == [[(11, "    return None"), (12, ""), (13, "")]]


def test_return_early_replaces_the_first_statement_and_skips_generators() -> None:
    source = _src('''
        def f(a):
            """Doc."""
            if a:
                return 1

            def inner():
                yield a
            return 2

        def g(a):
            x = yield a
    ''')
    assert _changes(source, "return-early") == [[(3, "    return None"), (4, "")]]
    assert _changes(source, "return-early", "g") == []


def test_swap_args_keeps_comments_and_lines() -> None:
    source = _src("""
        def f(a, b):
            x = g(
                a,  # first
                b,
            )
            return g(a, b, 3), h(*a, b), k(a)
    """)
    assert _changes(source, "swap-args") == [
        [(3, "        b,  # first"), (4, "        a,")],
        [(6, "    return g(b, a, 3), h(*a, b), k(a)")],
    ]


def test_slice_bounds() -> None:
    source = _src("""
        def f(a, n):
            return a[1:-1], a[:n], a[::2]
    """)
    assert _changes(source, "slice-bound") == [
        [(2, "    return a[:-1], a[:n], a[::2]")],
        [(2, "    return a[1:], a[:n], a[::2]")],
        [(2, "    return a[2:-1], a[:n], a[::2]")],
        [(2, "    return a[1:0], a[:n], a[::2]")],
        [(2, "    return a[1:-1], a[:], a[::2]")],
    ]


def test_drop_kwarg_dtype_and_device() -> None:
    source = _src("""
        def f(t, x, y, d):
            u = t.to(
                dtype=x,
            )
            return t.to(device="cpu", dtype=x), t.new(dtype=y), g(t, device=d, other=1)
    """)
    assert _changes(source, "drop-kwarg") == [
        [(3, "        ")],
        [(5, "    return t.to(dtype=x), t.new(dtype=y), g(t, device=d, other=1)")],
        [(5, '    return t.to(device="cpu"), t.new(dtype=y), g(t, device=d, other=1)')],
        [(5, '    return t.to(device="cpu", dtype=x), t.new(), g(t, device=d, other=1)')],
        [(5, '    return t.to(device="cpu", dtype=x), t.new(dtype=y), g(t, other=1)')],
    ]


def test_binop_add_sub_mult_floordiv_not_strings_or_modulo() -> None:
    source = _src("""
        def f(a, b):
            return a + b * 2, a - b // 2, "x" + a, a % b
    """)
    assert _changes(source, "binop") == [
        [(2, '    return a - b * 2, a - b // 2, "x" + a, a % b')],
        [(2, '    return a + b // 2, a - b // 2, "x" + a, a % b')],
        [(2, '    return a + b * 2, a + b // 2, "x" + a, a % b')],
        [(2, '    return a + b * 2, a - b * 2, "x" + a, a % b')],
    ]


def test_docstrings_log_messages_asserts_and_raised_messages_are_not_mutated() -> None:
    source = _src('''
        def f(a):
            """Doc with "key" and 1."""
            logger.warning("a == %d", 1 + 2)
            warnings.warn(f"{a == 1}")
            assert a == 1, "msg"
            x = {"k": 1}
            raise ValueError(f"bad {a == 2}" + str(a[0]))
    ''')
    found = {(m.line, m.operator) for m in _mutants(source)}
    assert found == {(3, "return-early"), (6, "remove-stmt"), (6, "dict-key"), (6, "const"), (7, "remove-stmt")}


def test_mutant_line_is_the_statement_line_coverage_reports() -> None:
    source = _src("""
        def f(a, b):
            x = g(
                a + 1,
            )
            if a:
                pass
            elif (b ==
                    1):
                pass
    """)
    lines = {(m.operator, m.description): m.line for m in _mutants(source)}
    assert lines["binop", "`a + 1` -> `a - 1`"] == 2
    assert lines["compare", "`b == 1` -> `b != 1`"] == 7
    assert lines["negate-cond", "`b == 1` -> `not b == 1`"] == 7


def test_non_ascii_lines_use_character_offsets() -> None:
    source = _src("""
        def f(a):
            s = "héllo"; return a == "ü" and a["ß"] < 3
    """)
    assert _changes(source, "compare") == [
        [(2, '    s = "héllo"; return a != "ü" and a["ß"] < 3')],
        [(2, '    s = "héllo"; return a == "ü" and a["ß"] >= 3')],
    ]
    assert _changes(source, "dict-key") == [[(2, '    s = "héllo"; return a == "ü" and a["ß_mutant"] < 3')]]


RICH = _src('''
    import logging

    logger = logging.getLogger(__name__)


    class Saver:
        """A class whose method is the target."""

        @staticmethod
        def save(state: dict, names: list[str], limit: int = 3) -> dict:
            """Écrit l'état — non-ASCII in the docstring."""
            out: dict = {}
            for i, name in enumerate(sorted(names, key=len)[1:-1]):
                if name in state and (
                    state[name] is not None
                    or i > limit
                ):  # a comment with == and "quotes"
                    out[name] = state["é"] if name == "ü" else state.get(name, "x")
                elif not name:
                    continue
                else:
                    logger.info("skipping %s", name)
            total = sum(len(v) * 2 for v in out.values()) - 1
            while total > limit // 2:
                total -= 1
            try:
                tensor = state["weight"].to(device="cpu", dtype=None)
            except KeyError as e:
                raise ValueError(f"no weight: {e}") from e
            finally:
                del total
            return {**out, "tensor": tensor, "n": [x for x in names if x != "" and len(x) <= 2][::-1]}
''')


def test_every_mutant_compiles_keeps_lines_and_has_a_stable_unique_id() -> None:
    target = _target(RICH, "Saver.save")
    first, second = mutants(target, RICH), mutants(target, RICH)
    assert first == second
    assert len({m.id for m in first}) == len(first) > 60
    assert {m.operator for m in first} == set(OPERATORS)
    old = RICH.split("\n")
    texts = set()
    for m in first:
        assert m.id == f"toy.Saver.save:{m.line}:{m.operator}:{m.id.rsplit(':', 1)[1]}"
        assert target.first_line < m.line <= target.last_line
        text = apply(RICH, m)
        compile(text, "toy.py", "exec")
        new = text.split("\n")
        assert len(new) == len(old), m
        first_line, last_line = RICH.count("\n", 0, m.start), RICH.count("\n", 0, m.end)
        assert new[:first_line] == old[:first_line] and new[last_line + 1 :] == old[last_line + 1 :], m
        texts.add(text)
    assert len(texts) == len(first) and RICH not in texts
    counts: dict[tuple[int, str], list[int]] = {}
    for m in first:
        counts.setdefault((m.line, m.operator), []).append(int(m.id.rsplit(":", 1)[1]))
    assert all(ns == list(range(len(ns))) for ns in counts.values())


def test_a_target_not_in_the_source_is_an_error() -> None:
    target = Target("toy.f", "toy", "toy.py", "f", 5, 6)
    with pytest.raises(ValueError, match="no def of f at line 5"):
        mutants(target, "def f():\n    return 1\n")
