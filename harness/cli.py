"""python -m harness: run the conformance matrix and report."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

from huggingface_hub.serialization._base import parse_size_to_int

from fixtures import DEFAULT_FIXTURES, FixtureError, FixtureSpec, SpecError, coverage, generate
from fixtures import by_name as fixture_by_name
from fixtures.architectures import layout_for
from fixtures.registry import SMALL_SHARDS
from harness import gate, history, report, summary, xfails
from harness.budget import Budget, BudgetError
from harness.compare import GRADES
from harness.impls import BUILTIN, ImplError, resolve
from harness.killtable import kill_table
from harness.killtable import render as render_kills
from harness.merge import MergeError, merge
from harness.modes import MODES, Mode, UnknownMode
from harness.modes import by_name as mode_by_name
from harness.results import RunResult
from harness.runner import plan, run_cells


class UsageError(Exception):
    """Bad command-line input: one line to stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem (exit code 2), like ours."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m harness", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run conformance cells and compare with the in-memory save")
    run.add_argument("--fixture", action="append", help="fixture name (repeatable; default: all default fixtures)")
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
        help="upstream | reference | package.module:function (repeatable; default: upstream, reference)",
    )
    run.add_argument(
        "--max-shard-size",
        action="append",
        metavar="SIZE",
        help="save option axis: 'default' (upstream's) or a size like 24KB (repeatable;"
        f" default: default and {SMALL_SHARDS})",
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
        "--xfails",
        type=Path,
        help="known failures: lines of 'CELL-ID-PATTERN  # reason'; 'auto' = the file shipped for the"
        " installed transformers release (harness/known_failures/)",
    )
    run.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="cells run in parallel")
    fz = sub.add_parser("fuzz", help="run hypothesis-generated specs through the runner; shrink and print a failure")
    fz.add_argument("--impl", default="reference", help="the IUT (default: reference)")
    fz.add_argument("--mode", action="append", help="modes to draw from (repeatable; default: all)")
    fz.add_argument("--examples", type=int, default=20, help="number of generated cells")
    fz.add_argument("--seed", type=int, help="random seed (default: derandomized, same cells every run)")
    fz.add_argument("--out", type=Path, default=Path("fuzz-out"), help="output directory")
    fz.add_argument("--require", choices=GRADES, default="bytes", help="grade a cell needs to pass")
    fz.add_argument("--timeout", type=float, default=600.0, help="seconds before a cell is killed")
    kt = sub.add_parser("faults", help="run every injectable fault where it applies and print the kill table")
    kt.add_argument("--fixture", action="append", help="fixture name (repeatable; default: all default fixtures)")
    kt.add_argument("--out", type=Path, default=Path("faults-out"), help="output directory")
    gt = sub.add_parser("gate", help="compare base and candidate results.json; exit 1 on regressions")
    gt.add_argument("base", type=Path)
    gt.add_argument("candidate", type=Path)
    gt.add_argument("--out", type=Path, default=Path("."), help="where gate.md and gate.json go")
    mg = sub.add_parser("merge", help="combine results.json documents (e.g. from parallel CI jobs) into one")
    mg.add_argument("documents", type=Path, nargs="+")
    mg.add_argument("--out", type=Path, default=Path("merged"), help="directory for results.json and reports")
    hs = sub.add_parser("history", help="the historical replay table (Markdown) from results.json of several releases")
    hs.add_argument("documents", type=Path, nargs="+")
    hs.add_argument("--out", type=Path, help="also write the table to this file")
    hs.add_argument("--impl", help="only this IUT's rows")
    rp = sub.add_parser("report", help="write summary.md, report.html and junit.xml from a results.json")
    rp.add_argument("document", type=Path)
    rp.add_argument("--out", type=Path, help="directory (default: beside the document)")
    bn = sub.add_parser("bench", help="time and memory of offloaded saves, side by side (bench.md, bench.png)")
    bn.add_argument("--scale", type=int, default=20, help="layers of the large fixture (20 = about 1.2 GB)")
    bn.add_argument("--layers", default="4,8,16,32", help="layer counts for the memory sweep")
    bn.add_argument("--repeats", type=int, default=3, help="runs per case (the median is reported)")
    bn.add_argument("--out", type=Path, default=Path("bench-out"))
    sub.add_parser("modes", help="list offload modes")
    fx = sub.add_parser("fixtures", help="fixtures: 'list' prints the coverage table (generating what is missing)")
    fx.add_argument("action", nargs="?", choices=["list"], default="list")
    return p


def _spec(text: str) -> FixtureSpec:
    try:
        fields = json.loads(text)
        spec = FixtureSpec.from_json(fields)
    except (ValueError, TypeError) as e:
        raise UsageError(f"--spec: not a FixtureSpec JSON object ({e})") from None
    layout_for(spec)  # unknown architecture or quantization: a usage error now, not in a cell
    return spec


def _modes(names: list[str] | None) -> list[Mode]:
    try:
        return [mode_by_name(n) for n in names] if names else list(MODES)
    except UnknownMode as e:
        raise UsageError(str(e)) from None


def _impl(spec: str) -> str:
    try:
        resolve(spec)  # fail fast in the parent with a one-line message
    except ImplError as e:
        raise UsageError(str(e)) from None
    return spec


def _fuzz(args: argparse.Namespace) -> int:
    modes = _modes(args.mode)
    impl = _impl(args.impl)
    if args.examples < 1:
        raise UsageError("--examples must be >= 1")
    from harness.fuzz import fuzz  # imports hypothesis: only when fuzzing

    print(f"fuzzing {impl} with {args.examples} generated cells", file=sys.stderr, flush=True)
    finding = fuzz(impl, modes, args.examples, args.out, args.require, args.timeout, args.seed)
    if finding is None:
        print(f"{args.examples} generated cells passed (--require {args.require})")
        return 0
    r = finding.result
    print(f"FAILED (shrunk): {r.cell_id}: {r.outcome} {','.join(r.classes)}: {r.detail}")
    print(f"reproduce with:\n  {finding.command()}")
    return 1


def _read_xfails(path: Path) -> list[tuple[str, str]]:
    if str(path) == "auto":
        path = xfails.for_installed()
        if path is None:
            print("--xfails auto: no known-failures file for the installed transformers", file=sys.stderr)
            return []
    try:
        return xfails.read(path)
    except xfails.XfailsError as e:
        raise UsageError(str(e)) from None


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
    except MergeError as e:
        raise UsageError(str(e)) from None
    gate.write(verdict, args.out)
    print(gate.markdown(verdict))
    return 0 if verdict.passed else 1


def _merged(paths: list[Path]) -> RunResult:
    try:
        return merge([(str(p), _document(p)) for p in paths])
    except MergeError as e:
        raise UsageError(str(e)) from None


def _merge(args: argparse.Namespace) -> int:
    merged = _merged(args.documents)
    args.out.mkdir(parents=True, exist_ok=True)
    merged.write(args.out / "results.json")
    summary.write_all(merged, args.out)
    print(f"merged {len(args.documents)} documents, {len(merged.cells)} cells: {args.out / 'results.json'}")
    return 0 if merged.ok else 1


def _history(args: argparse.Namespace) -> int:
    text = history.table(_merged(args.documents), impl=args.impl)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


def _report(args: argparse.Namespace) -> int:
    doc = _document(args.document)
    out = args.out or args.document.parent
    out.mkdir(parents=True, exist_ok=True)
    summary.write_all(doc, out)
    print(f"wrote {out / 'summary.md'}, {out / 'report.html'}, {out / 'junit.xml'}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from harness.bench import run_bench  # matplotlib and friends: only when benchmarking

    try:
        sweep = [int(x) for x in args.layers.split(",")]
    except ValueError:
        raise UsageError(f"--layers {args.layers!r}: expected comma-separated integers") from None
    if args.repeats < 1 or args.scale < 1:
        raise UsageError("--repeats and --scale must be >= 1")
    print(run_bench(args.out, args.scale, sweep, args.repeats))
    return 0


def _faults(args: argparse.Namespace) -> int:
    try:
        specs = [fixture_by_name(n) for n in args.fixture] if args.fixture else None
    except SpecError as e:
        raise UsageError(str(e)) from None
    kills = kill_table(args.out, specs)
    print(render_kills(kills))
    return 0 if all(k.verdict in ("caught", "n/a") for k in kills) else 1


def _modes_list(args: argparse.Namespace) -> int:
    for m in MODES:
        print(f"{m.name:32} {m.description}")
    return 0


def _fixtures_list(args: argparse.Namespace) -> int:
    print(coverage.table([coverage.describe(f) for f in DEFAULT_FIXTURES]))
    return 0


def _save_options(size: str) -> tuple[tuple[str, object], ...]:
    if size == "default":
        return ()
    try:
        parse_size_to_int(size)
    except ValueError:
        raise UsageError(f"--max-shard-size {size!r}: expected 'default' or a size like 24KB or 5MB") from None
    return (("max_shard_size", size),)


def _run(args: argparse.Namespace) -> int:
    try:
        fixtures = [fixture_by_name(n) for n in args.fixture or []] + [_spec(j) for j in args.spec or []]
    except SpecError as e:
        raise UsageError(str(e)) from None
    fixtures = fixtures or list(DEFAULT_FIXTURES)
    modes = _modes(args.mode)
    impls = [_impl(i) for i in args.impl or BUILTIN]
    if args.jobs < 1 or args.timeout <= 0:
        raise UsageError("--jobs must be >= 1 and --timeout > 0")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a directory")
    entries = _read_xfails(args.xfails) if args.xfails else []
    try:
        budget = Budget.parse(args.max_read_amplification, args.max_extra_rss)
    except BudgetError as e:
        raise UsageError(str(e)) from None
    try:
        memory_limit = parse_size_to_int(args.memory_limit) if args.memory_limit else None
    except ValueError:
        raise UsageError(f"--memory-limit {args.memory_limit!r}: expected a size like 8GB") from None
    cells = plan(fixtures, modes, impls, [_save_options(v) for v in args.max_shard_size or ["default", SMALL_SHARDS]])
    if args.cell:
        cells = [c for c in cells if any(fnmatch.fnmatchcase(c.cell_id, p) for p in args.cell)]
        if not cells:
            raise UsageError(f"--cell {' '.join(args.cell)}: matches no cell of the planned matrix")

    def progress(i: int, n: int, cell: object) -> None:
        print(report.progress_line(i, n, cell), file=sys.stderr, flush=True)  # type: ignore[arg-type]

    # Generated or verified now: a tampered fixture is a usage error before any cell runs.
    fixture_dirs = {spec: generate(spec) for spec in dict.fromkeys(c.fixture for c in cells)}
    print(f"running {len(cells)} cells with {args.jobs} job(s), output in {args.out}", file=sys.stderr, flush=True)
    result = run_cells(
        cells,
        args.out,
        require=args.require,
        timeout=args.timeout,
        jobs=args.jobs,
        progress=progress,
        budget=budget,
        memory_limit=memory_limit,
        fixture_dirs=fixture_dirs,
    )
    if args.xfails:
        result = xfails.apply(result, entries)
    result.write(args.out / "results.json")
    summary.write_all(result, args.out)
    print(report.render(result))
    print(f"\nresults: {args.out / 'results.json'}")
    return 0 if result.ok else 1


COMMANDS = {
    "run": _run,
    "fuzz": _fuzz,
    "bench": _bench,
    "history": _history,
    "gate": _gate,
    "merge": _merge,
    "report": _report,
    "faults": _faults,
    "modes": _modes_list,
    "fixtures": _fixtures_list,
}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, FixtureError, SpecError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
