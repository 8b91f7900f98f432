"""Target names resolved to defs: a package of our own for the rules, then the built-in list, installed."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from offload_conformance.harness.tools.mutants.model import MissingTarget, Target
from offload_conformance.harness.tools.mutants.operators import apply, mutants
from offload_conformance.harness.tools.mutants.targets import TARGETS, package_root, resolve

TOY = textwrap.dedent("""
    import contextlib
    import functools


    def helper(x):
        return x


    def wrapper_of(other):
        def decorate(fn):
            @functools.wraps(fn)
            def wrapped(*args, **kwargs):
                return fn(*args, **kwargs)

            return wrapped

        return decorate


    class Base:
        def inherited(self):
            return 1


    class Thing(Base):
        alias = helper

        def __init__(self):
            self._x = 0

        @property
        def x(self):
            return self._x

        @x.setter
        def x(self, value):
            self._x = value

        @staticmethod
        def static(a):
            return a + 1

        @classmethod
        @wrapper_of(helper)
        def build(cls):
            return cls()

        @functools.wraps(helper)
        def looks_like_helper(self):
            return 2


    if True:

        @contextlib.contextmanager
        def managed():
            yield 1
""")


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "toypkg").mkdir()
    (tmp_path / "toypkg" / "__init__.py").write_text("")
    (tmp_path / "toypkg" / "mod.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toypkg", raising=False)
    monkeypatch.delitem(sys.modules, "toypkg.mod", raising=False)
    return TOY


def _line(source: str, n: int) -> str:
    return source.split("\n")[n - 1].strip()


def test_a_class_expands_to_the_functions_of_its_body(toy: str) -> None:
    found, missing = resolve(["toypkg.mod.Thing"])
    assert missing == []
    assert [(t.name, t.qualname) for t in found] == [
        ("toypkg.mod.Thing.__init__", "Thing.__init__"),
        ("toypkg.mod.Thing.x", "Thing.x"),
        ("toypkg.mod.Thing.static", "Thing.static"),
        ("toypkg.mod.Thing.build", "Thing.build"),
        ("toypkg.mod.Thing.looks_like_helper", "Thing.looks_like_helper"),
    ]  # not `alias` (helper's def), not `inherited`; the property once, its getter
    assert {t.package for t in found} == {"toypkg"} and {t.file for t in found} == {"toypkg/mod.py"}
    by_name = {t.name.rsplit(".", 1)[1]: t for t in found}
    assert _line(toy, by_name["x"].first_line) == "def x(self):"
    assert "return self._x" in toy.split("\n")[by_name["x"].last_line - 1]
    assert _line(toy, by_name["build"].first_line) == "def build(cls):"


def test_functions_are_found_through_decorators_and_if_blocks(toy: str) -> None:
    found, missing = resolve(["toypkg.mod.helper", "toypkg.mod.managed", "toypkg.mod.Thing.x"])
    assert missing == []
    helper, managed, x = found
    assert (helper.first_line, helper.last_line) == (6, 7)
    assert (managed.qualname, _line(toy, managed.first_line), managed.last_line) == ("managed", "def managed():", 58)
    assert x.name == "toypkg.mod.Thing.x" and _line(toy, x.first_line) == "def x(self):"
    assert package_root("toypkg") / helper.file == package_root("toypkg") / "toypkg" / "mod.py"


def test_names_that_do_not_resolve_are_missing_with_a_reason(toy: str) -> None:
    found, missing = resolve(["toypkg.nope.fn", "toypkg.mod.Thing.nope", "nopkg.fn", "toypkg.mod", "builtins.len"])
    assert found == []
    reasons = {m.name: m.reason for m in missing}
    assert list(reasons) == ["toypkg.nope.fn", "toypkg.mod.Thing.nope", "nopkg.fn", "toypkg.mod", "builtins.len"]
    assert "no attribute 'nope'" in reasons["toypkg.nope.fn"] and "no module toypkg.nope" in reasons["toypkg.nope.fn"]
    assert "toypkg.mod.Thing has no attribute 'nope'" in reasons["toypkg.mod.Thing.nope"]
    assert reasons["nopkg.fn"] == "no module nopkg"
    assert "is a module" in reasons["toypkg.mod"]
    assert "no Python source" in reasons["builtins.len"]


def test_a_def_named_twice_is_one_target(toy: str) -> None:
    found, _ = resolve(["toypkg.mod.Thing.static", "toypkg.mod.Thing"])
    assert [t.name for t in found].count("toypkg.mod.Thing.static") == 1
    assert len(found) == 5


# The installed transformers, accelerate and huggingface_hub


@pytest.fixture(scope="module")
def installed() -> tuple[list[Target], list[MissingTarget]]:
    return resolve(TARGETS)


def test_every_builtin_target_resolves(installed: tuple[list[Target], list[MissingTarget]]) -> None:
    found, missing = installed
    assert missing == []
    assert len(found) >= 30
    assert [(t.package, t.file) for t in found] == sorted((t.package, t.file) for t in found)  # package, module
    for t in found:
        lines = (package_root(t.package) / t.file).read_text(encoding="utf-8").split("\n")
        assert lines[t.first_line - 1].lstrip().startswith(("def ", "async def ")), t
        assert t.qualname.rsplit(".", 1)[-1] in lines[t.first_line - 1], t
        assert t.first_line <= t.last_line


def test_required_functions_are_there(installed: tuple[list[Target], list[MissingTarget]]) -> None:
    qualnames = {(t.file, t.qualname) for t in installed[0]}
    for required in [
        ("transformers/modeling_utils.py", "PreTrainedModel.save_pretrained"),
        ("transformers/modeling_utils.py", "remove_tied_weights_from_state_dict"),
        ("transformers/core_model_loading.py", "revert_weight_conversion"),
        ("transformers/core_model_loading.py", "offload_and_maybe_resave_param"),
        ("transformers/core_model_loading.py", "MergeModulelist.reverse_op"),
        ("transformers/integrations/accelerate.py", "load_offloaded_parameter"),
        ("accelerate/utils/offload.py", "OffloadedWeightsLoader.__getitem__"),
        ("accelerate/hooks.py", "AlignDevicesHook.pre_forward"),
        ("huggingface_hub/serialization/_base.py", "split_state_dict_into_shards_factory"),
    ]:
        assert required in qualnames


def test_bogus_names_are_missing_on_the_installed_packages() -> None:
    found, missing = resolve(["transformers.nope.fn", "transformers.modeling_utils.PreTrainedModel.nope"])
    assert found == [] and [m.name for m in missing] == [
        "transformers.nope.fn",
        "transformers.modeling_utils.PreTrainedModel.nope",
    ]
    assert all(m.reason for m in missing)


def test_the_targets_give_enough_mutants_and_each_keeps_the_file_valid(
    installed: tuple[list[Target], list[MissingTarget]],
) -> None:
    total = 0
    for t in installed[0]:
        source = (package_root(t.package) / t.file).read_text(encoding="utf-8")
        found = mutants(t, source)
        total += len(found)
        print(f"{len(found):5d}  {t.name}")
        lines = source.count("\n")
        for m in found[::25]:  # a sample: compiling a whole large module for each of ~2500 mutants takes a while
            text = apply(source, m)
            assert text.count("\n") == lines
            compile(text, t.file, "exec")
    print(f"{total:5d}  total")
    assert total >= 300
