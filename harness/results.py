"""results.json: one versioned document from which every report is drawn."""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
PACKAGES = ("torch", "transformers", "accelerate", "safetensors", "huggingface_hub", "offload-conformance")


def _source(pkg: str) -> dict[str, str]:
    """Where a package came from: an index, a wheel file, or a local checkout (with its git state)."""
    try:
        direct = metadata.distribution(pkg).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return {}
    if not direct:
        return {f"{pkg}_source": "index"}
    url = json.loads(direct).get("url", "")
    out = {f"{pkg}_source": url}
    path = Path(url.removeprefix("file://"))
    if url.startswith("file://") and path.is_dir():
        git = ["git", "-C", str(path)]
        try:
            commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
            dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return out
        out[f"{pkg}_git"] = commit.strip() + ("+dirty" if dirty.strip() else "")
    return out


def environment() -> dict[str, str]:
    env = {"python": platform.python_version(), "platform": platform.platform(), "executable": sys.executable}
    for pkg in PACKAGES:
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            env[pkg] = "not installed"
    env.update(_source("transformers"))
    return env


def describe_transformers(env: dict[str, str]) -> str:
    """What was tested, in one phrase: the version, and a checkout's commit and dirty state."""
    text = f"transformers {env.get('transformers')}"
    if env.get("transformers_git"):
        text += f" (checkout {env['transformers_source'].removeprefix('file://')} @ {env['transformers_git']})"
    elif env.get("transformers_source", "index") != "index":
        text += f" (from {env['transformers_source']})"
    return text


@dataclass(frozen=True)
class CellResult:
    cell_id: str
    fixture: str
    mode: str
    impl: str
    save_options: dict[str, Any]
    outcome: str  # pass | fail | error | unsupported
    grade: str | None  # bytes | tensors | None
    classes: tuple[str, ...]
    detail: str
    seconds: float
    hf_device_map: dict[str, Any] | None = None
    differences: tuple[dict[str, Any], ...] = ()
    log_tail: str = ""
    xfail: str | None = None  # reason, when the cell is listed in an xfails file
    transformers: str = ""  # what ran the cell, set when documents from several versions are merged
    cost: dict[str, Any] | None = None  # bytes read from offload storage, peak RSS (harness.cost)

    @property
    def counts_as_failure(self) -> bool:
        return self.outcome in ("fail", "error") and self.xfail is None

    @property
    def stale_xfail(self) -> bool:
        """Listed as a known failure, but passes now: the xfails entry should go."""
        return self.outcome == "pass" and self.xfail is not None


@dataclass(frozen=True)
class RunResult:
    require: str  # the grade a cell needs to pass
    environment: dict[str, str]
    cells: tuple[CellResult, ...]
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    fixtures: dict[str, str] = field(default_factory=dict)  # name -> content digest
    schema_version: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        return not any(c.counts_as_failure for c in self.cells)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> RunResult:
        d = json.loads(path.read_text())
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"{path}: schema_version {d.get('schema_version')}, this harness reads {SCHEMA_VERSION}")
        cells = tuple(
            CellResult(**{**c, "classes": tuple(c["classes"]), "differences": tuple(c["differences"])})
            for c in d["cells"]
        )
        return cls(
            d["require"], d["environment"], cells, d.get("baselines", {}), d.get("fixtures", {}), d["schema_version"]
        )

    def key(self) -> dict[str, CellResult]:
        return {c.cell_id: c for c in self.cells}
