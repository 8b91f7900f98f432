"""Expected vs actual checkpoint: bytes first, then a classified, structured diff."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from offload_conformance.harness.judge.checkpoint import (
    INDEX_NAME,
    TORCH_DTYPES,
    Checkpoint,
    TensorEntry,
    file_digests,
    read_checkpoint,
)
from offload_conformance.harness.outcomes import FailureClass as C
from offload_conformance.harness.outcomes import Grade, ordered
from offload_conformance.harness.results import Difference, TensorFacts

CONFIG, QUANT = "config.json", "quantization_config"


@dataclass(frozen=True)
class Comparison:
    grade: Grade | None
    differences: tuple[Difference, ...]

    @property
    def classes(self) -> tuple[C, ...]:
        return ordered({d.cls for d in self.differences})

    def meets(self, require: Grade) -> bool:
        return self.grade is not None and self.grade.meets(require)


def _max_abs_diff(a: bytes, b: bytes, dtype: str) -> tuple[str, float | None]:
    tdt = TORCH_DTYPES.get(dtype)
    if tdt is None:
        differing = sum(x != y for x, y in zip(a, b, strict=False))
        return f"{differing} of {len(a)} bytes differ", None
    ta = torch.frombuffer(bytearray(a), dtype=tdt).to(torch.float64)
    tb = torch.frombuffer(bytearray(b), dtype=tdt).to(torch.float64)
    worst = (ta - tb).abs().nan_to_num(nan=float("inf")).max().item()
    return f"max abs diff {worst:.6g}, {int((ta != tb).sum())} of {ta.numel()} elements differ", worst


def _compare_tensors(exp: Checkpoint, act: Checkpoint) -> list[Difference]:
    out: list[Difference] = []
    et, at = exp.tensors, act.tensors
    by_digest: dict[str, list[str]] = defaultdict(list)
    for name, t in et.items():
        by_digest[t.sha256].append(name)
    for name in sorted(et.keys() - at.keys()):
        out.append(Difference(C.MISSING_TENSOR, f"{name} is not in the saved checkpoint", tensor=name))
    for name in sorted(at.keys() - et.keys()):
        t = at[name]
        out.append(
            Difference(C.EXTRA_TENSOR, f"{name} ({t.dtype}{list(t.shape)}) is not expected", tensor=name, file=t.file)
        )
        twins = [n for n in by_digest.get(t.sha256, []) if n not in at and t.end > t.begin]
        if twins:
            out.append(Difference(C.PERMUTED, f"{name} holds the values of missing {twins[0]}", tensor=name))
    for name in sorted(et.keys() & at.keys()):
        e, a = et[name], at[name]
        if e.dtype != a.dtype:
            out.append(Difference(C.DTYPE, f"{name}: {a.dtype}, expected {e.dtype}", tensor=name, file=a.file))
        if e.shape != a.shape:
            out.append(
                Difference(C.SHAPE, f"{name}: {list(a.shape)}, expected {list(e.shape)}", tensor=name, file=a.file)
            )
        if e.dtype != a.dtype or e.shape != a.shape or e.sha256 == a.sha256:
            continue
        out.append(_classify_values(exp, act, e, a, by_digest))
    return out


def _classify_values(
    exp: Checkpoint, act: Checkpoint, e: TensorEntry, a: TensorEntry, by_digest: dict[str, list[str]]
) -> Difference:
    # Same name, dtype and shape; different bytes. Raw bytes, so fp8 and friends compare exactly.
    abytes = act.read(a)
    if not any(abytes):
        return Difference(
            C.META_OR_EMPTY, f"{e.name}: all zeros (never loaded from offload storage?)", tensor=e.name, file=a.file
        )
    twins = [n for n in by_digest.get(a.sha256, []) if n != e.name]
    if twins:
        return Difference(C.PERMUTED, f"{e.name} holds the values of {twins[0]}", tensor=e.name, file=a.file)
    detail, worst = _max_abs_diff(exp.read(e), abytes, e.dtype)
    return Difference(C.VALUES, f"{e.name}: {detail}", tensor=e.name, file=a.file, max_abs_diff=worst)


def _compare_layout(exp: Checkpoint, act: Checkpoint) -> list[Difference]:
    out: list[Difference] = []
    et, at = exp.tensors, act.tensors
    common = et.keys() & at.keys()
    moved = sorted(n for n in common if et[n].file != at[n].file)
    if moved or set(exp.weights) | set(exp.unreadable) != set(act.weights) | set(act.unreadable):
        n = moved[0] if moved else None
        what = (
            f"{len(moved)} tensors in other files, e.g. {n} in {at[n].file} (expected {et[n].file})"
            if n
            else (f"weight files {sorted(act.weights)}, expected {sorted(exp.weights)}")
        )
        out.append(Difference(C.SHARD_LAYOUT, what, tensor=n))
    for name, files in sorted(act.duplicates.items())[:1]:
        n = len(act.duplicates)
        out.append(
            Difference(C.SHARD_LAYOUT, f"{n} tensors stored in several files, e.g. {name} in {files}", tensor=name)
        )
    for fname in sorted(exp.weights.keys() & act.weights.keys()):
        ef, af = exp.weights[fname], act.weights[fname]
        if ef.metadata != af.metadata:
            out.append(
                Difference(C.HEADER_METADATA, f"{fname}: metadata {af.metadata}, expected {ef.metadata}", file=fname)
            )
        same_content = {t.name: (t.dtype, t.shape, t.sha256) for t in ef.tensors} == {
            t.name: (t.dtype, t.shape, t.sha256) for t in af.tensors
        }
        if same_content and ef.metadata == af.metadata and exp.files[fname] != act.files[fname]:
            order = [t.name for t in af.tensors] != [t.name for t in ef.tensors]
            what = "tensors in another order" if order else "same tensors and order, different padding or header text"
            out.append(Difference(C.ORDER, f"{fname}: {what}", file=fname))
    out += _compare_index(exp, act)
    weight_like = {exp.index_name, act.index_name} | set(exp.weights) | set(act.weights)
    weight_like |= set(exp.unreadable) | set(act.unreadable)
    for fname in sorted((exp.files.keys() ^ act.files.keys()) - weight_like):
        where = "missing" if fname in exp.files else "unexpected"
        out.append(Difference(C.FILE_SET, f"{fname} is {where}", file=fname))
    for fname in sorted((exp.files.keys() & act.files.keys()) - weight_like):
        if exp.files[fname] != act.files[fname]:
            out.append(_quantization_config(exp, act) if fname == CONFIG else None)
            out.append(Difference(C.OTHER_FILE, f"{fname} differs", file=fname))
    return [d for d in out if d is not None]


def _quantization_config(exp: Checkpoint, act: Checkpoint) -> Difference | None:
    """A quantized checkpoint whose config.json lost or changed its quantization_config loads as something
    else (dense weights of the wrong dtype, or not at all): a content difference, not just another file."""
    try:
        want, got = (json.loads((c.path / CONFIG).read_text()).get(QUANT) for c in (exp, act))
    except (OSError, ValueError, AttributeError):
        return None
    if want == got:
        return None
    what = "is missing" if got is None else "differs" if want is not None else "is unexpected"
    return Difference(C.QUANTIZATION_CONFIG, f"{CONFIG}: {QUANT} {what}", file=CONFIG)


def weight_map_differences(
    weight_map: dict[str, object], located: dict[str, str], index_name: str = INDEX_NAME
) -> list[Difference]:
    """The index's weight_map must name exactly the tensors in the shards, each in its file."""
    wrong = sorted(n for n in weight_map.keys() | located.keys() if weight_map.get(n) != located.get(n))
    if not wrong:
        return []
    n = wrong[0]
    return [
        Difference(
            C.INDEX,
            f"{len(wrong)} index entries disagree with the files, e.g. {n}: index says"
            f" {weight_map.get(n)}, found in {located.get(n)}",
            tensor=n,
            file=index_name,
        )
    ]


def _compare_index(exp: Checkpoint, act: Checkpoint) -> list[Difference]:
    out: list[Difference] = []
    if act.index_error:
        return [Difference(C.INDEX, act.index_error, file=act.index_name)]
    if act.index is not None:
        # The index must describe the files actually written, whatever the expected side did.
        weight_map = act.index.get("weight_map")
        if not isinstance(weight_map, dict):
            return [Difference(C.INDEX, "index has no weight_map object", file=act.index_name)]
        out += weight_map_differences(weight_map, {n: t.file for n, t in act.tensors.items()}, act.index_name)
    if exp.index is not None and act.index is not None:
        if exp.index.get("metadata") != act.index.get("metadata"):
            out.append(
                Difference(
                    C.INDEX,
                    f"index metadata {act.index.get('metadata')}, expected {exp.index.get('metadata')}",
                    file=act.index_name,
                )
            )
        elif exp.index == act.index and exp.files[exp.index_name] != act.files[act.index_name]:
            out.append(Difference(C.INDEX, "same JSON content, different formatting", file=act.index_name))
    elif (exp.index is None) != (act.index is None) and set(exp.weights) == set(act.weights):
        where = "missing" if act.index is None else "unexpected"
        name = exp.index_name if act.index is None else act.index_name
        out.append(Difference(C.INDEX, f"{name} is {where}", file=name))
    return out


def _facts(t: TensorEntry | None) -> TensorFacts | None:
    return None if t is None else TensorFacts(t.file, t.dtype, t.shape, t.sha256)


def _with_facts(d: Difference, et: dict[str, TensorEntry], at: dict[str, TensorEntry]) -> Difference:
    """Both sides of a difference that names a tensor, for the reports."""
    if d.tensor is None:
        return d
    return dataclasses.replace(d, expected=_facts(et.get(d.tensor)), actual=_facts(at.get(d.tensor)))


def compare(
    expected: Path, actual: Path, *, weights_only: bool = False, ignore: frozenset[str] = frozenset()
) -> Comparison:
    """Classify every way `actual` differs from `expected`; `weights_only` ignores non-weight files, `ignore` the
    files of `actual` named (what a save context judges apart: harness.judge.context)."""
    # Bytes first: most cells pass, and identical files need no header parsing or tensor hashing.
    exp_files, act_files = file_digests(expected, weights_only), file_digests(actual, weights_only, ignore)
    if exp_files == act_files:
        return Comparison(Grade.BYTES, ())
    exp = read_checkpoint(expected, weights_only, exp_files)
    act = read_checkpoint(actual, weights_only, act_files, ignore)
    if exp.unreadable:
        raise ValueError(f"expected checkpoint {expected} is unreadable: {exp.unreadable}")
    diffs = [Difference(C.UNREADABLE_FILE, reason, file=f) for f, reason in sorted(act.unreadable.items())]
    et, at = exp.tensors, act.tensors
    diffs += [_with_facts(d, et, at) for d in _compare_tensors(exp, act) + _compare_layout(exp, act)]
    if not diffs:  # Should not happen: bytes differ, so something must explain it.
        diffs.append(Difference(C.ORDER, "files differ in bytes for a reason the comparator cannot name"))
    grade = Grade.TENSORS if not any(d.cls.is_content for d in diffs) else None
    return Comparison(grade, tuple(diffs))
