"""Sessions, named for what you want to do: `nox -l` lists them with their docstrings.

SPEC is a transformers version (5.14.1), a local checkout (installed editable) or a wheel file.
Every session installs torch==2.13.0 (CPU) first, with pip: uv and poetry do not see that wheel
and would fetch a multi-GB CUDA build instead.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nox
import nox.command

nox.options.default_venv_backend = "virtualenv"
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
CONSTRAINTS = ROOT / "constraints"
CI = str(CONSTRAINTS / "ci.txt")
LLMCOMPRESSOR = str(CONSTRAINTS / "llmcompressor.txt")
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
PYTHON = "3.11"
CLI = "offload-conformance"
# Oldest supported, the releases around the offload-save fixes, the one pinned before (5.24.0) and the pinned one,
# the newest (5.25.0: constraints/ci.txt).
TRANSFORMERS_VERSIONS = ["5.0.0", "5.13.1", "5.14.1", "5.15.1", "5.24.0", "5.25.0"]


def _install(session: nox.Session, *extras: str) -> None:
    session.install("-c", CI, "torch")
    target = f".[{','.join(extras)}]" if extras else "."
    session.install("-c", CI, "-e", target)


def _install_transformers(session: nox.Session, spec: str) -> None:
    """A version (with its measured companion pins), a local checkout (editable) or a wheel."""
    path = Path(spec).expanduser()
    if path.is_dir():
        session.install("-c", str(CONSTRAINTS / "torch.txt"), "-e", str(path.resolve()))
    elif path.suffix == ".whl" and path.is_file():
        session.install("-c", str(CONSTRAINTS / "torch.txt"), str(path.resolve()))  # its dependencies
        # pip skips a wheel whose version is already installed: force this very file in.
        session.install("--force-reinstall", "--no-deps", str(path.resolve()))
    elif re.fullmatch(r"\d+\.\d+\.\d+(\.?(rc|dev)\d+)?", spec):
        pins = CONSTRAINTS / f"transformers-{spec}.txt"
        session.install("-c", str(pins if pins.exists() else CONSTRAINTS / "torch.txt"), f"transformers=={spec}")
    else:
        session.error(f"--transformers {spec!r}: not a version, a transformers checkout directory or a .whl file")


def _take(args: list[str], flag: str) -> tuple[str | None, list[str]]:
    """Remove `flag VALUE` from args."""
    if flag not in args:
        return None, args
    i = args.index(flag)
    if i + 1 >= len(args):
        raise SystemExit(f"{flag} needs a value")
    return args[i + 1], args[:i] + args[i + 2 :]


def _cache_env(session: nox.Session) -> dict[str, str]:
    # Fixtures (and the mutation analysis's reach run) are cached per session venv unless the user points
    # elsewhere. nox's session.env holds only what the session sets: the user's variable is in os.environ.
    return {
        **ENV,
        "OFFLOAD_CONFORMANCE_CACHE": os.environ.get("OFFLOAD_CONFORMANCE_CACHE")
        or str(Path(session.virtualenv.location) / "offload-conformance-cache"),
    }


def _conformance(
    session: nox.Session, args: list[str], out: str, *, verdict: bool, step_summary: bool = True, command: str = "run"
) -> None:
    """Run the matrix (or another command writing results.json) into `out`. With `verdict`, a failing cell fails
    the session (the harness exits 1); without, failing cells are the finding and only a harness that wrote no
    results.json fails it."""
    results = Path(out) / "results.json"
    results.unlink(missing_ok=True)
    codes = [0] if verdict else [0, 1]
    env = _cache_env(session) | ({} if step_summary else {"GITHUB_STEP_SUMMARY": ""})
    session.run(CLI, command, "--out", out, *args, env=env, success_codes=codes)
    if not results.exists():
        session.error(f"the harness wrote no {results}: see its output above")


def _docs(session: nox.Session, tool: str, *outputs: str, partial: bool = False, name: str | None = None) -> None:
    """Rewrite the tool's measured table in README.md/docs (harness/report/regions.py) from this run's output, under
    the command, date, commit and machine. A partial run (one part, one entry, a sample) leaves the table alone.
    `name`: the session, where it is not named for the tool (the damage tables come from `fuzz -- --damage`)."""
    if partial:
        session.log(f"docs: a partial run, so the {tool} table in the docs is left as it was")
        return
    command = " ".join(["nox -s", name or tool, *(["--", *session.posargs] if session.posargs else [])])
    session.run(CLI, "docs", tool, *outputs, "--command", command, env=ENV)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run our own test suite; extra arguments go to pytest."""
    _install(session, "test", "quant")
    session.run("pytest", *session.posargs, env=_cache_env(session))


@nox.session(python=PYTHON)
def conformance(session: nox.Session) -> None:
    """Run the conformance matrix (the main job): offloaded saves against the in-memory save.

    `-- --transformers SPEC` tests another transformers; other arguments go to `offload-conformance run`
    (default --out conformance-out)."""
    spec, args = _take(list(session.posargs), "--transformers")
    _install(session, "quant", "report")
    if spec:
        _install_transformers(session, spec)
    out, args = _take(args, "--out")
    if "--xfails" not in args:
        args = ["--xfails", "auto", *args]  # the known upstream failures of the installed release, if listed
    _conformance(session, args, out or "conformance-out", verdict=True)


# The sweep's cells: every generated fixture in the disk modes, both shard sizes, upstream and the reference.
SWEEP_MODES = ["disk-full", "disk-partial", "experts-on-disk"]
# upstream's default, 24KB, and a boundary inside every fused group of each MoE (docs/save-contexts.md)
SWEEP_SHARD_SIZES = ["default", "24KB", "split-groups"]


@nox.session(python=PYTHON)
def sweep(session: nox.Session) -> None:
    """Run every architecture of the installed transformers, built tiny, in the disk modes (the sweep).

    Every architecture whose load converts weights (and every MoE), built tiny
    (`offload-conformance fixtures list --set all`), in the disk modes, both shard sizes, upstream and the
    reference; sweep-out/. Fails on a failure not listed in the shipped known failures of the set. Arguments go
    to `offload-conformance run` (e.g. --shard 1/4 for one CI job of four)."""
    _install(session, "report")
    out, args = _take(list(session.posargs), "--out")
    _conformance(session, [*_sweep_args(), "--xfails", "auto", *args], out or "sweep-out", verdict=True)
    _docs(session, "sweep", out or "sweep-out", partial=bool(args))


def _sweep_args() -> list[str]:
    """The sweep's cells: the set `all`, its modes and shard sizes."""
    modes = [arg for m in SWEEP_MODES for arg in ("--mode", m, "--mode", f"{m}+offload_buffers")]
    return ["--set", "all", *modes, *(arg for s in SWEEP_SHARD_SIZES for arg in ("--max-shard-size", s))]


# What the canary moves to the newest release (torch stays pinned: the only build that installs here).
CANARY_PACKAGES = ["transformers", "accelerate", "safetensors", "huggingface_hub", "compressed-tensors"]


@nox.session(python=PYTHON)
def canary(session: nox.Session) -> None:
    """See what the newest releases break: drift against the pinned release's known failures (the canary).

    The newest release of transformers, accelerate, safetensors, huggingface_hub and compressed-tensors, on the
    default matrix and the sweep, judged by the pinned release's known failures (`--xfails auto` takes the nearest
    older release's file): canary-out/drift.md and drift.json, the new and fixed cells by root cause with the
    versions on both sides. Fails on a new failure. `-- --shard K/N` runs one part of each; `-- --matrix-only`
    skips the sweep."""
    torch_only = str(CONSTRAINTS / "torch.txt")
    session.install("-c", torch_only, "torch")
    session.install("-c", torch_only, "-e", ".[quant,report]")
    session.install("-c", torch_only, "--upgrade", *CANARY_PACKAGES)
    args = list(session.posargs)
    matrix_only = "--matrix-only" in args
    args = [a for a in args if a != "--matrix-only"]
    runs = {"matrix": [], **({} if matrix_only else {"sweep": _sweep_args()})}
    for name, extra in runs.items():
        out = f"canary-out/{name}"
        _conformance(session, ["--xfails", "auto", *extra, *args], out, verdict=False, step_summary=False)
    documents = [f"canary-out/{name}/results.json" for name in runs]
    session.run(CLI, "drift", *documents, "--pinned", CI, "--out", "canary-out", env=_cache_env(session))


@nox.session(python=PYTHON)
@nox.parametrize("transformers", TRANSFORMERS_VERSIONS)
def matrix(session: nox.Session, transformers: str) -> None:
    """Run the matrix on one listed transformers release (the historical replay): matrix-out/<version>/.

    Failing cells
    are the finding, so the session fails only if the harness itself does."""
    _install(session, "report")
    _install_transformers(session, transformers)
    _conformance(session, list(session.posargs), f"matrix-out/{transformers}", verdict=False)
    _docs(session, "matrix", "matrix-out", partial=bool(session.posargs))  # every release run so far


@nox.session(python=PYTHON)
def llmcompressor(session: nox.Session) -> None:
    """Check llm-compressor's quantize-and-save flows offloaded against the in-memory flow.

    llm-compressor's data-free oneshot and compressed save on bf16 fixtures, every disk-offloaded flow compared
    with the in-memory flow (its own save wrapper, and our reference after the same compression): results in
    llmcompressor-out/. Its own pins (constraints/llmcompressor.txt): llm-compressor 0.14 needs transformers <= 5.17
    and compressed-tensors 0.19. Failing cells are the finding. Arguments go to `offload-conformance llmcompressor`."""
    session.install("-c", LLMCOMPRESSOR, "torch")
    session.install("-c", LLMCOMPRESSOR, "-e", ".[report]", "llmcompressor")
    out, args = _take(list(session.posargs), "--out")
    _conformance(session, args, out or "llmcompressor-out", verdict=False, command="llmcompressor")
    _docs(session, "llmcompressor", out or "llmcompressor-out", partial=bool(args))


@nox.session(python=PYTHON)
def ledger(session: nox.Session) -> None:
    """Replay real upstream bugs release by release and compute each one's verdict (the ledger).

    harness/ledger/upstream_bugs.toml: each release an entry
    names is installed in turn and only that entry's cells run; writes ledger-out/ledger.json and ledger.md.
    `-- --id transformers#47018` replays one entry. Verdicts are the finding: the session fails only when the
    harness does, or an entry is not caught and does not say why."""
    _install(session, "quant", "report")
    out, args = _take(list(session.posargs), "--out")
    out = out or "ledger-out"
    session.run(CLI, "ledger", "plan", "--out", out, "--pins", str(CONSTRAINTS), *args, env=ENV)
    # Fixtures some entries replay on older releases are built first, by the newest release installed now.
    session.run(CLI, "ledger", "fixtures", "--out", out, *args, env=_cache_env(session))
    for env in json.loads((Path(out) / "environments.json").read_text()):
        # The pins' `kernels` (transformers 5.25.0 requires it) breaks an older release's import (5.0.0 builds a
        # LayerRepository without the version kernels 0.19 asks for); a release that requires it installs it again.
        session.run("python", "-m", "pip", "uninstall", "-y", "-q", "kernels", silent=True)
        try:
            session.install("-c", env["constraints"], *env["requirements"])
        except nox.command.CommandFailed:
            # Its entries are reported as not replayed; the other releases still run.
            session.warn(f"ledger: {env['key']} did not install; its entries are reported as not replayed")
            shutil.rmtree(Path(out) / "runs" / env["key"], ignore_errors=True)
            continue
        session.run(CLI, "ledger", "run", "--env", env["key"], "--out", out, *args, env=_cache_env(session))
    session.run(CLI, "ledger", "report", "--out", out, *args, env=ENV)
    _docs(session, "ledger", out, partial="--id" in args)


@nox.session(python=PYTHON)
def gate(session: nox.Session) -> None:
    """Gate a transformers change against a base: fails on any regression.

    `-- --base SPEC --candidate SPEC [--out DIR] [run args]`: the same cells on both, then gate.md and
    gate.json in DIR (default gate-out/); fails on any regression (pass on base, not on candidate). The
    gate's Markdown, not the two runs' matrices, goes to $GITHUB_STEP_SUMMARY."""
    base, args = _take(list(session.posargs), "--base")
    candidate, args = _take(args, "--candidate")
    out, args = _take(args, "--out")
    out = out or "gate-out"
    if not base or not candidate:
        session.error(f"usage: nox -s gate -- --base SPEC --candidate SPEC [--out DIR] [{CLI} run arguments]")
    _install(session, "quant")
    for label, spec in (("base", base), ("candidate", candidate)):
        _install_transformers(session, spec)
        _conformance(session, args, f"{out}/{label}", verdict=False, step_summary=False)
    session.run(CLI, "gate", f"{out}/base/results.json", f"{out}/candidate/results.json", "--out", out, env=ENV)


def _releases(good: str, bad: str) -> list[str]:
    """PyPI releases of transformers from good to bad, inclusive, in version order."""
    text = subprocess.run(
        ["python", "-m", "pip", "index", "versions", "transformers"], capture_output=True, text=True, check=True
    ).stdout
    listed = re.search(r"Available versions: (.*)", text)
    versions = [v.strip() for v in listed.group(1).split(",")] if listed else []
    key = lambda v: tuple(int(x) for x in re.findall(r"\d+", v))  # noqa: E731
    lo, hi = sorted([key(good), key(bad)])
    return sorted((v for v in versions if lo <= key(v) <= hi and not re.search(r"[a-z]", v)), key=key)


def _commits(checkout: str, good: str, bad: str) -> list[str]:
    """Commits of a local transformers checkout from good to bad (first parent path), inclusive."""
    git = ["git", "-C", checkout]
    path = subprocess.run(
        [*git, "rev-list", "--reverse", "--first-parent", "--ancestry-path", f"{good}..{bad}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    first = subprocess.run([*git, "rev-parse", good], capture_output=True, text=True, check=True).stdout.strip()
    return [first, *path]


def _export(checkout: str, commit: str) -> Path:
    """The checkout's tree at `commit`, as a directory pip can install (git archive: no worktree state)."""
    target = Path("bisect-out") / "trees" / commit[:12]
    if not target.exists():
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", checkout, "archive", commit], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


@nox.session(python=PYTHON)
def bisect(session: nox.Session) -> None:
    """Find the release (or commit of a checkout) where one cell changed outcome.

    `-- --good SPEC --bad SPEC --cell CELL-ID [--checkout DIR]`: the first PyPI release (or, with
    --checkout, the first commit of that transformers checkout) between good and bad where the cell's
    outcome differs from its outcome on good."""
    good, args = _take(list(session.posargs), "--good")
    bad, args = _take(args, "--bad")
    cell, args = _take(args, "--cell")
    checkout, args = _take(args, "--checkout")
    if not good or not bad or not cell:
        session.error("usage: nox -s bisect -- --good V --bad V --cell CELL-ID [--checkout TRANSFORMERS-DIR]")
    _install(session, "quant")
    listed = session.run(CLI, "run", "--list", "--cell", cell, *args, silent=True, env=ENV) or ""
    planned = [line for line in listed.splitlines() if fnmatch.fnmatchcase(line, cell)]
    if len(planned) != 1:
        session.error(f"--cell {cell!r} names {len(planned)} cells {planned[:3]}: bisect follows exactly one")
    if checkout:
        candidates, what = _commits(checkout, good, bad), "commit"
    else:
        candidates, what = _releases(good, bad), "release"
    if len(candidates) < 2:
        session.error(f"no {what}s between {good} and {bad}")
    seen: dict[str, str] = {}

    def outcome(candidate: str) -> str:
        if candidate not in seen:
            spec = str(_export(checkout, candidate).resolve()) if checkout else candidate
            _install_transformers(session, spec)
            out = f"bisect-out/{candidate}"
            _conformance(session, ["--cell", cell, *args], out, verdict=False)
            shown = session.run(CLI, "show", f"{out}/results.json", silent=True, env=ENV) or ""
            seen[candidate] = json.loads(shown.strip().splitlines()[-1])["state"]
            session.log(f"{cell} on {what} {candidate}: {seen[candidate]}")
        return seen[candidate]

    want = outcome(candidates[0])
    lo, hi = 0, len(candidates) - 1
    if outcome(candidates[hi]) == want:
        session.log(f"{cell} is '{want}' on both {candidates[0]} and {candidates[hi]}: nothing to bisect")
        return
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if outcome(candidates[mid]) == want else (lo, mid)
    session.log(
        f"first {what} where {cell} changes: {candidates[hi]} ('{seen[candidates[lo]]}' on {candidates[lo]}"
        f" -> '{seen[candidates[hi]]}')"
    )


@nox.session(python=PYTHON)
def mutants(session: nox.Session) -> None:
    """Measure how many faulty edits of upstream's save path the matrix catches (mutation analysis).

    Each single-site edit of a target function (a
    synthetic faulty PR) run on the default matrix's cells that reach it; mutants-out/mutants.json, .md, .html with
    the kill rate beside upstream's own oracles. `-- --transformers SPEC` analyses another transformers; other
    arguments go to `offload-conformance mutants` (--target NAME, --sample N, --seed S, --shard K/N)."""
    spec, args = _take(list(session.posargs), "--transformers")
    _install(session, "quant")
    if spec:
        _install_transformers(session, spec)
    out, args = _take(args, "--out")
    session.run(CLI, "mutants", "--out", out or "mutants-out", *args, env=_cache_env(session))
    narrowed = {"--sample", "--target", "--mutant", "--shard", "--list", "--max-cells"}
    _docs(session, "mutants", out or "mutants-out", partial=bool(narrowed & set(args)))


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """Try hypothesis-generated cells, or damaged offload storage with `-- --damage` (docs/reliability.md).

    e.g. `nox -s fuzz -- --examples 50 --impl upstream`, `nox -s fuzz -- --damage --examples 1000`."""
    _install(session, "test")
    session.run(CLI, "fuzz", *session.posargs, env=_cache_env(session))
    args = list(session.posargs)
    if "--damage" in args:
        examples, _ = _take(args, "--examples")
        # The documented measurement: 1000 derandomized cases, every IUT; another seed or size leaves the table alone.
        full = examples == "1000" and "--seed" not in args and "--impl" not in args
        _docs(session, "damage", _take(args, "--out")[0] or "fuzz-out", partial=not full, name="fuzz")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Lint and format-check the whole tree with ruff."""
    session.install("-c", CI, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Measure what an offloaded save costs: time, peak memory and reads, reference vs upstream (the bench).

    Offloaded save vs in-memory save vs `cp`, memory vs layers:
    bench-out/bench.md and bench.png. Arguments go to `offload-conformance bench`."""
    _install(session, "report")
    session.run(CLI, "bench", *session.posargs, env=_cache_env(session))
    out, _ = _take(list(session.posargs), "--out")
    _docs(session, "bench", out or "bench-out")


@nox.session(python=PYTHON)
def pins(session: nox.Session) -> None:
    """Move the pinned set: regenerate constraints/ci.txt for the releases you name.

    What pip resolves for the project's extras and the given releases, with torch held to constraints/torch.txt,
    e.g. `nox -s pins -- transformers==5.25.0 accelerate==1.16.0`."""
    if not session.posargs:
        session.error("name the releases to pin, e.g. `nox -s pins -- transformers==5.25.0 accelerate==1.16.0`")
    torch_only = str(CONSTRAINTS / "torch.txt")
    session.install("-c", torch_only, "torch")
    session.install("-c", torch_only, "-e", ".[test,quant,report]", "ruff", *session.posargs)
    frozen = session.run("python", "-m", "pip", "freeze", "--exclude-editable", silent=True) or ""
    # pip reports the CPU build as 2.13.0+cpu; the constraint names the release so any local build matches.
    lines = [re.sub(r"^(torch==[^+\s]+)\+\S+$", r"\1", line) for line in frozen.splitlines() if "==" in line]
    header = (
        f"# The exact set CI and the default nox sessions install: `nox -s pins -- {' '.join(session.posargs)}`\n"
        f"# (Python 3.11, {datetime.date.today().isoformat()}). torch is held to constraints/torch.txt, the CPU build\n"
        "# this machine carries; no other torch installs without a multi-GB download.\n"
    )
    Path(CI).write_text(header + "\n".join(lines) + "\n")
    session.log(f"wrote {CI}: {len(lines)} pins")
