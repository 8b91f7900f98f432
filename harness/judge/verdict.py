"""A cell's verdict: its execution against its baseline's, under the run's standard and budget."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from huggingface_hub.serialization._base import parse_size_to_int

from offload_conformance.fixtures.manifest import FixtureError, read_manifest
from offload_conformance.harness.execution import Execution
from offload_conformance.harness.judge.absolute import (
    UPSTREAM_MAX_SHARD_SIZE,
    dropped_on_load,
    index_bookkeeping,
    round_trip,
    shard_headers,
    shard_oversize,
    shard_plan,
    weight_file_names,
)
from offload_conformance.harness.judge.compare import Comparison, compare
from offload_conformance.harness.judge.context import directory_changed, judged_apart, own_files, reload_differences
from offload_conformance.harness.judge.hub import hub_differences
from offload_conformance.harness.judge.offload_storage import offload_copies
from offload_conformance.harness.judge.source import config_differences
from offload_conformance.harness.outcomes import FailureClass, Grade, Outcome, Stage, ordered
from offload_conformance.harness.plan.budget import Budget
from offload_conformance.harness.plan.cells import Cell
from offload_conformance.harness.plan.modes import BASELINE_MODE, Loader, Placement
from offload_conformance.harness.plan.options import writes
from offload_conformance.harness.plan.shards import ShardSizeError, fused_groups, resolve
from offload_conformance.harness.results import BaselineResult, CellResult, Difference, FusedGroups, Lifecycle

DETAIL_DIFFERENCES = 3  # differences spelled out in a cell's one-line detail


def judge(
    cell: Cell,
    run: Execution,
    baseline: Execution,
    require: Grade,
    budget: Budget | None = None,
    fixture_dir: Path | None = None,
    dequantized: bool = False,
) -> CellResult:
    """The cell's verdict against its baseline's save (or, where that raised, the fixture in `fixture_dir`), with
    the checks of the save on its own terms (judge.absolute) and of the model around it (model-changed).
    `dequantized`: the load turned the fixture's quantized weights into others on purpose, so its own files are
    not what a save should give back (no dropped-on-load or round-trip)."""
    common: dict[str, Any] = {
        "cell_id": cell.cell_id,
        "fixture": cell.fixture.name,
        "mode": cell.mode.name,
        "impl": cell.impl,
        "save_options": dict(cell.save_options),
        "seconds": round(run.seconds, 2),
        "hf_device_map": run.hf_device_map,
        "cost": run.cost,
        "failure": run.failure,
        "lifecycle": run.lifecycle,
        "context": str(cell.context),
    }
    variant = dict(cell.save_options).get("variant")
    max_shard_size = _max_shard_size(cell, fixture_dir)
    for execution, prefix in ((baseline, "baseline "), (run, "")):
        if execution.unsupported is not None:
            detail = f"{prefix}{execution.unsupported}"
            return CellResult(outcome=Outcome.UNSUPPORTED, grade=None, classes=(), detail=detail, **common)
    # What the save sent to the Hub (or should not have): on its own terms, whatever the baseline did.
    hub = hub_differences(dict(cell.save_options), run.hub, run.save_dir, run.before)
    if not writes(dict(cell.save_options)):
        # Held to writing nothing: what the in-memory save did (or failed to do) plays no part.
        return _error(run, common) if run.failure is not None else _not_main_process(run, require, common, hub)
    if baseline.failure is not None and baseline.failure.stage is Stage.SAVE and fixture_dir is not None:
        # transformers loaded the fixture but could not save it in memory: the source checkpoint judges.
        against = f"source checkpoint: in-memory save raised {baseline.failure.type}: {baseline.failure.message}"
        common |= {"baseline_failure": baseline.failure, "judged_against": against}
        if run.failure is not None:
            return _error(run, common)
        # The layout of a save that never succeeded in memory is unknown: named tensors are the standard.
        source = compare(fixture_dir, run.save_dir, weights_only=True)
        own = _own_terms(run, max_shard_size, variant) + offload_forward(cell, run, baseline) + hub
        return _compared(source, fixture_dir, run, own, common)
    if baseline.failure is not None:
        # transformers' own load failed: no correct checkpoint to compare with, whatever the IUT. The
        # root cause comes first, the cell's own error after.
        own = f"; this cell: {run.failure}" if run.failure else ""
        return CellResult(
            outcome=Outcome.ERROR,
            grade=None,
            classes=(),
            detail=f"baseline failed: {baseline.failure}{own}",
            baseline_failure=baseline.failure,
            log_tail=baseline.log_tail,
            **common,
        )
    if run.failure is not None:
        return _error(run, common)
    ignored: frozenset[str] = frozenset()
    own = []
    if run.before is not None:
        ignored, own = judged_apart(variant, baseline.save_dir, run.save_dir, run.before)
        own += reload_differences(run.reloaded)
    result = compare(baseline.save_dir, run.save_dir, ignore=ignored)
    common["fused_groups"] = _fused_groups(run.save_dir, variant, max_shard_size)
    own += _own_terms(run, max_shard_size, variant, ignored) + offload_forward(cell, run, baseline) + hub
    oversize = any(d.cls is FailureClass.SHARD_OVERSIZE for d in own)
    if oversize and shard_oversize(baseline.save_dir, max_shard_size):
        # The in-memory save breaks the limit itself (huggingface_hub plans views of one storage as one item:
        # e.g. experts split from one fused tensor): the guarantee an IUT is held to is not there to hold.
        own = [d for d in own if d.cls is not FailureClass.SHARD_OVERSIZE]
    # The fixture's own files hold checkpoint names: a save asked to keep the in-memory names cannot give them back.
    original_format = dict(cell.save_options).get("save_original_format", True)
    if fixture_dir is not None and not dequantized and original_format:
        own += dropped_on_load(fixture_dir, baseline.save_dir, run.save_dir)
        if cell.mode.name == BASELINE_MODE:
            own += round_trip(fixture_dir, baseline.save_dir, run.save_dir, ignored)
    if fixture_dir is not None and not dequantized and cell.mode.name == BASELINE_MODE:
        own += load_fidelity(fixture_dir, run)
    if fixture_dir is not None and original_format and max_shard_size is not None and _from_pretrained(cell):
        own += shard_plan(fixture_dir, run.save_dir, max_shard_size, variant, ignored)  # type: ignore[arg-type]
    own += (budget or Budget()).violations(run.cost)
    if fixture_dir is not None and run.offload_dir is not None and _reads_in_place(cell):
        own += offload_copies(fixture_dir, run.offload_dir)
    differences = _merged(result.differences, own)
    return _verdict(result.grade, differences, require, len(differences) > len(result.differences), common)


def _not_main_process(run: Execution, require: Grade, common: dict[str, Any], hub: list[Difference]) -> CellResult:
    """A save on a process that is not the one that writes (is_main_process=False, or rank 1 of a torch.distributed
    group: every process of a distributed run but one) writes, deletes and changes nothing, on disk or on the Hub
    (`hub`): the target after it holds what it held before (nothing, in an empty context; its in-memory baseline
    must be as empty, but a fault there is upstream's own and shows as this)."""
    found = directory_changed(run.save_dir, run.before or {}, "a save on a process that must not write")
    differences = tuple(found) + tuple(hub) + tuple(run.model_changes)
    return _verdict(Grade.BYTES, differences, require, bool(differences), common)


def _reads_in_place(cell: Cell) -> bool:
    """Whether transformers' own loading placed the weights (its disk offload reads a safetensors checkpoint in
    place); accelerate's disk_offload and its big-model loaders copy every offloaded weight by design."""
    return cell.mode.loader is Loader.TRANSFORMERS and cell.mode.placement is not Placement.ACCELERATE_DISK


def _own_terms(
    run: Execution, max_shard_size: object, variant: str | None, ignored: frozenset[str] = frozenset()
) -> list[Difference]:
    """What is wrong with the save, or with the model after it, whatever the baseline says (files `ignored` are
    not the save's: judge.context)."""
    out = shard_oversize(run.save_dir, max_shard_size, ignored)  # type: ignore[arg-type]
    out += weight_file_names(run.save_dir, variant, ignored)
    out += index_bookkeeping(run.save_dir, run.parameters, ignored)
    return out + list(run.model_changes)


def offload_forward(cell: Cell, run: Execution, baseline: Execution) -> list[Difference]:
    """Class offload-forward: the model the cell loaded computes, before the save, other logits than its baseline
    (the same checkpoint loaded in memory), or its forward pass raises where the baseline's runs. Both passes run
    forked and single-threaded on the same input, so the digests are equal unless the computation differs: a hook
    that does not load an offloaded weight or buffer, a weight read back as another value."""
    if run.lifecycle is None or run.lifecycle.forward_refused or baseline.logits is None:
        return []
    if cell.mode.placement is Placement.CUSTOM_CODE:
        return []  # the twin is a class of our own, holding tensors: it has no forward pass to compare
    if run.logits == baseline.logits:
        return []
    if run.logits is None:
        what = f"the forward pass fails here, and runs on the model loaded in memory: {run.lifecycle.forward_skipped}"
    else:
        what = "the forward pass gives other logits than on the model loaded in memory"
    return [Difference(FailureClass.OFFLOAD_FORWARD, what)]


def load_fidelity(fixture_dir: Path, run: Execution) -> list[Difference]:
    """Class load-fidelity: the fixture loaded in memory computes, before the save, other logits than the model that
    wrote it (a generated fixture's recipe records them: fixtures.forward, the same input, one thread). A load
    conversion that its save reverts (an interleave undone the wrong way round, both ways) gives the checkpoint back
    byte for byte, and every offloaded cell computes what the in-memory one does: only the writer's logits show it.
    Only for a fixture with a record, in a cell whose forward pass ran."""
    try:
        expected = read_manifest(fixture_dir).get("recipe", {}).get("logits")  # type: ignore[union-attr]
    except FixtureError:
        return []
    if not expected or run.lifecycle is None or run.lifecycle.forward_refused or run.logits == expected:
        return []
    if run.logits is None:
        skipped = run.lifecycle.forward_skipped
        what = f"the forward pass fails on the model loaded in memory, not on the one that wrote the fixture: {skipped}"
    else:
        what = "the model loaded in memory gives other logits than the model that wrote the fixture"
    return [Difference(FailureClass.LOAD_FIDELITY, what)]


def _from_pretrained(cell: Cell) -> bool:
    """Whether the saved model is one transformers' from_pretrained loaded: only there is the in-memory save's
    shard plan upstream's contract (a model built from its config saves in module order)."""
    mode = cell.mode
    return mode.loader is Loader.TRANSFORMERS and mode.placement not in (Placement.FROM_CONFIG, Placement.CUSTOM_CODE)


def _max_shard_size(cell: Cell, fixture_dir: Path | None) -> object:
    """The max_shard_size the save was given: a forced size (plan.shards) is this fixture's bytes."""
    size = dict(cell.save_options).get("max_shard_size")
    if fixture_dir is None or size is None:
        return size
    try:
        return resolve(size, fixture_dir)
    except ShardSizeError:
        return None  # the cell was unsupported


def _fused_groups(save_dir: Path, variant: str | None, max_shard_size: object) -> FusedGroups | None:
    own = own_files(variant)
    size = UPSTREAM_MAX_SHARD_SIZE if max_shard_size is None else max_shard_size
    limit = size if isinstance(size, int) else parse_size_to_int(str(size))
    located = {
        t.name: (name, t.end - t.begin)
        for name, shard in shard_headers(save_dir).items()
        if own(name)
        for t in shard.tensors
    }
    return fused_groups(located, limit)


def _merged(compared: tuple[Difference, ...], own: list[Difference]) -> tuple[Difference, ...]:
    """The comparison's differences, then each own-terms one it did not already name (the index checks overlap)."""
    seen = {(d.cls, d.detail) for d in compared}
    return compared + tuple(d for d in own if (d.cls, d.detail) not in seen)


def _error(run: Execution, common: dict[str, Any]) -> CellResult:
    """No checkpoint: the save (or load) failed. A save that raised must still leave the model as it was, and
    the directory it saved into: its model-changed and directory-changed findings are the error cell's classes."""
    assert run.failure is not None
    found = list(run.model_changes)
    if run.before is not None and run.failure.stage is Stage.SAVE:
        found += directory_changed(run.save_dir, run.before)
    detail = "; ".join([str(run.failure), *(d.detail for d in found[:DETAIL_DIFFERENCES])])
    return CellResult(
        outcome=Outcome.ERROR,
        grade=None,
        classes=ordered({d.cls for d in found}),
        detail=detail,
        differences=tuple(found),
        log_tail=run.log_tail,
        **common,
    )


def _compared(
    result: Comparison, source: Path, run: Execution, own: list[Difference], common: dict[str, Any]
) -> CellResult:
    """Against the source checkpoint: its weights, and the config fields a save carries over."""
    differences = result.differences + tuple(config_differences(source, run.save_dir))
    grade = result.grade if len(differences) == len(result.differences) else None
    merged = _merged(differences, own)
    return _verdict(grade, merged, Grade.TENSORS, len(merged) > len(differences), common)


def _detail(differences: tuple[Difference, ...]) -> str:
    detail = "; ".join(d.detail for d in differences[:DETAIL_DIFFERENCES])
    if len(differences) > DETAIL_DIFFERENCES:
        detail += f"; and {len(differences) - DETAIL_DIFFERENCES} more"
    return detail


def _verdict(
    grade: Grade | None, differences: tuple[Difference, ...], require: Grade, over: bool, common: dict[str, Any]
) -> CellResult:
    detail = _detail(differences)
    passes = grade is not None and grade.meets(require) and not over
    return CellResult(
        outcome=Outcome.PASS if passes else Outcome.FAIL,
        grade=grade,
        classes=ordered({d.cls for d in differences}),
        detail=detail,
        differences=differences,
        **common,
    )


def resave_verdict(result: CellResult, first: Path, again: Execution) -> CellResult:
    """A passing cell's save, loaded back in the same mode and saved again by the same IUT (`again`), must give
    the same bytes: a second revert of reverted names, or a rename that is not idempotent, shows here."""
    lifecycle = dataclasses.replace(result.lifecycle or Lifecycle(), resaved=True)
    problem = again.failure or again.unsupported
    if problem is not None:
        found = (Difference(FailureClass.RESAVE, f"the save does not load back and save again: {problem}"),)
    else:
        found = tuple(
            Difference(FailureClass.RESAVE, f"saved again: {d.cls}: {d.detail}", tensor=d.tensor, file=d.file)
            for d in compare(first, again.save_dir).differences
        )
    if not found:
        return dataclasses.replace(result, lifecycle=lifecycle)
    differences = result.differences + found
    return dataclasses.replace(
        result,
        outcome=Outcome.FAIL,
        classes=ordered({d.cls for d in differences}),
        detail=_detail(differences),
        differences=differences,
        log_tail=again.log_tail if problem is not None else result.log_tail,
        lifecycle=lifecycle,
    )


def baseline_result(fixture_dir: Path, run: Execution) -> BaselineResult:
    if run.unsupported is not None or run.failure is not None:
        return BaselineResult(str(fixture_dir), round(run.seconds, 2), failure=run.failure, unsupported=run.unsupported)
    # Is a plain load -> save round trip already lossless? (weights only: config.json is rewritten)
    rt = compare(fixture_dir, run.save_dir, weights_only=True)
    return BaselineResult(
        str(fixture_dir), round(run.seconds, 2), roundtrip_grade=rt.grade, roundtrip_classes=rt.classes
    )
