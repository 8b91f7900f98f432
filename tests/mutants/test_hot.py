"""A mutant patched into an imported module (hot.py): when it may be, and that the patched function runs the
mutated text wherever it is called from."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from offload_conformance.harness.tools.mutants import hot, operators
from offload_conformance.harness.tools.mutants.model import Mutant, Target

SOURCE = textwrap.dedent(
    '''\
    import contextlib


    def scale(x, factor=2):
        """Multiply."""
        return x * factor


    @contextlib.contextmanager
    def moved(box):
        box.append("in")
        yield box


    class Base:
        def name(self):
            return "base"


    class Child(Base):
        @staticmethod
        def double(x):
            return x + x

        def name(self):
            return "child of " + super().name()
    '''
)


def _target(qualname: str, source: str = SOURCE) -> Target:
    import ast

    from offload_conformance.harness.tools.mutants.targets import function_defs

    (fn,) = function_defs(ast.parse(source), qualname)
    return Target(f"hotmod.{qualname}", "hotmod", "hotmod/__init__.py", qualname, fn.lineno, fn.end_lineno or 0)


def _mutant(qualname: str, operator: str) -> Mutant:
    return next(m for m in operators.mutants(_target(qualname), SOURCE) if m.operator == operator)


def _edit(qualname: str, old: str, new: str) -> Mutant:
    """A mutant the operators do not make (an edit of a default argument, of a string)."""
    start = SOURCE.index(old)
    line = SOURCE.count("\n", 0, start) + 1
    return Mutant(
        f"hotmod.{qualname}:{line}:edit:0",
        f"hotmod.{qualname}",
        "hotmod/__init__.py",
        line,
        "edit",
        "",
        start,
        start + len(old),
        new,
    )


@pytest.fixture
def hotmod(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "hotmod").mkdir()
    (tmp_path / "hotmod" / "__init__.py").write_text(SOURCE)
    sys.path.insert(0, str(tmp_path))
    try:
        import hotmod  # noqa: F401

        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("hotmod", None)


def _mutated(root: Path, mutant: Mutant) -> str:
    copy = root / "overlay" / "hotmod" / "__init__.py"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(operators.apply(SOURCE, mutant))
    return str(copy)


def test_an_edit_in_the_body_of_a_function_that_has_not_run_can_be_patched() -> None:
    mutant = _mutant("scale", "return-none")
    start, lines = hot.body(SOURCE, _target("scale"))
    assert SOURCE[start:].startswith("return x * factor"), "the body starts after the docstring"
    assert hot.reason_not_hot(mutant, start, lines, frozenset()) is None
    assert "ran before the fork" in (hot.reason_not_hot(mutant, start, lines, frozenset({lines[-1]})) or "")


def test_an_edit_the_import_evaluates_is_not_patched() -> None:
    """A default argument is evaluated when the def runs, at import: patching the code would not change it."""
    start, lines = hot.body(SOURCE, _target("scale"))
    default = _edit("scale", "factor=2", "factor=3")
    assert "outside the function's body" in (hot.reason_not_hot(default, start, lines, frozenset()) or "")
    assert hot.reason_not_hot(default, start, lines, frozenset({4})) is not None  # the def line runs at import


def test_a_patched_function_runs_the_mutant_for_every_caller(hotmod: Path) -> None:
    import hotmod as module

    before = module.scale  # a reference taken before the patch (another module's `from hotmod import scale`)
    assert hot.patch("scale", "hotmod/__init__.py", _mutated(hotmod, _mutant("scale", "return-none"))) is None
    assert before(3) is None and module.scale(3) is None


def test_a_context_manager_a_static_method_and_a_method_using_super_are_patched(hotmod: Path) -> None:
    import hotmod as module

    moved = _mutant("moved", "remove-stmt")
    assert hot.patch("moved", "hotmod/__init__.py", _mutated(hotmod, moved)) is None
    with module.moved([]) as box:
        assert box == [], "contextmanager's wrapper calls the patched generator"
    double = _mutant("Child.double", "return-none")
    assert hot.patch("Child.double", "hotmod/__init__.py", _mutated(hotmod, double)) is None
    assert module.Child.double(2) is None and module.Child().double(2) is None
    name = _edit("Child.name", '"child of "', '"kid of "')
    assert hot.patch("Child.name", "hotmod/__init__.py", _mutated(hotmod, name)) is None  # closes over __class__
    assert module.Child().name() == "kid of base"


def test_what_cannot_be_patched_says_why_and_changes_nothing(hotmod: Path) -> None:
    import hotmod as module

    mutated = _mutated(hotmod, _mutant("scale", "return-none"))
    assert "not imported" in (hot.patch("scale", "elsewhere/__init__.py", mutated) or "")
    assert "no function" in (hot.patch("missing", "hotmod/__init__.py", mutated) or "")
    renamed = Path(mutated).with_name("renamed.py")
    renamed.write_text(SOURCE.replace("def scale(", "def scaled("))
    assert "not one def" in (hot.patch("scale", "hotmod/__init__.py", str(renamed)) or "")
    no_super = _mutated(hotmod, _mutant("Child.name", "return-none"))  # `return None`: no __class__ cell
    assert "closes over other names" in (hot.patch("Child.name", "hotmod/__init__.py", no_super) or "")
    assert module.scale(3) == 6 and module.Child().name() == "child of base"


def test_a_target_file_names_its_module() -> None:
    assert hot.module_of("transformers/modeling_utils.py") == "transformers.modeling_utils"
    assert hot.module_of("accelerate/utils/__init__.py") == "accelerate.utils"
