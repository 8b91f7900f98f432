"""One damage case: restore the storage, damage it, save with each IUT in a child, judge each save."""

from __future__ import annotations

import hashlib
import os
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offload_conformance.harness.judge.compare import compare
from offload_conformance.harness.plan.impls import Saver
from offload_conformance.harness.tools.damage.child import drop_privileges, in_child
from offload_conformance.harness.tools.damage.kinds import Damage, apply_files, apply_index
from offload_conformance.harness.tools.damage.storage import Loaded, stores
from offload_conformance.harness.tools.damage.verdicts import Saved, Storage, Verdict, judge

TIMEOUT = 120.0


def _stored_kind(entry: dict[str, Any], key: str) -> str:
    """'float' or 'int': what the file's own header stores (accelerate casts an entry to its dtype on read, so an
    integer header under a float tensor reads back with the right dtype: only the header tells)."""
    from safetensors import safe_open

    if "safetensors_file" not in entry:
        return "raw"  # a .dat holds no dtype of its own
    with safe_open(entry["safetensors_file"], framework="pt") as f:
        code = f.get_slice(entry.get("weight_name", key)).get_dtype()
    return "float" if code.startswith(("F", "BF")) else "int"


def _aliased(model: Any, index: dict[str, dict[str, Any]]) -> set[str]:
    """Entries reading one tensor of one file while the model holds them as different (untied) tensors."""
    ties: dict[str, str] = dict(getattr(model, "all_tied_weights_keys", None) or {})
    by_source: dict[tuple[str, str], set[str]] = {}
    for key, entry in index.items():
        if "safetensors_file" in entry:
            source = (os.path.realpath(entry["safetensors_file"]), entry.get("weight_name", key))
            by_source.setdefault(source, set()).add(ties.get(key, key))
    return {k for keys in by_source.values() if len(keys) > 1 for k in keys}


def read_back(model: Any) -> dict[str, str]:
    """Every offloaded tensor as accelerate's own weights_map reads it back: 'stored kind/dtype[shape]:sha256 of its
    bytes'. The storage's own view of itself, independent of any IUT."""
    import torch

    out = {}
    for store in stores(model):
        index = getattr(store, "index", None) or {}
        aliased = _aliased(model, index)
        for key, entry in list(index.items()):
            t = store[key].contiguous()
            data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
            kind = f"{_stored_kind(entry, key)}{'+aliased' if key in aliased else ''}"
            out[key] = f"{kind}/{t.dtype}{list(t.shape)}:{hashlib.sha256(data).hexdigest()}"
    return out


def _damaged(loaded: Loaded, damage: Damage | None) -> None:
    """In the child: the index damage, and for an unreadable file, no root privileges."""
    if damage is not None:
        apply_index(damage, loaded.model)
        if damage.unprivileged:
            drop_privileges()


def _probe(loaded: Loaded, damage: Damage, pristine: dict[str, str]) -> Storage:
    def run() -> dict[str, Any]:
        _damaged(loaded, damage)
        try:
            return {"read": read_back(loaded.model)}
        except Exception as e:
            return {"error": type(e).__name__, "message": str(e)}

    result = in_child(run, TIMEOUT)
    if "read" not in result:
        return Storage.UNREADABLE
    now = result["read"]
    if now == pristine:
        return Storage.SAME
    if now.keys() != pristine.keys() or any(now[k].split(":")[0] != pristine[k].split(":")[0] for k in now):
        return Storage.INCONSISTENT
    return Storage.VALUES


def _save(loaded: Loaded, damage: Damage | None, save: Saver, out: Path) -> Saved:
    def run() -> dict[str, Any]:
        _damaged(loaded, damage)
        try:
            save(loaded.model, str(out))
        except Exception as e:
            frame = traceback.extract_tb(e.__traceback__)[-1]
            return {"error": type(e).__name__, "message": str(e), "where": f"{frame.filename}:{frame.lineno}"}
        return {}

    result = in_child(run, TIMEOUT)
    return Saved(result.get("error"), result.get("message", ""), result.get("where", ""))


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    saved: Saved
    classes: tuple[str, ...]
    storage: Storage | None

    def to_json(self) -> dict[str, Any]:
        lines = self.saved.message.strip().splitlines()
        return {
            "verdict": str(self.verdict),
            "error": self.saved.error,
            "message": lines[0][:300] if lines else "",
            "lines": len(lines),
            "where": self.saved.where,
            "classes": list(self.classes),
            "storage": str(self.storage) if self.storage else None,
        }


def run_case(
    loaded: Loaded, damage: Damage | None, impls: dict[str, Saver], scratch: Path, pristine: dict[str, str]
) -> dict[str, Outcome]:
    """Each IUT's outcome on the damaged storage; damage None is a control (the storage as loaded)."""
    storage: Storage | None = None
    outcomes = {}
    for name, save in impls.items():
        _restore(loaded)  # an IUT's save may itself touch the storage: each sees the damage alone
        if damage is not None:
            apply_files(damage, loaded)
        shutil.rmtree(scratch / name, ignore_errors=True)
        (scratch / name).mkdir(parents=True)
        (scratch / name).chmod(0o777)  # an unprivileged save writes here, and beside its target
        out = scratch / name / "saved"
        saved = _save(loaded, damage, save, out)
        classes = None
        if saved.error is None and out.is_dir() and any(out.glob("*.safetensors")):
            classes = compare(loaded.baseline, out).classes
            if classes and storage is None and damage is not None:
                storage = _probe(loaded, damage, pristine)
        names = damage.names(loaded) if damage is not None else frozenset()
        verdict = judge(saved, names, classes, storage)
        outcomes[name] = Outcome(verdict, saved, tuple(str(c) for c in classes or ()), storage if classes else None)
    _restore(loaded)
    return outcomes


def _restore(loaded: Loaded) -> None:
    loaded.restore()
    if not loaded.restored():  # cheap on these fixtures, and the soundness of every case rests on it
        raise RuntimeError(f"{loaded.label}: the storage is not its pristine copy after a restore")
