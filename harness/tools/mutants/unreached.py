"""Why no cell executes a line: the conditions around it, named as the cells that would have to exist.

The enclosing branches are read from the target's source, innermost first. A branch that only an environment
this harness cannot have takes (a GPU, tensor parallelism, PEFT, SageMaker, a hub upload) names that reason,
so the gap is listed, not hidden; any other names the condition a new cell would have to make true (or false).
"""

from __future__ import annotations

import ast
import functools
import re

# (reason, pattern over the source of an enclosing condition), first match wins, innermost condition first.
ENVIRONMENTS = (
    ("GPU-only: a CUDA/XPU/NPU/MPS device", r"cuda|xpu|npu|mps|hpu|mlu|musa|accelerator|is_torch_\w+_available"),
    (
        "tensor-parallel: a tp_plan on a device mesh",
        r"\btp_|_tp\b|tp_size|tp_plan|device_mesh|distributed",
    ),
    ("PEFT: a model with adapters", r"peft|adapter"),
    ("SageMaker model parallel", r"sagemaker|\bsmp\b|is_sagemaker"),
    ("hub upload: push_to_hub", r"push_to_hub|commit_message|create_repo|\brepo_id\b"),
    ("torch.distributed / multi-process save", r"is_main_process|rank\b|world_size"),
    ("pickle save: safe_serialization=False", r"safe_serialization"),
    ("a quantizer other than those with CPU fixtures", r"hf_quantizer|quantiz"),
)


@functools.lru_cache(maxsize=64)
def _tree(source: str) -> ast.Module:
    return ast.parse(source)


def _branches(node: ast.AST, line: int) -> list[str]:
    """Innermost first: what must hold for `line` to run, as 'if COND', 'if not COND', 'except TYPE'."""
    found: list[str] = []
    for child in ast.iter_child_nodes(node):
        start, end = getattr(child, "lineno", None), getattr(child, "end_lineno", None)
        if start is None or end is None or not start <= line <= end:
            continue
        inner = _branches(child, line)
        if isinstance(child, ast.If | ast.While):
            test = ast.unparse(child.test)
            in_else = any(s.lineno <= line <= (s.end_lineno or s.lineno) for s in child.orelse)
            if line != child.lineno:
                inner.append(f"if not ({test})" if in_else else f"if {test}")
        elif isinstance(child, ast.ExceptHandler):
            inner.append(f"except {ast.unparse(child.type) if child.type else 'any exception'}")
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and child.lineno != line:
            inner.append(f"a call of {child.name}")
        return [*inner, *found]
    return found


def reason(source: str, line: int) -> str:
    branches = _branches(_tree(source), line)
    for text in branches:
        for why, pattern in ENVIRONMENTS:
            if re.search(pattern, text):
                return why
    if not branches:
        return "no cell executes this line"
    first = branches[0]
    if first.startswith("except"):
        return f"error path: no cell raises here ({first})"
    if first.startswith("a call of"):
        return f"no cell calls {first.removeprefix('a call of ')}"
    return f"no cell makes `{first.removeprefix('if ')[:100]}` hold"
