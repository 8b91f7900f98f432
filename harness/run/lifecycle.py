"""The model around the save (class `model-changed`): what it holds and how it is offloaded, before and after.

A save must leave the model as it found it: every parameter and buffer with the same values (offloaded ones
read back from offload storage through the hooks' `weights_map`, as a forward pass would read them), offloaded
the same way (which modules carry accelerate hooks and how, `hf_device_map`, each tensor's device), and a
forward pass on a fixed input giving the same logits. Values are hashed one tensor at a time, so a snapshot
costs no more memory than the largest tensor.

The forward pass before the save runs in a forked child: the model the IUT saves has then never run a forward
(that is what the `+forward` modes are for), and the child's weight loads cannot touch the parent's model. The
one after the save runs in process, single-threaded like the child's.
Written here, not taken from reference_impl: the judge must not share code with what it judges.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from offload_conformance.fixtures.forward import digest, forward_logits, text_config
from offload_conformance.harness.outcomes import FailureClass
from offload_conformance.harness.plan.modes import Step
from offload_conformance.harness.results import Difference

FORWARD_TIMEOUT = 120.0  # seconds for the forked forward pass; a tiny fixture takes well under one
EXAMPLES = 3  # names spelled out per kind of change


@dataclass(frozen=True)
class TensorState:
    dtype: str
    shape: tuple[int, ...]
    device: str
    sha256: str  # of the values, read back from offload storage where offloaded; "" where there are none
    # What offload storage gave for an offloaded tensor when not a tensor of its dtype and shape ("" when it was):
    # a forward pass computes with that value.
    stored: str = ""


@dataclass(frozen=True)
class Forward:
    """A forward pass on the fixed input (forward_logits): its logits' digest, or why there is none."""

    logits: str | None  # sha256 of the logits
    skipped: str | None = None  # why there are no logits
    refused: bool = False  # stopped by the harness (ForwardChangesFiles), not raised by the model


@dataclass(frozen=True)
class Snapshot:
    tensors: dict[str, TensorState]  # every parameter and buffer name, tied names included
    hooks: dict[str, str]  # module name -> its accelerate hook(s), described
    device_map: dict[str, str] | None
    forward: Forward


def _hooks(hook: Any) -> list[Any]:
    return list(getattr(hook, "hooks", None) or ([hook] if hook is not None else []))


def _describe(hook: Any) -> str:
    parts = []
    for h in _hooks(hook):
        fields = ("offload", "offload_buffers", "place_submodules", "io_same_device", "execution_device")
        attrs = ", ".join(f"{f}={getattr(h, f)}" for f in fields if hasattr(h, f))
        parts.append(f"{type(h).__name__}({attrs})" if attrs else type(h).__name__)
    return " + ".join(parts)


def weights_maps(model: torch.nn.Module) -> dict[str, list[Any]]:
    """Module name -> the weights_map of each of its hooks (offload storage, keyed relative to the module)."""
    out: dict[str, list[Any]] = {}
    for name, module in model.named_modules():
        hooks = _hooks(getattr(module, "_hf_hook", None))
        maps = [h.weights_map for h in hooks if getattr(h, "weights_map", None) is not None]
        if maps:
            out[name] = maps
    return out


def _lists(weights_map: Any, rel: str, keys: dict[int, frozenset[str]]) -> bool:
    """Whether offload storage lists `rel` under this map. A PrefixedDataset lists its dataset's full keys, so the
    prefixes are followed down to the loader; a Mapping's own `in` would read the value (and hide its failure)."""
    from accelerate.utils import PrefixedDataset

    key = rel
    while isinstance(weights_map, PrefixedDataset):
        key, weights_map = weights_map.prefix + key, weights_map.dataset
    if id(weights_map) not in keys:
        keys[id(weights_map)] = frozenset(weights_map)
    return key in keys[id(weights_map)]


UNLISTED = "not listed by its modules' offload storage"


def _stored(name: str, maps: dict[str, list[Any]], keys: dict[int, frozenset[str]]) -> torch.Tensor | str | None:
    """An offloaded tensor's value, from the nearest enclosing module whose hook has it in offload storage; None when
    no hook of its modules has storage. A key a map lists but cannot read, or reads as something not a tensor, is
    what that map gives (a string saying so): a forward pass through the hooks would fail the same way, so it is not
    passed over. So is a meta tensor that storage does not list (UNLISTED): a storage is a mapping, and what it does
    not list is lost to whatever walks it, or, not held at all, to a forward pass."""
    parts = name.split(".")
    stored = False
    for cut in range(len(parts) - 1, -1, -1):
        module, rel = ".".join(parts[:cut]), ".".join(parts[cut:])
        for weights_map in maps.get(module, ()):
            stored = True
            if not _lists(weights_map, rel, keys):
                continue
            try:
                value = weights_map[rel]
            except Exception as e:
                return f"unreadable ({type(e).__name__}: {e})"
            return value if isinstance(value, torch.Tensor) else f"not a tensor ({type(value).__name__})"
    return UNLISTED if stored else None


def _cast_by_hook(stored: torch.dtype, held: torch.dtype) -> bool:
    """A float stored for a float of another width: accelerate's hooks cast each read to the parameter's dtype (a
    checkpoint loaded with `dtype=` keeps its own dtype in offload storage). The same width is a rewritten entry.
    The reference's rule too (reference_impl.offload.cast_on_read), written again here: the judge shares no code with
    what it judges."""
    return stored.is_floating_point and held.is_floating_point and stored.itemsize != held.itemsize


def tensors(model: torch.nn.Module) -> Iterator[tuple[str, TensorState]]:
    """Every parameter and buffer, streamed: each value read (from offload storage if need be), hashed, dropped."""
    maps = weights_maps(model)
    keys: dict[int, frozenset[str]] = {}
    named = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    for name, t in named:
        value = _stored(name, maps, keys) if t.device.type == "meta" else t
        if isinstance(value, str):
            stored, value = value, None
        else:
            stored = ""
            if value is not None and _cast_by_hook(value.dtype, t.dtype):
                value = value.to(t.dtype)  # what the hook gives the forward pass (and a save must write)
        sha = "" if value is None or value.device.type == "meta" else digest(value)
        if value is not None and (value.dtype, tuple(value.shape)) != (t.dtype, tuple(t.shape)):
            stored = f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
        yield name, TensorState(str(t.dtype).removeprefix("torch."), tuple(t.shape), str(t.device), sha, stored)
        del value


def before_save(model: torch.nn.Module, step: Step) -> None:
    """What a user does between the load and the save (plan.modes.Step)."""
    if step is Step.TRAIN_EVAL:
        model.train()
        try:
            forward_logits(model)  # under no_grad, as calibration is: train mode's dropout, no weight update
        finally:
            model.eval()
    elif step is Step.FORWARD:
        forward_logits(model)
    elif step is Step.RESIZE:
        model.resize_token_embeddings(text_config(model).vocab_size)  # type: ignore[operator]
    elif step is Step.REMOVE_HOOKS:
        from accelerate.hooks import remove_hook_from_submodules

        remove_hook_from_submodules(model)


def why(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")


class ForwardChangesFiles(PermissionError):
    """The check's forward pass tried to remove or move a file."""


def _no_removals() -> None:
    """In the forked child: files are shared with the parent, so a forward pass that removes or moves one (e.g.
    compressed-tensors converting accelerate's disk offload deletes its `.dat` files) would break the parent's
    model. Such a forward fails instead, and the forward part of the check is skipped, saying why."""

    def refusing(name: str) -> Callable[..., None]:
        def refuse(*args: Any, **kwargs: Any) -> None:
            # No path in the message: the reason is grouped across cells in the reports.
            raise ForwardChangesFiles(f"the forward pass would remove or move a file (os.{name})")

        return refuse

    for name in ("remove", "unlink", "rmdir", "rename", "replace"):
        setattr(os, name, refusing(name))


def _forked(fn: Callable[[], str], timeout: float) -> Forward:
    """A forward pass fn() (giving the logits' digest) in a forked child. The parent's state is untouched."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's exit handlers
        os.close(r)
        try:
            # An OpenMP pool the parent started does not survive fork (a parallel region would hang): run
            # single-threaded, as every forked forward does, so before and after use the same kernels.
            torch.set_num_threads(1)
            _no_removals()
            payload = {"result": fn()}
        except BaseException as e:
            payload = {"error": why(e), "refused": isinstance(e, ForwardChangesFiles)}
        os.write(w, json.dumps(payload).encode())
        os._exit(0)
    os.close(w)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                continue
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            os.kill(pid, signal.SIGKILL)
            return Forward(None, f"forward pass raised the forward pass took more than {timeout:g}s")
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    try:
        payload = json.loads(b"".join(chunks))
    except ValueError:
        return Forward(None, "forward pass raised the forward pass's process died")
    if "result" in payload:
        return Forward(payload["result"])
    return Forward(None, f"forward pass raised {payload['error']}", payload["refused"])


def forked_forward(model: torch.nn.Module) -> Forward:
    """The model's forward pass in a forked child: the model is left as it was, it has still never run one."""
    return _forked(lambda: digest(forward_logits(model)), FORWARD_TIMEOUT)


def _in_process(model: torch.nn.Module) -> Forward:
    """The forward pass here, single-threaded like the forked one (same kernels, bit-exact logits)."""
    torch.set_num_threads(1)
    try:
        return Forward(digest(forward_logits(model)))
    except Exception as e:
        return Forward(None, f"forward pass raised {why(e)}")


def snapshot(model: torch.nn.Module, before: Snapshot | None = None) -> Snapshot:
    """The model as it is now. Before the save (`before` None) its forward pass runs in a forked child, so the
    model the IUT saves has never run one. After it (`before` given) the model is not saved again, so the pass
    runs in this process (a fork costs more than the pass), and only where the one before gave logits; the
    tensors are read before it, but an offloaded (`meta`) tensor the pass leaves loaded (hooks that do not put it
    back) shows as moved to another device. Only those: a compressed-tensors model decompresses on its first
    forward, in memory, which is not the save's doing."""
    states = dict(tensors(model))
    if before is None:
        forward = forked_forward(model)
    elif before.forward.logits:
        forward = _in_process(model)
        now = {n: str(t.device) for n, t in model.state_dict(keep_vars=True).items()}
        for name, state in states.items():
            if state.device == "meta" and now.get(name, "meta") != "meta":
                states[name] = dataclasses.replace(state, device=now[name])
    else:
        forward = before.forward
    hooks = {name: _describe(m._hf_hook) for name, m in model.named_modules() if hasattr(m, "_hf_hook")}
    device_map = getattr(model, "hf_device_map", None)
    return Snapshot(
        states,
        hooks,
        {k: str(v) for k, v in device_map.items()} if isinstance(device_map, dict) else None,
        forward,
    )


def examples(names: list[str]) -> str:
    """The first EXAMPLES of `names` (sorted; "" is the model itself), then how many more."""
    names = sorted(n or "<model>" for n in names)
    return ", ".join(names[:EXAMPLES]) + (f" and {len(names) - EXAMPLES} more" if len(names) > EXAMPLES else "")


def _change(what: str, names: list[str], tensor: bool = True) -> Difference:
    first = sorted(n or "<model>" for n in names)[0]
    return Difference(FailureClass.MODEL_CHANGED, f"{what}: {examples(names)}", tensor=first if tensor else None)


def misread(before: Snapshot) -> list[Difference]:
    """Offloaded tensors that offload storage gives back with another dtype or shape than the model's, or cannot
    give at all (class offload-read): what the model computes with is not the tensor it declares, before any save."""
    wrong = sorted(n for n, t in before.tensors.items() if t.stored)
    if not wrong:
        return []
    n, t = wrong[0], before.tensors[wrong[0]]
    more = f" and {len(wrong) - 1} more" if len(wrong) > 1 else ""
    what = f"offload storage gives {n} as {t.stored}, the model's tensor is {t.dtype}{list(t.shape)}{more}"
    return [Difference(FailureClass.OFFLOAD_READ, what, tensor=n)]


def changes(before: Snapshot, after: Snapshot) -> list[Difference]:
    """How the model after the save differs from the model before it: one difference per kind of change (and how
    the model read wrong before it: misread)."""
    out: list[Difference] = misread(before)
    b, a = before.tensors, after.tensors
    kinds: list[tuple[str, Callable[[TensorState, TensorState], bool]]] = [
        ("dtype changed", lambda x, y: x.dtype != y.dtype),
        ("shape changed", lambda x, y: x.shape != y.shape),
        ("moved to another device", lambda x, y: x.device != y.device),
        (
            "values no longer readable (meta, and no offload storage holds them)",
            lambda x, y: bool(x.sha256) > bool(y.sha256),
        ),
        ("values changed", lambda x, y: x.sha256 != y.sha256 and y.sha256 and (x.dtype, x.shape) == (y.dtype, y.shape)),
    ]
    if b.keys() - a.keys():
        out.append(_change("parameters or buffers gone from the model", list(b.keys() - a.keys())))
    if a.keys() - b.keys():
        out.append(_change("parameters or buffers new in the model", list(a.keys() - b.keys())))
    common = b.keys() & a.keys()
    for what, differs in kinds:
        names = [n for n in common if differs(b[n], a[n])]
        if names:
            out.append(_change(what, names))
    if before.hooks.keys() - after.hooks.keys():
        out.append(_change("accelerate hooks removed", list(before.hooks.keys() - after.hooks.keys()), False))
    if after.hooks.keys() - before.hooks.keys():
        out.append(_change("accelerate hooks added", list(after.hooks.keys() - before.hooks.keys()), False))
    other = [n for n in before.hooks.keys() & after.hooks.keys() if before.hooks[n] != after.hooks[n]]
    if other:
        n = sorted(other)[0]
        what = f"accelerate hooks changed (e.g. {n or '<model>'}: {before.hooks[n]} -> {after.hooks[n]})"
        out.append(_change(what, other, False))
    if before.device_map != after.device_map:
        out.append(Difference(FailureClass.MODEL_CHANGED, f"hf_device_map {after.device_map}, was {before.device_map}"))
    was, now = before.forward, after.forward
    if was.logits and not now.logits:
        out.append(Difference(FailureClass.MODEL_CHANGED, f"the forward pass fails after the save: {now.skipped}"))
    elif was.logits and now.logits != was.logits:
        out.append(Difference(FailureClass.MODEL_CHANGED, "the forward pass gives other logits after the save"))
    return out
