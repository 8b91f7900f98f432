"""The mutation analysis: plan, reach, run each mutant where it is reached, decide its status.

1. Targets resolve in the installed packages; each gives its mutants (operators.py).
2. The reach run: every cell and baseline on the unmutated overlay, with coverage of the targets' files and the
   alternative oracles. Its verdicts are what each mutant is compared with; its lines decide reach. It is kept
   between analyses in the same environment (reach_cache.py).
3. Each mutant that is neither listed equivalent nor unreached runs in a worker on an overlay with the mutant
   applied, on the cells that execute its line (or whose baseline does), most varied fixtures first.
"""

from __future__ import annotations

import bisect
import dataclasses
import fnmatch
import heapq
import json
import os
import queue
import random
import shutil
import sys
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offload_conformance.harness.outcomes import Oracle, OracleVerdict
from offload_conformance.harness.plan import selection
from offload_conformance.harness.plan.cells import Cell, options_label, safe_name
from offload_conformance.harness.plan.modes import BASELINE_MODE, Mode, Placement
from offload_conformance.harness.results import erred
from offload_conformance.harness.tools.mutants import (
    equivalents,
    hot,
    killers,
    operators,
    patching_bench,
    reach_cache,
    targets,
    unreached,
)
from offload_conformance.harness.tools.mutants.model import (
    Analysis,
    CellChange,
    Mutant,
    MutantResult,
    ShardPart,
    Status,
    Target,
    Timing,
    UnreachedLine,
)
from offload_conformance.harness.tools.mutants.overlay import PACKAGES, Overlay
from offload_conformance.harness.tools.mutants.worker import CRASH_CELLS, WORKER_FILE
from offload_conformance.harness.tools.mutants.zygote import Zygote, ZygoteError

Progress = Callable[[int, int, MutantResult], None]


ROTATION = 4  # fixtures in a mutant's first round of cells (see _varied)
NEAR = 12  # lines either side of a mutant whose executed subset makes a cell's way past it distinct (see _near)
# The placements that put every tensor of the model in offload storage (the second look's first choice).
WHOLE_ON_DISK = frozenset({Placement.DISK_FULL, Placement.MAP_ALL_DISK, Placement.ACCELERATE_DISK})
FIRST_LOOK = 16  # a mutant's cells chosen by the lines they execute; then the axis values not met (see _second_look)


class AnalysisError(ValueError):
    """The analysis cannot go on (no target resolves, the unmutated run fails, the worker server exits): one line
    for the user."""


@dataclass(frozen=True)
class Options:
    out: Path
    targets: tuple[str, ...] = targets.TARGETS
    # The default matrix, as the gate runs it: the reference's cells judge upstream's in-memory save with a save of
    # our own, so a mutant that breaks the in-memory and the offloaded save alike still shows there.
    wanted: selection.Selection = field(default_factory=selection.Selection)
    sample: int | None = None
    seed: int = 0
    shard: str | None = None  # K/N: this CI job's part of the mutants
    timeout: float = 30.0  # per cell (they take about 0.3 s); a mutated loop that never ends is a `timeout`
    # Cells a mutant runs at most (0: every cell reaching it): the ways past its line and through its function, then
    # each fixture not met (_second_look), then every kind (_varied); the report says how many of how many it ran.
    max_cells: int = 32
    mutants: tuple[str, ...] = ()  # fnmatch patterns over mutant ids: analyse only these (e.g. to rerun survivors)
    jobs: int = 2
    equivalents: Path = equivalents.SHIPPED
    killers: Path | None = killers.SHIPPED  # the cell that killed each mutant before leads its cells (killers.py)
    # A mutant patched into a server that has imported the packages where that is the same program (hot.py);
    # False: every worker imports the mutated overlay.
    patch: bool = True
    compare_patching: bool = False  # run each patchable mutant both ways too (patching_bench.py)


@dataclass(frozen=True)
class Reach:
    """The unmutated run: each cell's verdict and oracles, and the lines it and its baseline executed."""

    states: dict[str, str]
    oracles: dict[str, dict[str, str]]
    lines: dict[str, frozenset[tuple[str, int]]]  # cell -> (installed file, line), its baseline's included
    baselines: dict[str, str]  # baseline cell id -> the reach run's workdir (reused where a mutant is not reached)
    baseline_lines: dict[str, frozenset[tuple[str, int]]]
    preloaded: dict[str, frozenset[int]]  # installed file -> its lines executed before any fork (worker.preloaded)
    fixture_dirs: dict[str, str]
    seconds: float
    cached: bool  # taken from reach_cache, not run


def _generated(options: Options) -> tuple[list[Target], list[Any], dict[str, str], list[Mutant], list[Overlay]]:
    found, missing = targets.resolve(options.targets)
    if not found:
        raise AnalysisError("no target resolves in the installed packages: " + "; ".join(m.reason for m in missing))
    overlays = [Overlay(options.out / "work" / f"overlay-{i}", _packages(found)) for i in range(options.jobs)]
    sources = {t.file: overlays[0].original(t.file).read_text(encoding="utf-8") for t in found}
    every = [m for t in found for m in operators.mutants(t, sources[t.file])]
    return found, missing, sources, every, overlays


def listing(options: Options) -> str:
    """`--list`: the targets (with their mutant counts), the missing ones, and the mutant ids chosen."""
    found, missing, _, every, _ = _generated(options)
    chosen, _ = _chosen(every, options)
    per_target = defaultdict(int)
    for m in every:
        per_target[m.target] += 1
    lines = [f"target {t.name} ({t.file}:{t.first_line}): {per_target[t.name]} mutants" for t in found]
    lines += [f"missing {m.name}: {m.reason}" for m in missing]
    lines += [f"{m.id}  {m.description}" for m in chosen]
    return "\n".join([*lines, f"{len(chosen)} of {len(every)} mutants over {len(found)} targets"])


def analyse(options: Options, progress: Progress | None = None) -> Analysis:
    t0 = time.perf_counter()
    found, missing, sources, every, overlays = _generated(options)
    listed = equivalents.load(options.equivalents)
    hints = killers.load(options.killers)
    chosen, shard = _chosen(every, options)
    cells = selection.plan(options.wanted)
    for overlay in overlays:
        overlay.build()
    servers = [Zygote(_packages(found))]
    try:
        reach = _reach(servers[0], overlays[0], options, cells, found)
        targeted = {t.name: t for t in found}
        results, to_run = _without_runs(options, targeted, chosen, cells, reach, listed, hints, sources, overlays[0])
        for i, result in enumerate(results.values(), 1):
            if progress:
                progress(i, len(chosen), result)
        hot_plan = None
        if options.patch and to_run:
            warm = Overlay(options.out / "work" / "overlay-warm", _packages(found)).build()  # never mutated
            overlays.append(warm)
            servers.append(Zygote(_packages(found), warm.root, _modules(found)))
            bodies = {t.name: hot.body(sources[t.file], t) for t in found}
            hot_plan = _HotPlan(servers[-1], targeted, bodies, reach.preloaded)
        runs = _Runs(servers[0], hot_plan, overlays[: options.jobs], options, cells, reach, sources)
        seconds = _run_mutants(runs, to_run, results, chosen, progress)
    finally:
        for server in servers:
            server.close()
        for overlay in overlays:
            shutil.rmtree(overlay.root, ignore_errors=True)
    ordered = tuple(results[m.id] for m in chosen)
    timing = Timing(
        time.perf_counter() - t0,
        reach.seconds,
        *seconds[:2],
        len(to_run),
        reach_cached=reach.cached,
        patched=seconds[2],
    )
    return Analysis(
        environment=_environment(found),
        cells=tuple(c.cell_id for c in cells),
        targets=tuple(found),
        missing=tuple(missing),
        mutants=ordered,
        unreached=_unreached_lines(ordered, sources),
        stale_equivalents=stale(listed, every, found),
        stale_killers=stale(hints, every, found),
        timing=timing,
        shard=shard,
        sample=options.sample,
        seed=options.seed if options.sample else None,
    )


def stale(listed: Iterable[str], every: list[Mutant], found: list[Target]) -> tuple[str, ...]:
    """The ids a file lists (equivalent.txt, killers.txt) that belong to a target analysed here but that no mutant
    of it has any more: its source moved (another release) or changed. Ids of targets a run leaves out (`--target`)
    are not stale."""
    analysed = {t.name for t in found}
    ids = {m.id for m in every}
    return tuple(sorted(i for i in set(listed) if i.rsplit(":", 3)[0] in analysed and i not in ids))


def _without_runs(
    options: Options,
    by_target: dict[str, Target],
    chosen: list[Mutant],
    cells: list[Cell],
    reach: Reach,
    listed: dict[str, str],
    hints: dict[str, tuple[str, ...]],
    sources: dict[str, str],
    overlay: Overlay,
) -> tuple[dict[str, MutantResult], list[tuple[Mutant, list[str], int]]]:
    """Equivalent and unreached mutants decided at once; the others with the cells reaching them in the order they
    are run: where the in-memory save executes the line, an in-memory cell of each way past it (_in_memory); one
    cell of each way past the mutated line (see _near), a cover of the target's lines (_covering), one cell of each
    path through the target (_paths); after FIRST_LOOK cells, a cell of each fixture not met (_second_look); then the
    rest, the fixtures in turn (_by_fixture, _varied)."""
    by_id = {c.cell_id: c for c in cells}
    results: dict[str, MutantResult] = {}
    to_run: list[tuple[Mutant, list[str], int]] = []
    paths: dict[tuple[str, str], tuple[int, ...]] = {}
    for m in chosen:
        real = os.path.realpath(overlay.original(m.file))
        reaching = [c.cell_id for c in cells if (real, m.line) in reach.lines[c.cell_id]]
        if m.id in listed:
            results[m.id] = _result(m, Status.EQUIVALENT, reached=len(reaching), reason=listed[m.id])
        elif not reaching:
            results[m.id] = _result(m, Status.UNREACHED, reason=unreached.reason(sources[m.file], m.line))
        else:
            span = by_target[m.target]
            for c in reaching:
                if (m.target, c) not in paths:
                    paths[(m.target, c)] = _path(reach.lines[c], real, span.first_line, span.last_line)
            # The fixtures in turn, the rarest first: a fixture in a few cells only is there for what no other has
            # (two tie groups, a 0-d tensor, a .bin file), which the lines a cell executes do not show.
            order = _by_fixture(_varied([by_id[c] for c in reaching]), lambda c: by_id[c].fixture.name)
            # A cell that errors unmutated tells a mutant apart only by no longer erroring (another exception is the
            # same outcome): the cells that do not err lead, so each group below is represented by one of them.
            erring = _erring(reaching, reach.states)
            order = [c for c in order if c not in erring] + [c for c in order if c in erring]
            order = _paths(order, lambda c, t=m.target: paths[(t, c)])
            # Ahead of those, the cells that together execute every line any of them does, the most new lines first:
            # a branch one line long (a quantized model's metadata) is a distinct path among hundreds, sorted by how
            # rare it is, but the greedy cover takes it within the first few cells.
            order = _covering(order, lambda c, t=m.target: paths[(t, c)], erring)
            # Then, ahead of those, the first cell of each distinct way through the mutated line's neighbourhood: a
            # branch a few lines on (a quantized model's check, a context's cleanup) tells a mutant apart where the
            # function's whole path, different in every context and option, no longer sorts those cells early.
            order = _paths(order, lambda c, t=m.target, n=m.line: _near(paths[(t, c)], n))
            # Ahead of all, where the in-memory save executes the line: a fault there is in each cell's baseline
            # too, and no comparison with the baseline shows what both saves share; the in-memory cells hold that
            # save to the fixture itself (round-trip). The first of each way past the line among them.
            saving = _in_memory(order, by_id, reach.baseline_lines, (real, m.line), erring)
            order = _ahead(order, _firsts(saving, lambda c, t=m.target, n=m.line: _near(paths[(t, c)], n)))
            order = _second_look(
                order, FIRST_LOOK, lambda c: _axes(by_id[c]), erring, lambda c: _offloads_least(by_id[c].mode)
            )
            # Ahead of everything, the cells that killed this mutant before (killers.txt), where they reach it.
            order = _ahead(order, [c for c in hints.get(m.id, ()) if c in order])
            to_run.append((m, order[: options.max_cells] if options.max_cells else order, len(order)))
    return results, to_run


def _path(lines: frozenset[tuple[str, int]], file: str, first: int, last: int) -> tuple[int, ...]:
    """The lines of one function a cell (or its baseline) executes: the cell's path through it."""
    return tuple(sorted(n for f, n in lines if f == file and first <= n <= last))


def _near(path: tuple[int, ...], line: int) -> tuple[int, ...]:
    """The part of a cell's path through a target within NEAR lines of `line` (the path is sorted)."""
    return path[bisect.bisect_left(path, line - NEAR) : bisect.bisect_right(path, line + NEAR)]


def _by_fixture(order: list[str], fixture: Callable[[str], str]) -> list[str]:
    """`order` dealt round-robin over the fixtures, the one with the fewest cells first: each fixture's cells keep
    their order, and the cap takes as many cells of a fixture in two extras' cells as of one in hundreds."""
    cells: dict[str, list[str]] = defaultdict(list)
    for c in order:
        cells[fixture(c)].append(c)
    turns = sorted(cells.values(), key=len)  # stable: as rare, first seen first
    return [t[r] for r in range(max(map(len, turns), default=0)) for t in turns if r < len(t)]


def _second_look(
    order: list[str],
    first: int,
    axes: Callable[[str], tuple[Hashable, ...]],
    leave: frozenset[str],
    rank: Callable[[str], Any],
) -> list[str]:
    """`order` with, after its first `first` cells, the cells (not in `leave`) that bring what those did not meet:
    each time the cell whose axis values (fixture, mode, save options, context, IUT: `axes`) not met yet are the
    rarest among all the cells, a value of n cells weighing 1/n; of as heavy, the lowest `rank`, then the first.
    Until no cell brings a value; the rest keep their order. The lines a cell executes do not show what its model
    holds (a persistent buffer under offload_buffers, a checkpoint loaded in another dtype) nor how it was loaded or
    saved (an offload_folder that exists, hooks removed before the save): a survivor of the first look meets every
    model, mode, option and context the cap leaves room for, the rarest first, before any of them again."""
    values = {c: tuple(enumerate(axes(c))) for c in order}  # (axis, value): a value of one axis is not another's
    counts = Counter(v for vs in values.values() for v in vs)
    met = {v for c in order[:first] for v in values[c]}

    def gain(c: str) -> float:
        return sum(1 / counts[v] for v in values[c] if v not in met)

    # Lazy greedy: a cell's gain only falls as values are met, so a popped cell whose gain has not fallen is the best.
    heap = [(-gain(c), rank(c), i, c) for i, c in enumerate(order[first:]) if c not in leave]
    heapq.heapify(heap)
    picks: list[str] = []
    while heap:
        pushed, r, i, c = heapq.heappop(heap)
        fresh = gain(c)
        if fresh > 0 and fresh != -pushed:
            heapq.heappush(heap, (-fresh, r, i, c))
        elif fresh > 0:
            picks.append(c)
            met.update(values[c])
    return order[:first] + _ahead(order[first:], picks)


def _axes(cell: Cell) -> tuple[Hashable, ...]:
    """What a cell is besides the lines it executes: its fixture (and whether the whole of it goes through offload
    storage), mode, save options, context and IUT. A fixture met by a cell that offloads part of it is not met
    whole on disk: what a model holds shows where all of it is read back from offload storage. (In the seventh
    analysis this met qwen3_moe_as_float32 whole on disk by its reference cell, which reads that storage its own
    way; the upstream cell that kills `OffloadedWeightsLoader.__getitem__:186`-`187` is in killers.txt.)"""
    fixture = (cell.fixture.name, cell.mode.placement in WHOLE_ON_DISK)
    return fixture, cell.mode.name, options_label(cell.save_options), str(cell.context), cell.impl


def _offloads_least(mode: Mode) -> tuple[bool, bool]:
    """The second look's rank: the whole model on disk first, buffers offloaded too first. What a model holds shows
    where the most of it goes through offload storage (a checkpoint's bf16 weights read back for a float32 model, a
    persistent buffer onloaded by the hook)."""
    return mode.placement not in WHOLE_ON_DISK, not mode.offload_buffers


def _erring(cells: list[str], states: dict[str, str]) -> frozenset[str]:
    """The cells whose unmutated run erred."""
    return frozenset(c for c in cells if erred(states[c]))


def _covering(
    order: list[str], path: Callable[[str], tuple[int, ...]], leave: frozenset[str] = frozenset()
) -> list[str]:
    """`order` with a greedy cover of the target's lines moved to the front: each time the cell executing the most
    lines not yet executed by those before it (the first in `order` among as many), until none adds a line. Cells
    in `leave` (those that err unmutated: another exception is the same outcome) are not picked."""
    first: dict[tuple[int, ...], str] = {}
    for c in order:
        if c not in leave:
            first.setdefault(path(c), c)  # a cell per distinct path: the cover is over paths
    left = {c: frozenset(p) for p, c in first.items()}
    covered: set[int] = set()
    leading: list[str] = []
    while left:
        best = max(left, key=lambda c: len(left[c] - covered))  # max keeps the first of equals: `order` decides
        if not left[best] - covered:
            break
        covered |= left.pop(best)
        leading.append(best)
    return _ahead(order, leading)


def _paths(order: list[str], path: Callable[[str], Hashable]) -> list[str]:
    """`order` with the first cell of each distinct path through the target moved to the front, the rarest paths
    first: a mutant is told apart where the function does something different (a model without conversions takes
    another branch of revert_weight_conversion than a MoE; two tie groups another loop than one), and what few cells
    do is what the per-mutant cap must not cut off when there are more distinct paths than the cap."""
    return _ahead(order, _firsts(order, path))


def _firsts(order: list[str], path: Callable[[str], Hashable]) -> list[str]:
    """The first cell of each distinct path in `order`, the rarest paths first (first seen first among as rare)."""
    groups: dict[Hashable, list[str]] = defaultdict(list)
    for c in order:
        groups[path(c)].append(c)
    rank = {p: i for i, p in enumerate(groups)}
    return [g[0] for p, g in sorted(groups.items(), key=lambda pg: (len(pg[1]), rank[pg[0]]))]


def _ahead(order: list[str], leading: list[str]) -> list[str]:
    """`order` with `leading` (cells of it) moved to the front, in their order."""
    chosen = set(leading)
    return leading + [c for c in order if c not in chosen]


def _in_memory(
    order: list[str],
    by_id: dict[str, Cell],
    baseline_lines: dict[str, frozenset[tuple[str, int]]],
    line: tuple[str, int],
    leave: frozenset[str],
) -> list[str]:
    """The in-memory cells of `order` (not in `leave`) whose baseline, the in-memory save, executes `line`."""
    return [
        c
        for c in order
        if by_id[c].mode.name == BASELINE_MODE
        and c not in leave
        and line in baseline_lines.get(by_id[c].baseline.cell_id, frozenset())
    ]


@dataclass(frozen=True)
class _HotPlan:
    """What deciding and running a patched mutant needs (hot.py)."""

    server: Zygote  # imported the packages from an overlay no mutant is applied to
    targets: dict[str, Target]
    bodies: dict[str, tuple[int, range]]  # target -> where its body starts, its lines (hot.body)
    preloaded: dict[str, frozenset[int]]


@dataclass(frozen=True)
class _Runs:
    """What running one mutant's worker needs."""

    server: Zygote
    hot: _HotPlan | None
    overlays: list[Overlay]
    options: Options
    cells: list[Cell]
    reach: Reach
    sources: dict[str, str]


def _run_mutants(
    runs: _Runs,
    to_run: list[tuple[Mutant, list[str], int]],
    results: dict[str, MutantResult],
    chosen: list[Mutant],
    progress: Progress | None,
) -> tuple[float, float, int]:
    """Each mutant in a worker on a free overlay, `options.jobs` at a time; (import seconds, cell seconds, mutants
    patched in)."""
    slots: queue.Queue[Overlay] = queue.Queue()
    for overlay in runs.overlays:
        slots.put(overlay)

    comparisons: list[patching_bench.Comparison] = []

    def run(item: tuple[Mutant, list[str], int]) -> tuple[MutantResult, dict[str, Any], bool]:
        mutant, reaching, reached = item
        overlay = slots.get()
        try:
            with overlay.applied(mutant, operators.apply(runs.sources[mutant.file], mutant)):
                patch = _patch(runs, overlay, mutant)
                if patch and runs.options.compare_patching:
                    done, patched, comparison = _both_ways(runs, overlay, item, patch)
                    comparisons.extend([comparison] if comparison else [])
                else:
                    done, patched = _run_worker(runs, overlay, mutant, reaching, patch)
        finally:
            slots.put(overlay)
        return _judged(mutant, reaching, reached, runs.reach, done), done, patched

    imported = ran = 0.0
    patched = 0
    partial = runs.options.out / "work" / "mutants.partial.jsonl"  # each result as it comes: a run can be watched
    with ThreadPoolExecutor(max_workers=runs.options.jobs) as pool, partial.open("w") as log:
        for result, done, hot_run in pool.map(run, to_run):
            log.write(json.dumps(dataclasses.asdict(result)) + "\n")
            log.flush()
            results[result.id] = result
            imported += done.get("import_seconds", 0.0)
            ran += done.get("cell_seconds", 0.0)
            patched += hot_run
            if progress:
                progress(len(results), len(chosen), result)
    if runs.options.compare_patching:
        print(patching_bench.write(comparisons, runs.options.out), file=sys.stderr, flush=True)
    return imported, ran, patched


def _both_ways(
    runs: _Runs, overlay: Overlay, item: tuple[Mutant, list[str], int], patch: dict[str, str]
) -> tuple[dict[str, Any], bool, patching_bench.Comparison | None]:
    """`--compare-patching`: the mutant patched in and imported, one after the other (which first alternates by its
    id); the patched run's report, whether it was patched, and the comparison (None where the worker could not
    patch it: both ran imported)."""
    mutant, reaching, reached = item
    runs_of: dict[bool, tuple[dict[str, Any], bool, float]] = {}
    for way in (patch, None) if zlib.crc32(mutant.id.encode()) % 2 else (None, patch):
        t0 = time.perf_counter()
        done, patched = _run_worker(runs, overlay, mutant, reaching, way)
        runs_of[way is not None] = (done, patched, time.perf_counter() - t0)
    (done, patched, seconds), (imported, _, imported_seconds) = runs_of[True], runs_of[False]
    if not patched:
        return done, False, None
    verdicts = [_verdict(_judged(mutant, reaching, reached, runs.reach, d)) for d in (done, imported)]
    return done, True, patching_bench.Comparison(mutant.id, seconds, imported_seconds, *verdicts)


def _verdict(result: MutantResult) -> patching_bench.Verdict:
    """What a comparison of two runs of one mutant compares: its status and the cells whose verdict changed."""
    return patching_bench.Verdict(result.status.value, tuple((c.cell, c.after) for c in result.changes))


def _modules(found: Iterable[Target]) -> tuple[str, ...]:
    """The modules defining the targets: what the server of patched mutants imports beyond the cells' PRELOAD."""
    return tuple(dict.fromkeys(hot.module_of(t.file) for t in found))


def _packages(found: Iterable[Target]) -> tuple[str, ...]:
    """The packages copied into the overlay: the targets', and with any of the save path's, all three (transformers
    imports accelerate and huggingface_hub: none of them may come from anywhere but the overlay)."""
    named = {t.package for t in found}
    return tuple(sorted(named | set(PACKAGES) if named & set(PACKAGES) else named))


def _chosen(every: list[Mutant], options: Options) -> tuple[list[Mutant], ShardPart | None]:
    """`--sample N` (seeded, in generation order), then this job's part of them with `--shard K/N`."""
    chosen = [m for m in every if not options.mutants or any(fnmatch.fnmatchcase(m.id, p) for p in options.mutants)]
    if options.sample is not None and options.sample < len(chosen):
        picked = set(random.Random(options.seed).sample(range(len(chosen)), options.sample))
        chosen = [m for i, m in enumerate(chosen) if i in picked]
    if options.shard is None:
        return chosen, None
    k, n = selection.parse_shard(options.shard)
    return chosen[k - 1 :: n], ShardPart(k, n, tuple(m.id for m in chosen))


def _fixture_dirs(cells: list[Cell]) -> dict[str, str]:
    from offload_conformance.fixtures import generate

    return {spec.name: str(generate(spec)) for spec in dict.fromkeys(c.fixture for c in cells)}


def _job(overlay: Overlay, options: Options, out: Path, **rest: Any) -> Path:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    job = {
        "overlay": str(overlay.root),
        "packages": list(overlay.packages),
        "out": str(out),
        "selection": dataclasses.asdict(options.wanted),
        "timeout": options.timeout,
        **rest,
    }
    path = out / "job.json"
    path.write_text(json.dumps(job))
    return path


def _start(zygote: Zygote, job: Path, limit: float) -> dict[str, Any]:
    """Run a worker to its end (or `limit` seconds); what it wrote, or why it wrote nothing."""
    try:
        finished = zygote.run(job, limit)
    except ZygoteError as e:
        raise AnalysisError(str(e)) from None
    if not finished:
        return {"worker_timeout": f"the worker ran over {limit:.0f}s"}
    try:
        return json.loads((job.parent / WORKER_FILE).read_text())
    except (OSError, ValueError):
        log = job.parent / "worker.log"
        last = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        return {"crash": f"the worker ended before reporting: {' '.join(last)[:300]}"}


def _reach(zygote: Zygote, overlay: Overlay, options: Options, cells: list[Cell], found: list[Target]) -> Reach:
    t0 = time.perf_counter()
    fixture_dirs = _fixture_dirs(cells)
    files = sorted({t.file for t in found})
    measure = [str(overlay.path(f)) for f in files] + [str(overlay.original(f)) for f in files]
    measured = {os.path.realpath(f) for f in measure}
    planned = [c.cell_id for c in cells]
    cache_key = reach_cache.key(planned, fixture_dirs, options.timeout, overlay.packages)
    done = reach_cache.load(cache_key, measured)
    cached = done is not None
    if done is None:
        job = _job(
            overlay,
            options,
            options.out / "work" / "reach",
            reach=True,
            jobs=options.jobs,
            measure=measure,
            modules=_modules(found),
            cells=planned,
            fixture_dirs=fixture_dirs,
        )
        done = _start(zygote, job, limit=len(cells) * options.timeout + 600)
        if "cells" not in done:
            raise AnalysisError(f"the unmutated run failed: {done.get('crash') or done.get('worker_timeout')}")
        reach_cache.store(cache_key, done, measured)
    baseline_lines = {b: _real(v["reach"]) for b, v in done["baselines"].items()}
    lines = {}
    controls = {c.cell_id: c.baseline.cell_id for c in cells}
    for record in done["cells"]:
        control = controls[record["cell"]]
        lines[record["cell"]] = _real(record["reach"]) | baseline_lines.get(control, frozenset())
    return Reach(
        states={r["cell"]: r["state"] for r in done["cells"]},
        oracles={r["cell"]: r["oracles"] for r in done["cells"]},
        lines=lines,
        baselines={b: v["workdir"] for b, v in done["baselines"].items()},
        baseline_lines=baseline_lines,
        preloaded=_by_file(_real(done["preloaded"])),
        fixture_dirs=fixture_dirs,
        seconds=time.perf_counter() - t0,
        cached=cached,
    )


def _by_file(lines: frozenset[tuple[str, int]]) -> dict[str, frozenset[int]]:
    files: dict[str, set[int]] = defaultdict(set)
    for f, n in lines:
        files[f].add(n)
    return {f: frozenset(ns) for f, ns in files.items()}


def _real(reach: dict[str, list[int]]) -> frozenset[tuple[str, int]]:
    """Measured files by their installed path: the overlay's links and the files they point to are one file."""
    return frozenset((real, line) for f, lines in reach.items() for real in (os.path.realpath(f),) for line in lines)


def _varied(reaching: list[Cell]) -> list[str]:
    """The order a mutant meets its cells, every cell once. Kinds (mode, save options, context, IUT) come in blocks
    that hold each mode once, the block cycling through the other axes: the first twelve cells see every mode, the
    next twelve every mode again with another IUT, shard size, option or context. Within a kind, kind j starts at
    fixture j mod ROTATION: a few models early, not one per kind (each model's in-memory baseline is rerun for a
    mutant its line reaches), then round after round the same way."""
    kinds: dict[tuple[str, object, str, str], list[Cell]] = defaultdict(list)
    for c in reaching:
        kinds[(c.mode.name, c.save_options, c.context, c.impl)].append(c)
    modes = list(dict.fromkeys(k[0] for k in kinds))
    # Each mode's kinds, its list turned by the mode's index: round r takes the r-th of every mode, so the modes of
    # one round differ in the other axes too (not every mode has every option or context).
    per_mode = [[k for k in kinds if k[0] == m] for m in modes]
    turned = [ks[i % len(ks) :] + ks[: i % len(ks)] for i, ks in enumerate(per_mode)]
    order = [ks[r] for r in range(max(map(len, turned))) for ks in turned if r < len(ks)]
    groups = [kinds[k] for k in order]
    rotated = [g[j % ROTATION % len(g) :] + g[: j % ROTATION % len(g)] for j, g in enumerate(groups)]
    return [group[r].cell_id for r in range(max(map(len, rotated))) for group in rotated if r < len(group)]


def _patch(runs: _Runs, overlay: Overlay, mutant: Mutant) -> dict[str, str] | None:
    """The worker's instructions to patch `mutant` into the warm server (hot.py), or None where it must import."""
    plan = runs.hot
    real = os.path.realpath(overlay.original(mutant.file))
    if plan is None or hot.reason_not_hot(mutant, *plan.bodies[mutant.target], plan.preloaded.get(real, frozenset())):
        return None
    target = plan.targets[mutant.target]
    return {"qualname": target.qualname, "file": target.file, "mutated": str(overlay.path(mutant.file))}


def _run_worker(
    runs: _Runs, overlay: Overlay, mutant: Mutant, reaching: list[str], patch: dict[str, str] | None
) -> tuple[dict[str, Any], bool]:
    """What the worker for `mutant` (applied to `overlay`) reported, and whether it ran patched into the warm server
    (with `patch`); a mutant the worker finds it cannot patch runs again, importing the overlay."""
    reach, options = runs.reach, runs.options
    real = os.path.realpath(overlay.original(mutant.file))
    running = set(reaching)
    controls = {c.baseline.cell_id for c in runs.cells if c.cell_id in running}
    rerun = {b for b in controls if (real, mutant.line) in reach.baseline_lines.get(b, frozenset())}
    job = {
        "reach": False,
        "cells": reaching,
        "before": {c: reach.states[c] for c in reaching},
        "reuse": {b: reach.baselines[b] for b in controls - rerun if b in reach.baselines},
        "fixture_dirs": reach.fixture_dirs,
    }
    out = options.out / "work" / "mutants" / safe_name(mutant.id)
    limit = (2 * len(reaching) + len(rerun) + 2) * options.timeout + 120
    done: dict[str, Any] = {}
    if patch and runs.hot:
        done = _start(runs.hot.server, _job(overlay, options, out, hot=patch, **job), limit)
    hot_run = bool(done) and "not_hot" not in done
    if not hot_run:
        done = _start(runs.server, _job(overlay, options, out, **job), limit)
    shutil.rmtree(out, ignore_errors=True)
    return done, hot_run


def _result(m: Mutant, status: Status, **rest: Any) -> MutantResult:
    return MutantResult(m.id, m.target, m.file, m.line, m.operator, m.description, status, **rest)


def _judged(mutant: Mutant, reaching: list[str], reached: int, reach: Reach, done: dict[str, Any]) -> MutantResult:
    if "crash" in done:
        return _result(mutant, Status.KILLED_BY_CRASH, reached=reached, reason=done["crash"])
    if "worker_timeout" in done:
        return _result(mutant, Status.TIMEOUT, reached=reached, reason=done["worker_timeout"])
    records = done["cells"]
    changed = [r for r in records if r.get("confirmed")]
    oracles = {
        o.value: any(
            reach.oracles[r["cell"]].get(o.value) == OracleVerdict.PASS
            and r["oracles"].get(o.value) == OracleVerdict.FAIL
            for r in records
        )
        for o in Oracle
    }
    rest: dict[str, Any] = {
        "cells": tuple(r["cell"] for r in records),
        "classes": tuple(dict.fromkeys(c for r in changed for c in r["classes"])),
        "changes": tuple(CellChange(r["cell"], reach.states[r["cell"]], r["state"]) for r in changed),
        "reached": reached,
        "oracles": oracles,
        "seconds": round(done.get("import_seconds", 0.0) + done.get("cell_seconds", 0.0), 2),
    }
    if not changed:
        return _result(mutant, Status.SURVIVED, **rest)
    if any(r["timeout"] for r in changed):
        return _result(mutant, Status.TIMEOUT, reason="a cell timed out under the mutant", **rest)
    crashed = all(erred(r["state"]) for r in records) and len(records) >= min(CRASH_CELLS, len(reaching))
    if crashed:
        return _result(mutant, Status.KILLED_BY_CRASH, reason=records[0].get("failure", ""), **rest)
    return _result(mutant, Status.KILLED, **rest)


def _unreached_lines(results: tuple[MutantResult, ...], sources: dict[str, str]) -> tuple[UnreachedLine, ...]:
    lines: dict[tuple[str, str, int], list[MutantResult]] = defaultdict(list)
    for m in results:
        if m.status is Status.UNREACHED:
            lines[(m.target, m.file, m.line)].append(m)
    return tuple(
        UnreachedLine(t, f, n, sources[f].splitlines()[n - 1].strip(), ms[0].reason, len(ms))
        for (t, f, n), ms in lines.items()
    )


def _environment(found: list[Target]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    env = {"python": ".".join(map(str, __import__("sys").version_info[:3]))}
    for name in ("torch", *_packages(found)):
        try:
            env[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:
            env[name] = "not installed"
    return env
