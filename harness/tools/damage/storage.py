"""A model loaded once with its offload storage in a scratch workspace, and that storage restored between cases.

transformers' offload index points into the checkpoint it loaded from wherever a tensor needs no conversion, so the
storage is the offload folder *and* those checkpoint files: the fixture is copied into the workspace first, and the
shared fixture cache is never damaged. Restoring rewrites the same paths, so the index the model holds points at the
restored files; each case's damage to the in-memory index happens in a forked child and dies with it.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offload_conformance.fixtures import by_name, generate
from offload_conformance.fixtures.manifest import read_manifest
from offload_conformance.harness.plan.modes import by_name as mode_by_name

SOURCE, OFFLOAD = "source", "offload"


def stores(model: Any) -> list[Any]:
    """The storages behind every accelerate hook of the model (OffloadedWeightsLoader or a dict), once each."""
    found: dict[int, Any] = {}
    for module in model.modules():
        hook = getattr(module, "_hf_hook", None)
        for h in getattr(hook, "hooks", None) or ([hook] if hook is not None else []):
            weights_map = getattr(h, "weights_map", None)
            while weights_map is not None and hasattr(weights_map, "dataset"):  # PrefixedDataset
                weights_map = weights_map.dataset
            if weights_map is not None:
                found[id(weights_map)] = weights_map
    return list(found.values())


def indexes(model: Any) -> list[dict[str, dict[str, Any]]]:
    return [s.index for s in stores(model) if isinstance(getattr(s, "index", None), dict) and s.index]


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))}


@dataclass
class Loaded:
    """One (fixture, mode): the model, where its storage is, and a pristine copy of it."""

    fixture: str
    mode: str
    workspace: Path
    model: Any = field(repr=False)
    baseline: Path  # the in-memory save of the same fixture, by upstream
    # The storage files, relative to the workspace: what file damage targets.
    files: list[str] = field(default_factory=list, repr=False)

    @property
    def label(self) -> str:
        return f"{self.fixture}-{self.mode}"

    def _pristine(self) -> Path:
        return self.workspace / "pristine"

    def snapshot(self) -> None:
        # Readable by all (transformers writes offload files 0600): the unreadable kind saves as another user, who
        # must be stopped by the one damaged file only.
        for p in (self.workspace, *self.workspace.rglob("*")):
            p.chmod(0o755 if p.is_dir() else 0o644)
        for root in (SOURCE, OFFLOAD):
            shutil.copytree(self.workspace / root, self._pristine() / root, symlinks=True)
        keys = {k for index in indexes(self.model) for k in index}
        # Every file an index entry reads, and every file of the offload folder (an index.json, a .dat).
        referenced = {
            Path(entry["safetensors_file"]).resolve()
            for index in indexes(self.model)
            for entry in index.values()
            if "safetensors_file" in entry
        }
        offload = sorted(p for p in (self.workspace / OFFLOAD).rglob("*") if p.is_file())
        resolved = self.workspace.resolve()
        self.files = sorted({str(p.resolve().relative_to(resolved)) for p in (*referenced, *offload)})
        if not keys:
            raise ValueError(f"{self.label}: nothing is offloaded to disk")

    def restore(self) -> None:
        for root in (SOURCE, OFFLOAD):
            shutil.rmtree(self.workspace / root)
            shutil.copytree(self._pristine() / root, self.workspace / root, symlinks=True)

    def restored(self) -> bool:
        """Whether the storage is byte for byte the pristine copy (checked by the control cases)."""
        return all(_digests(self.workspace / r) == _digests(self._pristine() / r) for r in (SOURCE, OFFLOAD))


def _in_memory_save(source: Path, dtype: Any, auto: Any, out: Path) -> None:
    auto.from_pretrained(source, dtype=dtype).save_pretrained(out)


def load(fixture: str, mode: str, workspace: Path) -> Loaded:
    import torch
    import transformers
    from transformers import AutoConfig

    spec = by_name(fixture)
    cached = generate(spec)
    manifest = read_manifest(cached)["spec"]
    dtype = getattr(torch, manifest["dtype"])
    auto = getattr(transformers, manifest.get("auto_class", "AutoModelForCausalLM"))
    source = workspace / SOURCE
    shutil.copytree(cached, source)
    baseline = workspace.parent / f"baseline-{fixture}"
    if not baseline.exists():
        _in_memory_save(source, dtype, auto, baseline)
    m = mode_by_name(mode)
    with torch.device("meta"):
        skeleton = auto.from_config(AutoConfig.from_pretrained(source), dtype=dtype)
    offload = workspace / OFFLOAD
    model = auto.from_pretrained(source, dtype=dtype, **m.load_kwargs(skeleton, offload))
    m.after_load(model, offload)
    offload.mkdir(exist_ok=True)
    loaded = Loaded(fixture, mode, workspace, model, baseline)
    loaded.snapshot()
    return loaded
