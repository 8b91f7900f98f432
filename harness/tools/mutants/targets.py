"""Which upstream functions a mutation analysis edits, resolved to their defs in the installed packages.

A name is a module path plus a qualname inside it. A class name stands for every function defined in its body
(methods, static and class methods, property getters; not inherited ones). Names are resolved against whatever
transformers, accelerate and huggingface_hub are installed: a name that does not resolve there is reported as a
MissingTarget with its reason, never raised.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from offload_conformance.harness.tools.mutants.model import MissingTarget, Target

_CM = "transformers.core_model_loading"
# The model-specific conversion ops (vision, Conv3d, Ernie, Inkling2, Split): only their convert and reverse_op.
_OTHER_OPS = (
    "Split",
    "Conv3dToLinear",
    "LinearToConv3d",
    "VisionFuseAndPermuteForRope",
    "VisionUnfuseAndPermuteForRope",
    "ErnieFuseAndSplitTextVisionExperts",
    "ErnieSplitAndDecoupleTextVisionExperts",
    "Inkling2LoopDequantizeExperts",
    "Inkling2LoopMergeMessageQueries",
    "Inkling2UnpadVocab",
)

# By package, then module. The common conversion ops (MoE experts, fused projections, rope) are whole classes:
# their __init__ and target-pattern helpers decide the saved names too.
TARGETS: tuple[str, ...] = (
    # accelerate: dispatch, the hooks that onload a module's weights for a forward or a save, the offload index
    "accelerate.hooks.add_hook_to_module",
    "accelerate.hooks.AlignDevicesHook.init_hook",
    "accelerate.hooks.AlignDevicesHook.pre_forward",
    "accelerate.hooks.AlignDevicesHook.post_forward",
    "accelerate.utils.modeling.set_module_tensor_to_device",
    "accelerate.utils.modeling.named_module_tensors",
    "accelerate.utils.modeling.get_state_dict_offloaded_model",
    "accelerate.utils.modeling.has_offloaded_params",
    "accelerate.utils.modeling.align_module_device",
    "accelerate.utils.offload.offload_weight",
    "accelerate.utils.offload.load_offloaded_weight",
    "accelerate.utils.offload.PrefixedDataset",
    "accelerate.utils.offload.OffloadedWeightsLoader",
    # huggingface_hub: shard planning
    "huggingface_hub.serialization._base.split_state_dict_into_shards_factory",
    "huggingface_hub.serialization._torch.split_torch_state_dict_into_shards",
    "huggingface_hub.serialization._torch.get_torch_storage_id",
    "huggingface_hub.serialization._torch.get_torch_storage_size",
    # transformers: weight conversion and its reversal on save
    f"{_CM}._IdentityOp.convert",
    f"{_CM}.Chunk",
    f"{_CM}.Concatenate",
    f"{_CM}.Interleave",
    f"{_CM}.MergeModulelist",
    f"{_CM}.SplitModulelist",
    f"{_CM}.Transpose",
    f"{_CM}.PermuteForRope",
    *(f"{_CM}.{op}.{method}" for op in _OTHER_OPS for method in ("convert", "reverse_op")),
    f"{_CM}.WeightTransform.add_tensor",
    f"{_CM}.WeightTransform._scoped_match",
    f"{_CM}.WeightTransform.rename_source_key",
    f"{_CM}.WeightTransform.reverse_transform",
    f"{_CM}.WeightTransform.copy",
    f"{_CM}.WeightTransform.materialize_tensors",
    f"{_CM}.WeightRenaming.convert",
    f"{_CM}.PrefixChange.reverse_transform",
    f"{_CM}.WeightConverter.copy",
    f"{_CM}.WeightConverter.convert",
    f"{_CM}.dot_natural_key",
    f"{_CM}.offload_and_maybe_resave_param",
    f"{_CM}.apply_renamings",
    f"{_CM}.apply_converters",
    f"{_CM}.revert_weight_conversion",
    # transformers: its accelerate integration (dispatch, disk offload index, reading an offloaded parameter)
    "transformers.integrations.accelerate.accelerate_dispatch",
    "transformers.integrations.accelerate.expand_device_map",
    "transformers.integrations.accelerate.get_device",
    "transformers.integrations.accelerate.accelerate_disk_offload",
    "transformers.integrations.accelerate.offload_weight",
    "transformers.integrations.accelerate.load_offloaded_parameter",
    # transformers: save_pretrained and the tied-weight pruning it does first
    "transformers.modeling_utils._find_disjoint",
    "transformers.modeling_utils._find_identical",
    "transformers.modeling_utils.remove_tied_weights_from_state_dict",
    "transformers.modeling_utils.PreTrainedModel.save_pretrained",
    "transformers.modeling_utils.PreTrainedModel.get_parameter_or_buffer",
)

_SCOPES = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


class _Missing(Exception):
    pass


def package_root(package: str) -> Path:
    """The directory holding the installed top-level `package` (site-packages, or a checkout's src/)."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise ModuleNotFoundError(f"no package {package}", name=package)
    init_dir = Path(spec.origin).parent if spec.origin else Path(next(iter(spec.submodule_search_locations or ())))
    return init_dir.parent


def function_defs(tree: ast.Module, qualname: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The defs `qualname` names in `tree`, walking its ClassDef/FunctionDef nesting (`<locals>` skipped), in source
    order; more than one when a name is defined twice (a property's setter, a def under if/else)."""
    parts = [p for p in qualname.split(".") if p != "<locals>"]
    scopes: list[Any] = [tree]
    for i, part in enumerate(parts):
        kinds = _FUNCTIONS if i == len(parts) - 1 else _SCOPES
        scopes = [d for s in scopes for d in _defs(s.body) if isinstance(d, kinds) and d.name == part]
    return scopes


def _defs(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """The class and function defs of a block, looking inside if/try/with/for (which open no scope)."""
    for node in nodes:
        if isinstance(node, _SCOPES):
            yield node
        else:
            yield from _defs(c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt | ast.excepthandler))


def resolve(names: Iterable[str]) -> tuple[list[Target], list[MissingTarget]]:
    """Targets for `names` (a class expanded to its own functions), and the names that do not resolve, with why.

    A def reached twice (two names for one function) is kept once, under the first name."""
    targets: list[Target] = []
    missing: list[MissingTarget] = []
    seen: set[tuple[str, str, int]] = set()
    for name in names:
        try:
            found = _resolve(name)
        except _Missing as e:
            missing.append(MissingTarget(name, str(e)))
            continue
        for t in found:
            if (t.file, t.qualname, t.first_line) not in seen:
                seen.add((t.file, t.qualname, t.first_line))
                targets.append(t)
    return targets, missing


def _resolve(name: str) -> list[Target]:
    module, rest = _import_longest(name.split("."))
    if not rest:
        raise _Missing(f"{name} is a module, not a function or class")
    owner: Any = module
    for i, attr in enumerate(rest):
        parent = owner
        try:
            owner = inspect.getattr_static(parent, attr) if inspect.isclass(parent) else getattr(parent, attr)
        except Exception as e:
            where = ".".join([module.__name__, *rest[:i]])
            also = f" (and no module {where}.{attr})" if i == 0 else ""
            raise _Missing(f"{where} has no attribute {attr!r}{also}: {type(e).__name__}") from None
    if inspect.isclass(owner):
        found = []
        for key, raw in vars(owner).items():
            fn = function_of(raw)
            if fn and (fn := unwrap(fn, key)).__code__.co_qualname == f"{owner.__qualname__}.{key}":
                found.append(_target(f"{name}.{key}", fn))
        if not found:
            raise _Missing(f"class {owner.__qualname__} defines no function in its body")
        return found
    fn = function_of(owner)
    if fn is None:
        what = "no Python source" if callable(owner) else "not a function or class"
        raise _Missing(f"{what}: {type(owner).__name__}")
    return [_target(name, unwrap(fn, rest[-1]))]


def _import_longest(parts: list[str]) -> tuple[Any, list[str]]:
    for i in range(len(parts), 0, -1):
        modname = ".".join(parts[:i])
        try:
            return importlib.import_module(modname), parts[i:]
        except ModuleNotFoundError as e:
            if e.name and (modname == e.name or modname.startswith(f"{e.name}.")):
                continue  # this module (or a parent) does not exist: try a shorter prefix
            raise _Missing(f"importing {modname} failed: {e}") from None
        except Exception as e:
            raise _Missing(f"importing {modname} failed: {type(e).__name__}: {e}") from None
    raise _Missing(f"no module {parts[0]}")


def function_of(raw: Any) -> Any:
    """The function object behind a class attribute or module member, or None when there is none."""
    if isinstance(raw, staticmethod | classmethod):
        raw = raw.__func__
    elif isinstance(raw, property):
        raw = raw.fget
    elif isinstance(raw, functools.cached_property):
        raw = raw.func
    return raw if inspect.isfunction(raw) else None


def unwrap(fn: Any, name: str) -> Any:
    """Through decorators (`__wrapped__`) down to the def called `name`, the outermost such: a def decorated with
    `functools.wraps(other)` is itself, not `other`. The code object's qualname tells, wraps does not rewrite it."""
    return inspect.unwrap(fn, stop=lambda f: getattr(getattr(f, "__code__", None), "co_name", None) == name)


def _target(name: str, fn: Any) -> Target:
    code = fn.__code__
    try:
        path = Path(inspect.getsourcefile(fn) or "").resolve()
    except TypeError:
        path = Path()
    if not path.is_file():
        raise _Missing(f"no Python source for {code.co_qualname} ({code.co_filename})")
    package, file = _relative(path, [name.split(".")[0], fn.__module__.split(".")[0]])
    defs = function_defs(_tree(str(path), path.stat().st_mtime_ns), code.co_qualname)
    if not defs:
        raise _Missing(f"no def of {code.co_qualname} in {file}")
    first = [d for d in defs if min([d.lineno] + [x.lineno for x in d.decorator_list]) == code.co_firstlineno]
    node = (first or defs)[-1]
    return Target(name, package, file, code.co_qualname, node.lineno, node.end_lineno or node.lineno)


def _relative(path: Path, packages: list[str]) -> tuple[str, str]:
    for package in packages:
        try:
            return package, path.relative_to(package_root(package).resolve()).as_posix()
        except (ModuleNotFoundError, ValueError):
            continue
    raise _Missing(f"{path} is not inside any of the packages {packages}")


@functools.cache
def _tree(path: str, mtime_ns: int) -> ast.Module:
    """The parsed module, once per version of the file."""
    return ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
