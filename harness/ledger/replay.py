"""Replay the cells the ledger names, in the environment that is installed now."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from offload_conformance.fixtures.sets import named
from offload_conformance.fixtures.spec import SpecError
from offload_conformance.harness.ledger.entries import Ledger, LedgerError
from offload_conformance.harness.ledger.environments import Environment, bugs_in, mismatches
from offload_conformance.harness.plan.cells import SHARD_SIZES, Cell, matrix
from offload_conformance.harness.plan.impls import BUILTIN
from offload_conformance.harness.plan.modes import MODES
from offload_conformance.harness.plan.selection import Settings, impl, shard_options
from offload_conformance.harness.results import RunResult


def runs_dir(out: Path, env: Environment) -> Path:
    return out / "runs" / env.key


def cells_for(ledger: Ledger, env: Environment) -> list[Cell]:
    """The cells of every entry replayed in `env`, in matrix order; an entry naming no cell is an error."""
    bugs = bugs_in(ledger, env)
    try:
        fixtures = named(tuple(dict.fromkeys(f for b in bugs for f in b.fixtures())))
    except SpecError as e:
        raise LedgerError(str(e)) from None
    everything = matrix(fixtures, list(MODES), [impl(i) for i in BUILTIN], [shard_options(s) for s in SHARD_SIZES])
    for bug in bugs:
        if not any(bug.matches(c.cell_id) for c in everything):
            raise LedgerError(f"{bug.id}: its cells {', '.join(bug.cells)} match no cell in {env.key}")
    return [c for c in everything if any(b.matches(c.cell_id) for b in bugs)]


def replay(ledger: Ledger, env: Environment, out: Path, settings: Settings) -> RunResult:
    """Run `env`'s cells (no known-failures list: a flagged cell is the finding) into out/runs/KEY."""
    from offload_conformance.harness.report import write_reports
    from offload_conformance.harness.run.runner import Runner

    if wrong := mismatches(env, ledger.newest):
        raise LedgerError("this is not the environment to replay: " + "; ".join(wrong))
    cells = cells_for(ledger, env)
    target = runs_dir(out, env)
    shutil.rmtree(target, ignore_errors=True)  # the ledger's own output: results of another day must not judge
    print(f"ledger: {env.key}: {len(cells)} cells", file=sys.stderr, flush=True)
    result = Runner(target, settings).run(cells)
    result.write(target / "results.json")
    write_reports(result, target)
    return result
