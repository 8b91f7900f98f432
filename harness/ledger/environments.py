"""Which environments the ledger replays: a transformers release with pinned companions, one install each.

An environment is named by what differs from the newest releases (`transformers-5.13.1`,
`transformers-5.24.0+accelerate-1.13.0`), so entries that need the same install share one run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from offload_conformance.harness.environment import environment as recorded_environment
from offload_conformance.harness.ledger.entries import Bug, Ledger, LedgerError


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))


@dataclass(frozen=True)
class Environment:
    transformers: str
    others: tuple[tuple[str, str], ...] = ()  # packages held at another release than the newest

    @property
    def key(self) -> str:
        return "+".join([f"transformers-{self.transformers}", *(f"{p}-{v}" for p, v in self.others)])

    def versions(self, newest: dict[str, str]) -> dict[str, str]:
        """Every replayed package's release in this environment."""
        return newest | dict(self.others) | {"transformers": self.transformers}


def environment(bug: Bug, release: str, newest: dict[str, str]) -> Environment:
    """`bug`'s package at `release`, its pins, the newest of everything else."""
    chosen = dict(bug.pins) | {bug.package: release}
    transformers = chosen.pop("transformers", newest["transformers"])
    others = tuple(sorted((p, v) for p, v in chosen.items() if v != newest[p]))
    return Environment(transformers, others)


def replays(bug: Bug, newest: dict[str, str]) -> tuple[Environment, Environment]:
    """The affected environment, and the one that must be clean (fixed) or still flag it (newest, when open)."""
    then = bug.fixed if not bug.is_open else newest[bug.package]
    return environment(bug, bug.affected, newest), environment(bug, then, newest)


def needed(ledger: Ledger) -> list[Environment]:
    """Every environment a runnable entry needs, oldest transformers first (so a session installs forward)."""
    envs = {e for b in ledger.bugs if b.runnable for e in replays(b, ledger.newest)}
    return sorted(envs, key=lambda e: (_release(e.transformers), e.key))


def bugs_in(ledger: Ledger, env: Environment) -> list[Bug]:
    return [b for b in ledger.bugs if b.runnable and env in replays(b, ledger.newest)]


INSTALL = "# install: "  # a pins-file line naming a companion to install too (not a dependency pip would resolve)


def _pins_file(env: Environment, pins_dir: Path) -> Path:
    files = {p.name.removeprefix("transformers-").removesuffix(".txt"): p for p in pins_dir.glob("transformers-*.txt")}
    older = [v for v in files if _release(v) <= _release(env.transformers)]
    if not older:
        raise LedgerError(f"no companion pins at or below transformers {env.transformers} in {pins_dir}")
    return files[max(older, key=_release)]


def companions(env: Environment, pins_dir: Path) -> list[str]:
    """Requirements the pins file names on `# install:` lines (e.g. triton, which transformers 5.4-5.6 import
    for FP8 without declaring it)."""
    lines = _pins_file(env, pins_dir).read_text().splitlines()
    return [line.removeprefix(INSTALL).strip() for line in lines if line.startswith(INSTALL)]


def constraints(env: Environment, newest: dict[str, str], pins_dir: Path) -> str:
    """A pip constraints file for `env`: the measured companion pins of its transformers release (or of the
    nearest older release that has a file: releases between two measured ones share the older one's
    companions), with the replayed packages set to this environment's releases."""
    source = _pins_file(env, pins_dir)
    versions = env.versions(newest)
    kept = [
        line
        for line in source.read_text().splitlines()
        if line.strip() and not line.startswith("#") and re.split(r"[=<>!~ ]", line, maxsplit=1)[0] not in versions
    ]
    pinned = [f"{p}=={v}" for p, v in sorted(versions.items())]
    return f"# {env.key}: companions of {source.name}, replayed packages pinned\n" + "\n".join(kept + pinned) + "\n"


def plan_file(ledger: Ledger, pins_dir: Path, out: Path) -> Path:
    """`out/environments.json`: for each environment, its key, constraints file and requirements, in install order
    (what `nox -s ledger` reads; it installs them and runs `ledger run --env KEY` in each)."""
    (out / "constraints").mkdir(parents=True, exist_ok=True)
    plan = []
    for env in needed(ledger):
        path = out / "constraints" / f"{env.key}.txt"
        path.write_text(constraints(env, ledger.newest, pins_dir))
        requirements = [f"{p}=={v}" for p, v in sorted(env.versions(ledger.newest).items())]
        requirements += companions(env, pins_dir)
        plan.append({"key": env.key, "constraints": str(path), "requirements": requirements})
    target = out / "environments.json"
    target.write_text(json.dumps(plan, indent=1))
    return target


def by_key(ledger: Ledger, key: str) -> Environment:
    for env in needed(ledger):
        if env.key == key:
            return env
    raise LedgerError(f"no ledger environment {key!r} (known: {', '.join(e.key for e in needed(ledger))})")


def mismatches(env: Environment, newest: dict[str, str], recorded: dict[str, str] | None = None) -> list[str]:
    """What differs from `env`: in a run's recorded environment, or (None) in the running interpreter, read the
    way every run records it (harness.environment)."""
    recorded = recorded_environment() if recorded is None else recorded
    wrong = []
    for package, wanted in env.versions(newest).items():
        have = recorded.get(package, "not recorded")
        if have != wanted:
            wrong.append(f"{package} {have}, {env.key} needs {wanted}")
    return wrong
