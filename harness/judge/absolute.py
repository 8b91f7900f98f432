"""Checks of a save on its own terms, not against the in-memory save (which can be wrong too).

- `shard-oversize`: no shard holds more than `max_shard_size` bytes of tensor data unless it holds one tensor
  only: the guarantee of the in-memory save's shard planner (huggingface_hub's, which gives a tensor larger
  than the limit a shard of its own).
- `index`: the index's `weight_map` names exactly the tensors in the shards, each in its file, and every shard
  (an empty one too);
  `metadata.total_size` is the bytes of tensor data in the shards; `metadata.total_parameters`, where present,
  is the loaded model's parameter count (counted in the cell process).
- `dropped-on-load`: a tensor of the fixture's own files that no save contains, under its name or with its
  bytes under another name: the load dropped it (e.g. DeepSeek-V3's MTP layers, which
  `_keys_to_ignore_on_load_unexpected` silences), so no save of a loaded model can write it.

- `round-trip`: an `in-memory` cell's save against the fixture's own files (weights only): a load then save
  of an unmodified model gives its checkpoint back. The in-memory baseline is that very save, so without this
  an in-memory cell would compare a save with itself; a wrong revert mapping (internal names saved, a prefix
  doubled) is shared by every save of the release, and only the fixture shows it.

- weight file names (class `shard-layout`): the save's weights files and index carry the names transformers gives
  its variant (with none, `model.safetensors` and its shards); the in-memory save would share a dropped variant.

- `shard-plan` (class `shard-layout`): a sharded save puts each tensor in the shard the in-memory save's planner
  must (greedy packing in natural name order, judge.shard_plan), recomputed from the save's names and sizes. Only
  where the saved names give the planner's order: a model loaded by from_pretrained, saved in its original format,
  from a fixture whose load renames nothing (the planner sorts the in-memory names, before the revert).

Only headers are read for the first two and `shard-plan`, so a passing cell pays for no tensor hashing.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from huggingface_hub.serialization._base import parse_size_to_int

from offload_conformance.fixtures.manifest import FixtureError, has_safetensors, read_manifest
from offload_conformance.harness.judge.checkpoint import SafetensorsFile, UnreadableFile, is_index, read_safetensors
from offload_conformance.harness.judge.compare import compare, weight_map_differences
from offload_conformance.harness.judge.context import own_files
from offload_conformance.harness.judge.shard_plan import plan_differences
from offload_conformance.harness.outcomes import FailureClass as C
from offload_conformance.harness.results import Difference

# save_pretrained's own default, for a cell saved without `max_shard_size`.
UPSTREAM_MAX_SHARD_SIZE = "50GB"
EXAMPLES = 3
# Fixture kinds (the generator's manifest) whose load gives tensors names other than the checkpoint's: the planner
# sorts those in-memory names, so the saved names do not say its order. A `generated` fixture (transformers' own
# class, written by its own save) has no kinds that say whether its load renames.
RENAMING_KINDS = frozenset({"renamed", "one-to-many"})
UNKNOWN_NAMING = "generated"


def shard_headers(save_dir: Path) -> dict[str, SafetensorsFile]:
    """Each readable shard's header: read once per save (shard_oversize and index_bookkeeping both ask, and a
    baseline is asked for every cell that shares it)."""
    return _headers(save_dir, _signature(save_dir))


@functools.lru_cache(maxsize=256)
def _headers(save_dir: Path, _sig: object) -> dict[str, SafetensorsFile]:
    out = {}
    for p in sorted(save_dir.glob("*.safetensors")) if save_dir.is_dir() else ():
        try:
            out[p.name] = read_safetensors(p, digests=False)
        except UnreadableFile:
            continue  # the comparison names it (unreadable-file)
    return out


def shard_oversize(
    save_dir: Path, max_shard_size: int | str | None, ignore: frozenset[str] = frozenset()
) -> list[Difference]:
    size = UPSTREAM_MAX_SHARD_SIZE if max_shard_size is None else max_shard_size
    limit = size if isinstance(size, int) else parse_size_to_int(size)
    out = []
    for name, shard in shard_headers(save_dir).items():
        if name in ignore:
            continue
        held = sum(t.end - t.begin for t in shard.tensors)
        if held > limit and len(shard.tensors) > 1:
            what = f"{name} holds {held} bytes in {len(shard.tensors)} tensors, over max_shard_size ({limit} bytes)"
            out.append(Difference(C.SHARD_OVERSIZE, what, file=name))
    return out


def index_bookkeeping(save_dir: Path, parameters: int | None, ignore: frozenset[str] = frozenset()) -> list[Difference]:
    found = sorted(p for p in save_dir.glob("*.json") if is_index(p.name) and p.name not in ignore)
    if not found:
        return []
    path = found[0]
    try:
        index = json.loads(path.read_text())
        weight_map, metadata = index["weight_map"], index.get("metadata") or {}
        if not isinstance(weight_map, dict) or not isinstance(metadata, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return []  # the comparison names a malformed index
    located: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for name, shard in shard_headers(save_dir).items():
        if name in ignore:
            continue
        for t in shard.tensors:
            located.setdefault(t.name, name)
            sizes.setdefault(t.name, t.end - t.begin)
    out = weight_map_differences(weight_map, located, path.name)
    named = set(weight_map.values())
    for name, shard in shard_headers(save_dir).items():
        if name not in ignore and name not in named:  # e.g. an empty shard the planner closed with nothing in it
            what = f"{name} is a shard the index does not name ({len(shard.tensors)} tensors)"
            out.append(Difference(C.INDEX, what, file=name))
    total = sum(sizes.values())
    if metadata.get("total_size") != total:
        what = f"index metadata.total_size {metadata.get('total_size')}, the shards hold {total} bytes of tensors"
        out.append(Difference(C.INDEX, what, file=path.name))
    if "total_parameters" in metadata and parameters is not None and metadata["total_parameters"] != parameters:
        what = f"index metadata.total_parameters {metadata['total_parameters']}, the model has {parameters}"
        out.append(Difference(C.INDEX, what, file=path.name))
    return out


def _contents(save_dir: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(tensor names, tensor sha256s) of a save."""
    names: set[str] = set()
    digests: set[str] = set()
    for p in sorted(save_dir.glob("*.safetensors")) if save_dir.is_dir() else ():
        try:
            shard = read_safetensors(p)
        except UnreadableFile:
            continue
        names.update(t.name for t in shard.tensors)
        digests.update(t.sha256 for t in shard.tensors if t.end > t.begin)
    return frozenset(names), frozenset(digests)


def _signature(save_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """What identifies a save's contents cheaply: a workdir rerun in the same process writes new files."""
    files = sorted(save_dir.glob("*.safetensors")) if save_dir.is_dir() else []
    return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)


@functools.lru_cache(maxsize=256)
def _not_in_baseline(fixture_dir: Path, baseline_dir: Path, _sig: object) -> tuple[tuple[str, str], ...]:
    """(name, sha256) of the fixture's tensors the baseline's save lacks: once per baseline, not per cell."""
    try:
        tensors: dict[str, dict[str, object]] = read_manifest(fixture_dir)["tensors"]  # type: ignore[assignment]
    except FixtureError:
        return ()  # not a generated fixture (a hand-made checkpoint): no list of its tensors to hold saves to
    names, digests = _contents(baseline_dir)
    return tuple(
        (n, str(t["sha256"])) for n, t in sorted(tensors.items()) if n not in names and t["sha256"] not in digests
    )


def weight_file_names(save_dir: Path, variant: str | None, ignored: frozenset[str] = frozenset()) -> list[Difference]:
    """Class `shard-layout`: a weights file or index the save wrote under another name than transformers gives the
    save's variant (`model.v1.safetensors`, `model.v1-00001-of-00002.safetensors`, `model.safetensors.index.v1.json`;
    context.own_files). The in-memory save names its files the same way, so only this shows a save that drops the
    variant everywhere; files `ignored` are not the save's (judge.context)."""
    if not save_dir.is_dir():
        return []  # nothing written: the comparison says what is missing
    own = own_files(variant)
    wrong = sorted(
        p.name
        for p in save_dir.iterdir()
        if p.is_file() and p.name not in ignored and _weights_or_index(p.name) and not own(p.name)
    )
    if not wrong:
        return []
    asked = f"variant={variant!r}" if variant else "no variant"
    return [Difference(C.SHARD_LAYOUT, f"{n}: not a name of a save with {asked}", file=n) for n in wrong]


def _weights_or_index(name: str) -> bool:
    return name.endswith(".safetensors") or (".safetensors.index" in name and name.endswith(".json"))


def dropped_on_load(fixture_dir: Path, baseline_dir: Path, save_dir: Path) -> list[Difference]:
    candidates = _not_in_baseline(fixture_dir, baseline_dir, _signature(baseline_dir))
    if not candidates:
        return []
    names, digests = _contents(save_dir)
    dropped = [n for n, sha in candidates if n not in names and sha not in digests]
    if not dropped:
        return []
    eg = ", ".join(dropped[:EXAMPLES]) + (f" and {len(dropped) - EXAMPLES} more" if len(dropped) > EXAMPLES else "")
    what = f"{len(dropped)} tensors of the fixture's own files are in no save (dropped on load): {eg}"
    return [Difference(C.DROPPED_ON_LOAD, what, tensor=dropped[0])]


def round_trip(
    fixture_dir: Path, baseline_dir: Path, save_dir: Path, ignored: frozenset[str] = frozenset()
) -> list[Difference]:
    """The fixture's tensors the save does not give back (names, dtypes, shapes, values): each as a `round-trip`
    difference naming the comparison's own class. Tensors dropped on load are that check's, not repeated here; files
    `ignored` are not the save's (judge.context)."""
    if not has_safetensors(fixture_dir):
        return []  # a pytorch_model.bin fixture: compare reads safetensors (its manifest still judges dropped-on-load)
    dropped = {n for n, _ in _not_in_baseline(fixture_dir, baseline_dir, _signature(baseline_dir))}
    return [
        Difference(C.ROUND_TRIP, f"round trip: {d.cls}: {d.detail}", tensor=d.tensor, file=d.file)
        for d in compare(fixture_dir, save_dir, weights_only=True, ignore=ignored).differences
        if d.cls.is_content and not (d.cls is C.MISSING_TENSOR and d.tensor in dropped)
    ]


@functools.lru_cache(maxsize=64)
def _renames_on_load(fixture_dir: Path) -> bool | None:
    """Whether the fixture's manifest says its load renames tensors; None: it cannot say (a hand-made checkpoint, a
    generated fixture)."""
    try:
        kinds = set(read_manifest(fixture_dir).get("kinds", ()))  # type: ignore[call-overload]
    except FixtureError:
        return None
    return None if UNKNOWN_NAMING in kinds else bool(RENAMING_KINDS & kinds)


def shard_plan(
    fixture_dir: Path, save_dir: Path, max_shard_size: int | str, variant: str | None, ignore: frozenset[str]
) -> list[Difference]:
    """The save's shard split against the one greedy packing in natural name order gives (judge.shard_plan), for
    a fixture whose load keeps the checkpoint's names (experts fused aside); [] where that order is not known."""
    if _renames_on_load(fixture_dir) is not False:
        return []
    limit = max_shard_size if isinstance(max_shard_size, int) else parse_size_to_int(max_shard_size)
    own = own_files(variant)
    shards = {name: shard for name, shard in shard_headers(save_dir).items() if own(name) and name not in ignore}
    located = {t.name: (name, t.end - t.begin) for name, shard in shards.items() for t in shard.tensors}
    return plan_differences(located, limit, shards) if shards else []
