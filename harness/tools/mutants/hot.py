"""A mutant applied by replacing one function's code in a process that has imported the unmutated packages.

Importing transformers, accelerate and huggingface_hub from the overlay was over a third of a mutant's worker time
(fourth full analysis: 36 %). A worker forked from a server that has imported them all (from a copy of the overlay
no mutant is applied to) compiles the mutated file from its overlay and sets the target function's `__code__` to
the mutated one: every caller, bound method, decorator wrapper and forked cell then runs the mutant, as if the
module had been imported from the overlay. The overlay stays first on the path of any new interpreter.

That is the same program only when nothing kept from the import depends on the mutated text, so a mutant is
patched only when (decided before a worker starts, `reason_not_hot`):
- the edit lies in the function's body after its docstring (not its decorators, defaults or annotations, which
  the import evaluated, nor the docstring, which the import copied to `__doc__`);
- no line of that body ran before the fork (the warm-up builds transformers' conversion ops, and an object built
  or a cache filled by the unmutated code would outlive the patch): `preloaded`, the lines the server's imports
  execute, measured in the reach run;
and, in the worker (`patch`), the module was imported by the server, the function is found under its qualname
with the code the overlay's text compiles to at that line, and the mutated code closes over the same names.
Otherwise the worker imports the mutated overlay as before.

Nothing here imports transformers, accelerate or huggingface_hub (worker.py says why).
"""

from __future__ import annotations

import ast
import functools
import sys
import types
from pathlib import Path
from typing import Any

from offload_conformance.harness.tools.mutants import targets
from offload_conformance.harness.tools.mutants.model import Mutant, Target
from offload_conformance.harness.tools.mutants.operators import Source


def body(source: str, target: Target) -> tuple[int, range]:
    """The character offset where `target`'s body starts (after a docstring) and the lines it spans."""
    fn = next(d for d in targets.function_defs(_tree(source), target.qualname) if d.lineno == target.first_line)
    statements = fn.body
    if isinstance(statements[0], ast.Expr) and isinstance(getattr(statements[0], "value", None), ast.Constant):
        statements = statements[1:] or statements  # a body that is only a docstring: nothing to patch past it
    first = statements[0]
    return Source(source).offset(first.lineno, first.col_offset), range(first.lineno, (fn.end_lineno or fn.lineno) + 1)


@functools.cache
def _tree(source: str) -> ast.Module:
    """A file's parse, once for all its targets."""
    return ast.parse(source)


def reason_not_hot(mutant: Mutant, body_start: int, body_lines: range, preloaded: frozenset[int]) -> str | None:
    """Why `mutant` must be imported rather than patched (None: it can be patched). `preloaded`: the lines of its
    file executed before a fork."""
    if mutant.start < body_start:
        return "the edit is outside the function's body (evaluated at import)"
    if ran := sorted(preloaded.intersection(body_lines)):
        return f"the function ran before the fork (line {ran[0]})"
    return None


def patch(qualname: str, file: str, mutated_file: str) -> str | None:
    """Set the function's code to its code in `mutated_file` (the overlay's mutated copy of `file`, a Target.file).
    None when done, else why it cannot be (the caller then imports the overlay instead)."""
    module_name = module_of(file)
    module = sys.modules.get(module_name)
    if module is None:
        return f"{module_name} was not imported before the fork"
    function = _function(module, qualname)
    if function is None or not Path(function.__code__.co_filename).as_posix().endswith("/" + file):
        return f"no function {qualname} of {file} in {module_name}"
    code = function.__code__
    # The edit is inside the body: the def's first line (its first decorator's) is where it was.
    text = Path(mutated_file).read_text(encoding="utf-8")
    mutated = [
        c for c in _code(compile(text, mutated_file, "exec"), qualname) if c.co_firstlineno == code.co_firstlineno
    ]
    if len(mutated) != 1:
        return f"{qualname} is not one def at line {code.co_firstlineno} of {mutated_file}"
    if mutated[0].co_freevars != code.co_freevars:
        return f"the mutated {qualname} closes over other names"
    function.__code__ = mutated[0]
    return None


def _function(module: types.ModuleType, qualname: str) -> types.FunctionType | None:
    """The function object a qualname names in its module, through class dicts and decorators (as targets.py finds
    a target's def)."""
    obj: Any = module
    for part in qualname.split("."):
        obj = vars(obj).get(part) if isinstance(obj, type | types.ModuleType) else None
    fn = targets.function_of(obj)
    fn = fn and targets.unwrap(fn, qualname.rsplit(".", 1)[-1])
    return fn if isinstance(fn, types.FunctionType) and fn.__code__.co_qualname == qualname else None


def module_of(file: str) -> str:
    """The module a Target.file defines: transformers/utils/__init__.py -> transformers.utils."""
    parts = file.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _code(code: types.CodeType, qualname: str) -> list[types.CodeType]:
    """Every code object named `qualname` in a module's code, nested ones included."""
    found = [code] if code.co_qualname == qualname else []
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found += _code(const, qualname)
    return found
