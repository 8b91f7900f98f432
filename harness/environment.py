"""What ran a cell: the versions of the packages a save depends on, and where transformers came from."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "torch",
    "transformers",
    "accelerate",
    "safetensors",
    "huggingface_hub",
    "compressed-tensors",
    "offload-conformance",
)


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
