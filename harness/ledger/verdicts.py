"""Each entry's verdict, from the runs of the environments it names. Computed, never written by hand."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from offload_conformance.harness.ledger.entries import ERROR, Bug, Ledger, Verdict
from offload_conformance.harness.ledger.environments import Environment, bugs_in, mismatches, needed, replays
from offload_conformance.harness.ledger.replay import runs_dir
from offload_conformance.harness.outcomes import Outcome
from offload_conformance.harness.results import CellResult, RunResult


@dataclass(frozen=True)
class Judged:
    bug: Bug
    verdict: Verdict
    evidence: tuple[str, ...]  # one line per replayed environment, then why where not caught
    affected_env: str
    then_env: str  # the fixed environment, or the newest for an open bug


def flags(bug: Bug, cell: CellResult) -> bool:
    """The cell shows this bug: it failed with an expected class, or erred where an error is expected."""
    if cell.outcome is Outcome.ERROR:
        return ERROR in bug.expect
    return cell.outcome is Outcome.FAIL and any(c in bug.expect for c in cell.classes)


def _state(cell: CellResult) -> str:
    if cell.outcome is Outcome.ERROR and cell.failure:
        return f"error ({cell.failure.stage}: {cell.failure.type})"
    if cell.outcome is Outcome.UNSUPPORTED and cell.failure:
        return f"unsupported ({cell.failure.message})"
    return cell.state


def _summary(env: Environment, cells: list[CellResult]) -> str:
    counts: dict[str, list[str]] = {}
    for c in cells:
        counts.setdefault(_state(c), []).append(c.cell_id)
    parts = [f"{len(ids)} {state}" + (f" (e.g. {ids[0]})" if state != "pass" else "") for state, ids in counts.items()]
    return f"{env.key}: " + "; ".join(parts)


def run_key(env: Environment, bug: Bug) -> str:
    return f"{env.key}/{bug.group}"


def judge(bug: Bug, runs: dict[str, RunResult], newest: dict[str, str]) -> Judged:
    affected, then = replays(bug, newest)
    if bug.gpu:
        return Judged(bug, Verdict.NEEDS_GPU, (bug.why or "needs an accelerator",), affected.key, then.key)
    if not bug.runnable:
        return Judged(bug, Verdict.NOT_CAUGHT, (bug.why,), affected.key, then.key)
    missing = [e.key for e in (affected, then) if run_key(e, bug) not in runs]
    if missing:
        why = f"not replayed: no results for {', '.join(missing)}"
        return Judged(bug, Verdict.NOT_CAUGHT, (why, *([bug.why] if bug.why else [])), affected.key, then.key)
    before = [c for c in runs[run_key(affected, bug)].cells if bug.matches(c.cell_id)]
    after = [c for c in runs[run_key(then, bug)].cells if bug.matches(c.cell_id)]
    evidence = [_summary(affected, before)] + ([_summary(then, after)] if then != affected else [])
    flagged_before = any(flags(bug, c) for c in before)
    if bug.is_open:
        caught = any(flags(bug, c) for c in after)
        verdict = Verdict.STILL_OPEN if caught else Verdict.NOT_CAUGHT
        if not caught:
            evidence.append(f"not flagged with {'/'.join(bug.expect)} on the newest release {then.key}")
    else:
        clean = bool(after) and all(c.outcome is Outcome.PASS for c in after)
        verdict = Verdict.REPRODUCED if flagged_before and clean else Verdict.NOT_CAUGHT
        if not flagged_before:
            evidence.append(f"not flagged with {'/'.join(bug.expect)} on the affected release {affected.key}")
        if not clean:
            evidence.append(f"not clean on the fixed release {then.key}")
    if verdict is Verdict.NOT_CAUGHT and bug.why:
        evidence.append(bug.why)
    return Judged(bug, verdict, tuple(evidence), affected.key, then.key)


def read_runs(out: Path, ledger: Ledger) -> dict[str, RunResult]:
    """Whatever environments have results under out/runs (an environment that failed to install has none)."""
    found = {}
    for env in needed(ledger):
        for bug in bugs_in(ledger, env):
            path = runs_dir(out, env, bug.group) / "results.json"
            if path.exists() and run_key(env, bug) not in found:
                result = RunResult.read(path)
                if not mismatches(env, ledger.newest, result.environment):
                    found[run_key(env, bug)] = result  # a run that recorded other versions does not judge
    return found


def judge_all(ledger: Ledger, runs: dict[str, RunResult]) -> list[Judged]:
    return [judge(b, runs, ledger.newest) for b in ledger.bugs]
