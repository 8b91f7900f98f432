"""results.json: one versioned document from which every report is drawn."""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
OUTCOMES = ("pass", "fail", "error", "unsupported")
PACKAGES = ("torch", "transformers", "accelerate", "safetensors", "huggingface_hub", "offload-conformance")


def environment() -> dict[str, str]:
    env = {"python": platform.python_version(), "platform": platform.platform(), "executable": sys.executable}
    for pkg in PACKAGES:
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            env[pkg] = "not installed"
    return env


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


@dataclass(frozen=True)
class RunResult:
    require: str  # the grade a cell needs to pass
    environment: dict[str, str]
    cells: tuple[CellResult, ...]
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        return all(c.outcome in ("pass", "unsupported") for c in self.cells)

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
        return cls(d["require"], d["environment"], cells, d.get("baselines", {}), d["schema_version"])
