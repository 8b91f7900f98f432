"""offload-conformance (python -m offload_conformance.harness): run the conformance matrix and report."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from offload_conformance.fixtures import DEFAULT_FIXTURES, FixtureError, SpecError, coverage
from offload_conformance.fixtures import by_name as fixture_by_name
from offload_conformance.fixtures.sets import SETS, generated_set
from offload_conformance.harness import merge
from offload_conformance.harness.judge import gate
from offload_conformance.harness.outcomes import Fp8OnCpu, Grade
from offload_conformance.harness.plan import known_failures, selection
from offload_conformance.harness.plan.cells import DEFAULT_SHARDS, SMALL_SHARDS
from offload_conformance.harness.plan.contexts import CONTEXTS
from offload_conformance.harness.plan.impls import BUILTIN
from offload_conformance.harness.plan.modes import MODES
from offload_conformance.harness.plan.options import SAVE_OPTIONS
from offload_conformance.harness.report import history, terminal, write_reports
from offload_conformance.harness.report.coverage import generated_table
from offload_conformance.harness.report.coverage import table as coverage_table
from offload_conformance.harness.results import CellResult, RunResult

if TYPE_CHECKING:
    from offload_conformance.fixtures.spec import Fixture
    from offload_conformance.harness.run.runner import Runner

GRADES = [g.value for g in Grade]


class UsageError(Exception):
    """Bad command-line input: one line to stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem (exit code 2), like ours."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="offload-conformance", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run conformance cells and compare with the in-memory save")
    run.add_argument(
        "--set",
        dest="fixture_set",
        choices=SETS,
        help="a fixture set (default: default; all: every"
        " architecture of the installed transformers whose load converts weights, and every MoE)",
    )
    run.add_argument("--fixture", action="append", help="fixture name (repeatable; default: the whole set)")
    run.add_argument(
        "--spec",
        action="append",
        metavar="JSON",
        help="a fixture given as FixtureSpec JSON (repeatable; what fuzz prints to reproduce a cell)",
    )
    run.add_argument("--mode", action="append", help="offload mode (repeatable; default: all)")
    run.add_argument(
        "--cell", action="append", metavar="PATTERN", help="only cells whose id matches (fnmatch pattern; repeatable)"
    )
    run.add_argument(
        "--impl",
        action="append",
        help=f"upstream | reference | package.module:function (repeatable; default: {', '.join(BUILTIN)})",
    )
    run.add_argument(
        "--max-shard-size",
        action="append",
        metavar="SIZE",
        help=f"save option axis: '{DEFAULT_SHARDS}' (upstream's), a size like 24KB, or a size derived per fixture:"
        " per-tensor (every tensor its own shard), split-groups (a boundary inside every fused group)"
        f" (repeatable; default: {DEFAULT_SHARDS} and {SMALL_SHARDS}, and the forced sizes where docs/save-contexts.md"
        " says)",
    )
    run.add_argument(
        "--save-option",
        action="append",
        metavar="KEY=VALUE",
        help=f"another save_pretrained option on every cell: {', '.join(SAVE_OPTIONS)} (repeatable: one axis value"
        " each; judged against the in-memory save with the same option)",
    )
    run.add_argument(
        "--context",
        action="append",
        choices=[str(c) for c in CONTEXTS],
        help="what the target directory holds before the save (repeatable; default: empty, and the others where"
        " docs/save-contexts.md says)",
    )
    run.add_argument("--out", type=Path, default=Path("conformance-out"), help="output directory")
    run.add_argument("--require", choices=GRADES, default="bytes", help="grade a cell needs to pass")
    run.add_argument("--timeout", type=float, default=600.0, help="seconds before a cell is killed")
    run.add_argument(
        "--max-read-amplification",
        type=float,
        metavar="X",
        help="fail a cell that reads more than X times its offloaded bytes (class read-amplification)",
    )
    run.add_argument(
        "--max-extra-rss",
        metavar="SIZE",
        help="fail a cell whose save peaks more than SIZE (500MB, or 2x-largest-tensor) above the RSS"
        " before it (class memory-budget)",
    )
    run.add_argument("--memory-limit", metavar="SIZE", help="kill a cell whose RSS exceeds SIZE (e.g. 8GB)")
    run.add_argument(
        "--fp8-on-cpu",
        choices=[o.value for o in Fp8OnCpu],
        default=Fp8OnCpu.KEEP.value,
        help="fine-grained FP8 fixtures on a machine with no GPU: keep them float8 (default; the save path a GPU"
        " user takes) or let transformers dequantize them to bf16",
    )
    run.add_argument(
        "--lifecycle",
        action="append",
        choices=selection.LIFECYCLE_OPTIONS,
        help="resave: load back and save again every cell that passes, by the same IUT in the same mode (class"
        " resave; not in the default run: it costs about a cell each)",
    )
    run.add_argument(
        "--xfails",
        type=Path,
        help="known failures: lines of 'CELL-ID-PATTERN  # reason'; 'auto' = the file shipped for the"
        " installed transformers release (harness/known_failures/)",
    )
    run.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="cells run in parallel")
    run.add_argument("--list", action="store_true", help="print the planned cell ids and exit, running nothing")
    run.add_argument(
        "--shard",
        metavar="K/N",
        help="run only the K-th of N parts of the selected cells (one per CI job; `merge` combines the parts)",
    )
    mu = sub.add_parser(
        "mutants",
        help="mutation analysis of upstream's offloaded-save code: the matrix's kill rate, beside upstream's oracles",
    )
    mu.add_argument(
        "--target",
        action="append",
        metavar="NAME",
        help="a qualified function or class name to mutate (repeatable; default: the built-in targets)",
    )
    mu.add_argument("--impl", action="append", help="IUTs of the cells (repeatable; default: the default matrix's)")
    mu.add_argument("--fixture", action="append", help="fixtures of the cells (repeatable; default: the default set)")
    mu.add_argument("--mode", action="append", help="modes of the cells (repeatable; default: the default matrix's)")
    mu.add_argument("--cell", action="append", metavar="PATTERN", help="only cells whose id matches (repeatable)")
    mu.add_argument("--sample", type=int, metavar="N", help="analyse N mutants drawn with --seed (default: all)")
    mu.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    mu.add_argument("--shard", metavar="K/N", help="analyse the K-th of N parts of the mutants (`merge` joins them)")
    mu.add_argument("--timeout", type=float, default=30.0, help="seconds before a cell under a mutant is killed")
    mu.add_argument(
        "--max-cells",
        type=int,
        default=32,
        metavar="N",
        help="cells a mutant runs at most: one of each path through its function first, then a cell of each fixture"
        " not met, then every mode, IUT and shard size (0: all that reach it; default 32)",
    )
    mu.add_argument(
        "--mutant", action="append", metavar="PATTERN", help="only mutants whose id matches (fnmatch; repeatable)"
    )
    mu.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="mutants run in parallel")
    mu.add_argument(
        "--reimport",
        action="store_true",
        help="every worker imports the mutated packages (default: a mutant of a function that had not run before the"
        " fork is patched into a process that imported them once, the same program; docs/mutants.md)",
    )
    mu.add_argument(
        "--compare-patching",
        action="store_true",
        help="run each mutant that can be patched in both ways, patched and imported, and write patching.md: the"
        " time of each and whether they judge alike (the benchmark of patching)",
    )
    mu.add_argument("--equivalents", type=Path, help="equivalent mutants: lines of 'MUTANT-ID  # reason'")
    mu.add_argument("--min-score", type=float, metavar="X", help="exit 1 when the score is below X")
    mu.add_argument("--list", action="store_true", help="print the targets and mutant ids and exit, running nothing")
    mu.add_argument("--out", type=Path, default=Path("mutants-out"), help="output directory")
    fz = sub.add_parser("fuzz", help="run hypothesis-generated specs through the runner; shrink and print a failure")
    fz.add_argument("--impl", default="reference", help="the IUT (default: reference)")
    fz.add_argument("--mode", action="append", help="modes to draw from (repeatable; default: all)")
    fz.add_argument("--examples", type=int, default=20, help="number of generated cells")
    fz.add_argument("--seed", type=int, help="random seed (default: derandomized, same cells every run)")
    fz.add_argument("--out", type=Path, default=Path("fuzz-out"), help="output directory")
    fz.add_argument("--require", choices=GRADES, default="bytes", help="grade a cell needs to pass")
    fz.add_argument("--timeout", type=float, default=600.0, help="seconds before a cell is killed")
    fz.add_argument(
        "--damage",
        action="store_true",
        help="damage loaded models' offload storage instead; the IUT and upstream save each case (docs/reliability.md)",
    )
    kt = sub.add_parser("faults", help="run every injectable fault where it applies and print the kill table")
    kt.add_argument("--fixture", action="append", help="fixture name (repeatable; default: all default fixtures)")
    kt.add_argument("--out", type=Path, default=Path("faults-out"), help="output directory")
    gt = sub.add_parser("gate", help="compare base and candidate results.json; exit 1 on regressions")
    gt.add_argument("base", type=Path)
    gt.add_argument("candidate", type=Path)
    gt.add_argument("--out", type=Path, default=Path("."), help="where gate.md and gate.json go")
    mg = sub.add_parser(
        "merge", help="combine results.json documents (e.g. from parallel CI jobs), or mutants.json parts, into one"
    )
    mg.add_argument("documents", type=Path, nargs="+")
    mg.add_argument("--out", type=Path, default=Path("merged"), help="directory for results.json and reports")
    dr = sub.add_parser(
        "drift",
        help="drift.md and drift.json: new and fixed cells of runs judged by an older release's known failures",
    )
    dr.add_argument("documents", type=Path, nargs="+", help="results.json of the run (its --shard parts too)")
    dr.add_argument("--pinned", type=Path, default=Path("constraints/ci.txt"), help="constraints file of the pins")
    dr.add_argument("--out", type=Path, default=Path("canary-out"), help="directory for drift.md and drift.json")
    hs = sub.add_parser("history", help="the historical replay table (Markdown) from results.json of several releases")
    hs.add_argument("documents", type=Path, nargs="+")
    hs.add_argument("--out", type=Path, help="also write the table to this file")
    hs.add_argument("--impl", help="only this IUT's rows")
    sh = sub.add_parser("show", help="one JSON line per cell of a results.json: id, outcome, classes, state")
    sh.add_argument("document", type=Path)
    sh.add_argument("--cell", action="append", metavar="PATTERN", help="only cells whose id matches")
    rp = sub.add_parser(
        "report",
        help="write summary.md, report.html and junit.xml from a results.json (mutants.md, .html from a mutants.json)",
    )
    rp.add_argument("document", type=Path)
    rp.add_argument("--out", type=Path, help="directory (default: beside the document)")
    bn = sub.add_parser(
        "bench", help="time and memory of offloaded saves, side by side (bench.md, bench.json, bench.png)"
    )
    bn.add_argument("--scale", type=int, default=20, help="layers of the large fixture (20 = about 1.1 GB)")
    bn.add_argument("--layers", default="4,8,16,32", help="layer counts for the memory sweeps (MoE and one-to-many)")
    bn.add_argument("--repeats", type=int, default=5, help="runs per case, interleaved (the median is reported)")
    bn.add_argument("--out", type=Path, default=Path("bench-out"))
    lc = sub.add_parser(
        "llmcompressor", help="llm-compressor oneshot + compressed save: each offloaded flow vs the in-memory flow"
    )
    lc.add_argument("--fixture", action="append", help="qwen3_moe, deepseek_v3, llama (repeatable; default: all)")
    lc.add_argument("--scheme", action="append", help="fp8_dynamic, w4a16_g32 (repeatable; default: all)")
    lc.add_argument("--mode", action="append", help="offload mode (repeatable; default: all of them)")
    lc.add_argument("--saver", action="append", help="upstream, reference (repeatable; default: both)")
    lc.add_argument("--out", type=Path, default=Path("llmcompressor-out"))
    lc.add_argument("--jobs", type=int, default=2, help="cell processes at a time")
    lc.add_argument("--timeout", type=float, default=300.0, help="seconds before a cell is killed")
    lc.add_argument("--list", action="store_true", help="print the cell ids and exit")
    lg = sub.add_parser(
        "ledger",
        help="real upstream bugs replayed release by release: 'plan' the environments, 'run' one, 'report' verdicts",
    )
    lg.add_argument("action", choices=["list", "plan", "fixtures", "run", "report"])
    lg.add_argument("--out", type=Path, default=Path("ledger-out"))
    lg.add_argument("--ledger", type=Path, help="the data file (default: the shipped upstream_bugs.toml)")
    lg.add_argument("--id", action="append", help="only this entry, e.g. transformers#47018 (repeatable)")
    lg.add_argument("--env", help="run: the environment installed now (a key from `plan`)")
    lg.add_argument("--pins", type=Path, default=Path("constraints"), help="plan: the companion pins directory")
    lg.add_argument("--jobs", type=int, default=2, help="run: cell processes at a time")
    lg.add_argument("--timeout", type=float, default=300.0, help="run: seconds before a cell is killed")
    dc = sub.add_parser(
        "docs", help="rewrite a measuring tool's table in README.md or docs/ from its output (what its session runs)"
    )
    dc.add_argument("tool", help="bench, ledger, mutants, llmcompressor, sweep or matrix")
    dc.add_argument("outputs", type=Path, nargs="+", help="the tool's output directory (matrix: matrix-out)")
    dc.add_argument("--command", dest="written_by", help="the command named above the table (default: nox -s TOOL)")
    dc.add_argument("--root", type=Path, default=Path("."), help="the checkout holding README.md and docs/")
    sub.add_parser("modes", help="list offload modes")
    fx = sub.add_parser("fixtures", help="fixtures: 'list' prints the coverage table (generating what is missing)")
    fx.add_argument("action", nargs="?", choices=["list"], default="list")
    fx.add_argument("--set", dest="fixture_set", choices=SETS, default="default", help="which set to list")
    return p


def _planned(fn, *args):  # type: ignore[no-untyped-def]
    """A planning step; its PlanError is a usage error."""
    try:
        return fn(*args)
    except selection.PlanError as e:
        raise UsageError(str(e)) from None


def _fuzz(args: argparse.Namespace) -> int:
    modes = _planned(selection.modes, tuple(args.mode or ()))
    impl = _planned(selection.impl, args.impl)
    if args.examples < 1:
        raise UsageError("--examples must be >= 1")
    if args.damage:
        return _fuzz_damage(args, impl)
    from offload_conformance.harness.tools.fuzz import fuzz  # imports hypothesis: only when fuzzing

    print(f"fuzzing {impl} with {args.examples} generated cells", file=sys.stderr, flush=True)
    finding = fuzz(impl, modes, args.examples, args.out, Grade(args.require), args.timeout, args.seed)
    if finding is None:
        print(f"{args.examples} generated cells passed (--require {args.require})")
        return 0
    r = finding.result
    print(f"FAILED (shrunk): {r.cell_id}: {r.outcome} {','.join(r.classes)}: {r.detail}")
    print(f"reproduce with:\n  {finding.command()}")
    return 1


def _fuzz_damage(args: argparse.Namespace, impl: str) -> int:
    from offload_conformance.harness.plan.impls import resolve
    from offload_conformance.harness.tools.damage.run import bad, fuzz_damage, table

    impls = {name: resolve(name) for name in dict.fromkeys((impl, "upstream"))}
    print(f"damaging offload storage: {args.examples} cases, saved by {', '.join(impls)}", file=sys.stderr, flush=True)
    document = fuzz_damage(impls, args.examples, args.out, args.seed)
    print(table(document))
    print(f"{document['cases']} cases in {document['seconds']:.0f} s: {args.out / 'damage.json'}")
    found = bad(document, [name for name in impls if name != "upstream"])  # upstream is measured, not gated
    for what, n in found.items():
        print(f"FAILED: {what}: {n}")
    return 1 if found else 0


def _document(path: Path) -> RunResult:
    try:
        return RunResult.read(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{path}: not a results.json document ({type(e).__name__}: {e})") from None


def _gate(args: argparse.Namespace) -> int:
    try:
        verdict = gate.gate(_document(args.base), _document(args.candidate))
    except merge.MergeError as e:
        raise UsageError(str(e)) from None
    gate.write(verdict, args.out)
    print(gate.markdown(verdict))
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:  # the job summary of a GitHub Actions run
        with open(step, "a", encoding="utf-8") as f:
            f.write(gate.markdown(verdict) + "\n")
    return 0 if verdict.passed else 1


def _merged(paths: list[Path]) -> RunResult:
    try:
        return merge.merge([(str(p), _document(p)) for p in paths])
    except merge.MergeError as e:
        raise UsageError(str(e)) from None


def _merge(args: argparse.Namespace) -> int:
    from offload_conformance.harness.tools.mutants import merge as mutants

    try:  # mutants.json parts of a --shard K/N mutation analysis
        if (done := mutants.merge_documents(args.documents, args.out)) is not None:
            print(done)
            return 0
    except mutants.MergeError as e:
        raise UsageError(str(e)) from None
    merged = _merged(args.documents)
    args.out.mkdir(parents=True, exist_ok=True)
    merged.write(args.out / "results.json")
    write_reports(merged, args.out)
    print(f"merged {len(args.documents)} documents, {len(merged.cells)} cells: {args.out / 'results.json'}")
    return 0 if merged.ok else 1


def _drift(args: argparse.Namespace) -> int:
    from offload_conformance.harness.report import drift

    try:
        pinned = drift.pins(args.pinned)
    except OSError as e:
        raise UsageError(f"--pinned {args.pinned}: {e.strerror}") from None
    found = drift.drift([_document(p) for p in args.documents], pinned)
    drift.write(found, args.out)
    print(drift.markdown(found))
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        with open(step, "a", encoding="utf-8") as f:
            f.write(drift.markdown(found) + "\n")
    return 0 if found.ok else 1


def _history(args: argparse.Namespace) -> int:
    text = history.table(_merged(args.documents), impl=args.impl)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


def _report(args: argparse.Namespace) -> int:
    from offload_conformance.harness.tools.mutants import merge as mutants
    from offload_conformance.harness.tools.mutants import report as mutants_report
    from offload_conformance.harness.tools.mutants.model import Analysis

    out = args.out or args.document.parent
    if mutants.is_mutants(args.document):  # a mutation analysis: mutants.md and mutants.html again
        try:
            analysis = Analysis.read(args.document)
        except ValueError as e:
            raise UsageError(str(e)) from None
        out.mkdir(parents=True, exist_ok=True)
        mutants_report.write(analysis, out)
        print(f"wrote {out / 'mutants.md'}, {out / 'mutants.html'}")
        return 0
    doc = _document(args.document)
    out.mkdir(parents=True, exist_ok=True)
    write_reports(doc, out)
    print(f"wrote {out / 'summary.md'}, {out / 'report.html'}, {out / 'junit.xml'}")
    return 0


def _show(args: argparse.Namespace) -> int:
    cells = [c for c in _document(args.document).cells if not args.cell or _matches(c.cell_id, args.cell)]
    if args.cell and not cells:
        raise UsageError(f"--cell {' '.join(args.cell)}: matches no cell of {args.document}")
    for c in cells:
        print(json.dumps({"cell_id": c.cell_id, "outcome": c.outcome, "classes": list(c.classes), "state": c.state}))
    return 0


def _matches(cell_id: str, patterns: list[str]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(cell_id, p) for p in patterns)


def _bench(args: argparse.Namespace) -> int:
    from offload_conformance.harness.tools.bench import run_bench  # matplotlib and friends: only when benchmarking

    try:
        sweep = [int(x) for x in args.layers.split(",")]
    except ValueError:
        raise UsageError(f"--layers {args.layers!r}: expected comma-separated integers") from None
    if args.repeats < 1 or args.scale < 1:
        raise UsageError("--repeats and --scale must be >= 1")
    print(run_bench(args.out, args.scale, sweep, args.repeats))
    return 0


def _faults(args: argparse.Namespace) -> int:
    from offload_conformance.harness.tools import killtable

    try:
        specs = [fixture_by_name(n) for n in args.fixture] if args.fixture else None
    except SpecError as e:
        raise UsageError(str(e)) from None
    kills = killtable.kill_table(args.out, specs)
    print(killtable.render(kills))
    ok = (killtable.Verdict.CAUGHT, killtable.Verdict.NOT_APPLICABLE)
    return 0 if all(k.verdict in ok for k in kills) else 1


def _llmcompressor(args: argparse.Namespace) -> int:
    import importlib.util

    from offload_conformance.harness.tools.llmcompressor.plan import plan

    axes = (args.fixture, args.scheme, args.mode, args.saver)
    cells = _planned(plan, *(tuple(a or ()) for a in axes))
    if args.list:
        print("\n".join(c.cell_id for c in cells))
        return 0
    if args.jobs < 1 or args.timeout <= 0:
        raise UsageError("--jobs must be >= 1 and --timeout > 0")
    if importlib.util.find_spec("llmcompressor") is None:
        raise UsageError("llmcompressor is not installed here: `nox -s llmcompressor` installs it with its pins")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a directory")
    from offload_conformance.harness.tools.llmcompressor.run import render, run_flows

    print(f"running {len(cells)} llm-compressor cells with {args.jobs} job(s), output in {args.out}", file=sys.stderr)
    result = run_flows(cells, args.out, args.jobs, args.timeout, _progress_line)
    result.write(args.out / "results.json")
    write_reports(result, args.out)
    print(render(result))
    print(f"\nresults: {args.out / 'results.json'}")
    return 0 if result.ok else 1


def _ledger(args: argparse.Namespace) -> int:
    from offload_conformance.harness.ledger import entries, environments, report, verdicts
    from offload_conformance.harness.ledger.replay import build_newest_fixtures, replay

    try:
        ledger = entries.load(args.ledger or entries.SHIPPED).select(tuple(args.id or ()))
        if args.action == "list":
            for b in ledger.bugs:
                affected, then = environments.replays(b, ledger.newest)
                where = "gpu" if b.gpu else "no cells" if not b.runnable else f"{affected.key} -> {then.key}"
                print(f"{b.id:32} {where:60} {b.bug_class}")
            return 0
        if args.action == "plan":
            if not args.pins.is_dir():
                raise UsageError(f"--pins {args.pins}: not a directory of constraints files")
            print(environments.plan_file(ledger, args.pins, args.out))
            return 0
        if args.action == "fixtures":
            print("\n".join(build_newest_fixtures(ledger)) or "no entry builds its fixtures with the newest release")
            return 0
        if args.action == "run":
            if not args.env:
                raise UsageError("ledger run needs --env KEY (see `ledger plan`)")
            env = environments.by_key(ledger, args.env)
            if args.jobs < 1 or args.timeout <= 0:
                raise UsageError("--jobs must be >= 1 and --timeout > 0")
            replay(ledger, env, args.out, args.timeout, args.jobs)
            return 0
        judged = verdicts.judge_all(ledger, verdicts.read_runs(args.out, ledger))
    except entries.LedgerError as e:
        raise UsageError(str(e)) from None
    report.write(judged, args.out)
    print(report.markdown(judged))
    print(f"reports: {args.out / 'ledger.json'}, {args.out / 'ledger.md'}")
    if missing := report.unexplained(judged):
        print(f"error: not caught and not explained: {', '.join(j.bug.id for j in missing)}", file=sys.stderr)
        return 1
    return 0


def _progress_line(i: int, n: int, cell: CellResult) -> None:
    print(terminal.progress_line(i, n, cell), file=sys.stderr, flush=True)


def _modes_list(args: argparse.Namespace) -> int:
    for m in MODES:
        print(f"{m.name:42} {m.description}{'' if m.default else ' [not in the default matrix: --mode]'}")
    return 0


def _fixtures_list(args: argparse.Namespace) -> int:
    if args.fixture_set == "default":
        print(coverage_table([coverage.describe(f) for f in DEFAULT_FIXTURES]))
        return 0
    built, failed = generated_set()
    print(generated_table(built))
    print(f"\n{len(built)} architectures build; {len(failed)} cannot:")
    for u in failed:
        print(f"  {u.model_type}: {u.reason}")
    return 0


def _built(runner: Runner, spec: Fixture) -> None:
    """Generated or verified; a generated architecture that cannot build here is a usage error naming why."""
    from offload_conformance.fixtures.generated.quiet import failure_reason

    try:
        runner.fixture_dir(spec)
    except (FixtureError, SpecError):
        raise
    except Exception as e:
        raise UsageError(f"fixture {spec.name} cannot be built here: {failure_reason(e)}") from None


def _run(args: argparse.Namespace) -> int:
    wanted = selection.Selection(
        fixture_set=args.fixture_set,
        fixtures=tuple(args.fixture or ()),
        specs=tuple(args.spec or ()),
        modes=tuple(args.mode or ()),
        impls=tuple(args.impl or ()),
        shard_sizes=tuple(args.max_shard_size or ()),
        save_options=tuple(args.save_option or ()),
        contexts=tuple(args.context or ()),
        cells=tuple(args.cell or ()),
        shard=args.shard,
    )
    settings = _planned(
        selection.settings,
        args.require,
        args.timeout,
        args.jobs,
        args.memory_limit,
        args.max_read_amplification,
        args.max_extra_rss,
        args.fp8_on_cpu,
        tuple(args.lifecycle or ()),
    )
    cells, shard = _planned(selection.plan_with_shard, wanted)
    if args.list:
        print("\n".join(c.cell_id for c in cells))
        return 0
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a directory")
    try:
        known = known_failures.load(args.xfails, args.fixture_set or "default") if args.xfails else known_failures.NONE
    except known_failures.KnownFailuresError as e:
        raise UsageError(str(e)) from None
    if args.xfails and str(args.xfails) == known_failures.AUTO and not known.source:
        print("--xfails auto: no known-failures file for the installed transformers or an older one", file=sys.stderr)
    if known.drift:
        print(known.drift, file=sys.stderr)

    from offload_conformance.harness.report.progress import Progress
    from offload_conformance.harness.run.runner import Runner

    runner = Runner(args.out, settings)
    # Generated or verified now: a tampered fixture is a usage error before any cell runs.
    for spec in dict.fromkeys(c.fixture for c in cells):
        _built(runner, spec)
    print(f"running {len(cells)} cells with {args.jobs} job(s), output in {args.out}", file=sys.stderr, flush=True)
    progress = Progress(len(cells))
    try:
        result = dataclasses.replace(known.apply(runner.run(cells, progress)), shard=shard)
    finally:
        progress.close()
    result.write(args.out / "results.json")
    write_reports(result, args.out)
    print(terminal.render(result))
    for line in terminal.unmatched_lines(known.unmatched([c.cell_id for c in cells]), known.source):
        print(f"warning: {line}")
    print(f"\nresults: {args.out / 'results.json'}")
    return 0 if result.ok else 1


def _mutants(args: argparse.Namespace) -> int:
    from offload_conformance.harness.tools.mutants import analysis, equivalents, killers, report, targets

    wanted = selection.Selection(
        fixtures=tuple(args.fixture or ()),
        modes=tuple(args.mode or ()),
        impls=tuple(args.impl or ()),
        cells=tuple(args.cell or ()),
    )
    _planned(selection.plan, wanted)
    if args.shard:
        _planned(selection.parse_shard, args.shard)
    if args.sample is not None and args.sample < 1:
        raise UsageError("--sample must be >= 1")
    if args.jobs < 1 or args.timeout <= 0 or args.max_cells < 0:
        raise UsageError("--jobs must be >= 1, --timeout > 0 and --max-cells >= 0")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a directory")
    if args.reimport and args.compare_patching:
        raise UsageError("--compare-patching runs each mutant patched too: it cannot be given with --reimport")
    options = analysis.Options(
        out=args.out.resolve(),
        targets=tuple(args.target or targets.TARGETS),
        wanted=wanted,
        sample=args.sample,
        seed=args.seed,
        shard=args.shard,
        timeout=args.timeout,
        jobs=args.jobs,
        equivalents=args.equivalents or equivalents.SHIPPED,
        max_cells=args.max_cells,
        mutants=tuple(args.mutant or ()),
        patch=not args.reimport,
        compare_patching=args.compare_patching,
    )
    try:
        if args.list:
            print(analysis.listing(options))
            return 0
        args.out.mkdir(parents=True, exist_ok=True)
        result = analysis.analyse(options, _mutant_progress)
    except (equivalents.EquivalentsError, killers.KillersError, analysis.AnalysisError) as e:
        raise UsageError(str(e)) from None
    report.write(result, args.out)
    print(report.summary(result))
    print(f"\nmutants: {args.out / 'mutants.json'}")
    return 1 if args.min_score is not None and (result.score or 0.0) < args.min_score else 0


def _mutant_progress(i: int, n: int, m: object) -> None:
    print(f"[{i}/{n}] {m.id}: {m.status}", file=sys.stderr, flush=True)  # type: ignore[attr-defined]


def _docs(args: argparse.Namespace) -> int:
    from offload_conformance.harness.report.regions import RegionError
    from offload_conformance.harness.tools import doc_regions

    try:
        paths = doc_regions.update(args.tool, args.outputs, args.written_by or f"nox -s {args.tool}", args.root)
    except (RegionError, merge.MergeError, ValueError, KeyError) as e:
        raise UsageError(str(e)) from None
    print(f"docs: {args.tool} written to {', '.join(map(str, paths))}")
    return 0


COMMANDS = {
    "run": _run,
    "mutants": _mutants,
    "fuzz": _fuzz,
    "bench": _bench,
    "history": _history,
    "drift": _drift,
    "gate": _gate,
    "merge": _merge,
    "report": _report,
    "show": _show,
    "faults": _faults,
    "llmcompressor": _llmcompressor,
    "ledger": _ledger,
    "modes": _modes_list,
    "fixtures": _fixtures_list,
    "docs": _docs,
}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, FixtureError, SpecError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
