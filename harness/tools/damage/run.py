"""`offload-conformance fuzz --damage`: hypothesis draws a damage of a loaded model's offload storage, every IUT saves,
each save gets a verdict; fuzz-out/damage.json and a verdict table per IUT."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from offload_conformance.harness.plan.impls import Saver
from offload_conformance.harness.tools.damage.cases import read_back, run_case
from offload_conformance.harness.tools.damage.kinds import Kind, damages
from offload_conformance.harness.tools.damage.storage import Loaded, load
from offload_conformance.harness.tools.damage.verdicts import Verdict

if TYPE_CHECKING:
    from offload_conformance.harness.report.regions import Table

# (fixture, mode): a dense model whose index points into its checkpoint, fused MoE experts written to the offload
# folder, a model with persistent buffers (deepseek_v3's e_score_correction_bias), accelerate's raw .dat files.
_MODES = ("disk-full", "disk-partial", "disk-full+offload_buffers", "disk-partial+offload_buffers")
TARGETS: tuple[tuple[str, str], ...] = (
    *((f, m) for f in ("llama", "qwen3_moe", "deepseek_v3") for m in _MODES),
    ("qwen3_moe", "accelerate-disk+offload_buffers"),
)


@dataclass(frozen=True)
class Model:
    loaded: Loaded
    pristine: dict[str, str] = field(repr=False)  # what accelerate reads back from the undamaged storage


def _control(model: Model, impls: dict[str, Saver], scratch: Path) -> dict[str, str]:
    """The undamaged storage, restored: every IUT must write the in-memory checkpoint (else restoring is unsound)."""
    outcomes = run_case(model.loaded, None, impls, scratch, model.pristine)
    return {name: str(o.verdict) for name, o in outcomes.items()}


def _versions() -> dict[str, str]:
    import accelerate
    import safetensors
    import torch
    import transformers

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "safetensors": safetensors.__version__,
        "torch": torch.__version__,
        "commit": commit,
    }


def fuzz_damage(
    impls: dict[str, Saver],
    examples: int,
    out: Path,
    seed: int | None = None,
    targets: tuple[tuple[str, str], ...] | None = None,
    workdir: Path | None = None,
) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    t0 = time.monotonic()
    versions = _versions()  # the commit the run started on
    root = Path(tempfile.mkdtemp(prefix="dmg-", dir=workdir))
    root.chmod(0o755)  # an unprivileged save (the unreadable kind) reads the storage under it
    try:
        models = []
        for i, (fixture, mode) in enumerate(targets or TARGETS):
            workspace = root / f"m{i}"
            workspace.mkdir()
            loaded = load(fixture, mode, workspace)
            models.append(Model(loaded, read_back(loaded.model)))
            print(f"loaded {loaded.label}: {len(loaded.files)} storage files", file=sys.stderr, flush=True)
        scratch = root / "saves"
        scratch.mkdir()
        scratch.chmod(0o777)
        controls = {m.loaded.label: [_control(m, impls, scratch)] for m in models}
        records: list[dict[str, Any]] = []

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=seed is None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],  # every case is recorded, none raises: nothing to shrink
            print_blob=False,
        )
        @given(data=st.data())
        def case(data: st.DataObject) -> None:
            model = data.draw(st.sampled_from(models), label="model")
            damage = data.draw(damages(model.loaded), label="damage")
            outcomes = run_case(model.loaded, damage, impls, scratch, model.pristine)
            records.append(
                {
                    "model": model.loaded.label,
                    "damage": damage.to_json(),
                    **{name: o.to_json() for name, o in outcomes.items()},
                }
            )
            if len(records) % 50 == 0:
                print(f"  {len(records)} cases, {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)

        if seed is not None:
            case = hypothesis_seed(seed)(case)
        case()
        for m in models:  # restoring stayed sound to the end
            controls[m.loaded.label].append(_control(m, impls, scratch))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    document = summarize(records, impls, controls, time.monotonic() - t0, seed, versions)
    out.mkdir(parents=True, exist_ok=True)
    (out / "damage.json").write_text(json.dumps(document, indent=1) + "\n")
    return document


def summarize(
    records: list[dict[str, Any]],
    impls: dict[str, Saver],
    controls: dict[str, list[dict[str, str]]],
    seconds: float,
    seed: int | None,
    versions: dict[str, str],
) -> dict[str, Any]:
    verdicts = {name: dict(Counter(r[name]["verdict"] for r in records)) for name in impls}
    by_kind = {
        name: {k: dict(Counter(r[name]["verdict"] for r in records if r["damage"]["kind"] == k)) for k in Kind}
        for name in impls
    }
    return {
        "cases": len(records),
        "verdicts": verdicts,
        "by_kind": by_kind,
        "controls": controls,
        "seconds": round(seconds, 1),
        "seed": seed,
        "versions": versions,
        "records": records,
    }


def table(document: dict[str, Any]) -> str:
    """Kinds down, verdicts across, one block per IUT."""
    lines = []
    names = [str(v) for v in Verdict]
    for impl, kinds in document["by_kind"].items():
        lines.append(f"{impl}: {document['cases']} cases")
        lines.append(f"  {'kind':16}" + "".join(f"{v:>14}" for v in names))
        for kind, counts in kinds.items():
            if counts:
                lines.append(f"  {kind:16}" + "".join(f"{counts.get(v, 0):>14}" for v in names))
        total = document["verdicts"][impl]
        lines.append(f"  {'total':16}" + "".join(f"{total.get(v, 0):>14}" for v in names))
    lines.append(
        "undetectable: the storage still reads back through accelerate with every dtype and shape, only values"
        " differ; neither safetensors nor accelerate keeps a checksum a save could check them against"
    )
    return "\n".join(lines)


def bad(document: dict[str, Any], gated: list[str]) -> dict[str, int]:
    """silent-wrong and crash counts of the gated IUTs, and any control that was not identical."""
    found = {
        f"{impl} {v}": n
        for impl in gated
        for v, n in document["verdicts"].get(impl, {}).items()
        if Verdict(v).bad and n
    }
    for label, runs in document["controls"].items():
        for impl in runs[0]:
            # A gated IUT saves the undamaged storage right; any IUT saves it alike before and after every case
            # (upstream cannot save an accelerate-disk model at all: then its cases there are that crash).
            verdicts = {run[impl] for run in runs}
            if len(verdicts) > 1 or (impl in gated and verdicts != {Verdict.IDENTICAL}):
                found[f"{impl} control {label} {'/'.join(sorted(verdicts))}"] = 1
    return found


# docs/reliability.md's region `damage` (harness.report.regions), rewritten by `nox -s fuzz -- --damage`.
REGION_IMPLS = ("reference", "upstream")


def region(document: dict[str, Any]) -> str:
    """Per IUT, kinds down and verdicts across, from damage.json."""
    # the commit is in the region's provenance line already
    versions = ", ".join(f"{k} {v}" for k, v in sorted(document.get("versions", {}).items()) if k != "commit")
    seed = document.get("seed")
    out = [
        f"{document['cases']} cases ({'derandomized' if seed is None else f'seed {seed}'}), {versions}; "
        f"{document['seconds']:.0f} s."
    ]
    verdicts = [str(v) for v in Verdict]
    for impl in REGION_IMPLS:
        kinds = document["by_kind"].get(impl)
        if kinds is None:
            continue
        total = document["verdicts"][impl]
        out += ["", f"`{impl}`:", "", "| kind | " + " | ".join(verdicts) + " |", "|---|" + "---:|" * len(verdicts)]
        out += [f"| `{k}` | " + " | ".join(str(c.get(v, 0)) for v in verdicts) + " |" for k, c in kinds.items() if c]
        out.append("| **total** | " + " | ".join(f"**{total.get(v, 0)}**" for v in verdicts) + " |")
    return "\n".join(out)


def region_shape() -> tuple[Table, ...]:
    from offload_conformance.harness.report.regions import Table

    rows = (*(str(k) for k in Kind), "total")
    return tuple(Table(("kind", *(str(v) for v in Verdict)), rows) for _ in REGION_IMPLS)
