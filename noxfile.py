"""Sessions: `nox -s tests`, `nox -s conformance`, `nox -s lint`.

Every session installs torch==2.13.0 (CPU) first, from constraints/ci.txt, with pip:
uv and poetry do not see that wheel and would fetch a multi-GB CUDA build instead.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "virtualenv"
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
CONSTRAINTS = str(ROOT / "constraints" / "ci.txt")
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _install(session: nox.Session, *extras: str) -> None:
    session.install("-c", CONSTRAINTS, "torch")
    target = f".[{','.join(extras)}]" if extras else "."
    session.install("-c", CONSTRAINTS, "-e", target)


def _cache_env(session: nox.Session) -> dict[str, str]:
    # Fixtures are cached per session venv unless the user points elsewhere.
    return {
        **ENV,
        "OFFLOAD_CONFORMANCE_CACHE": session.env.get("OFFLOAD_CONFORMANCE_CACHE")
        or str(Path(session.virtualenv.location) / "offload-conformance-cache"),
    }


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Our own test suite. Extra arguments go to pytest."""
    _install(session, "test", "quant")
    session.run("pytest", *session.posargs, env=_cache_env(session))


@nox.session(python="3.11")
def conformance(session: nox.Session) -> None:
    """The conformance matrix on the default fixtures. Extra arguments go to `python -m harness run`."""
    _install(session, "quant")
    args = session.posargs or ["--out", "conformance-out"]
    session.run("python", "-m", "harness", "run", *args, env=_cache_env(session))


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install("-c", CONSTRAINTS, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "--diff", "harness", "fixtures", "reference_impl")


@nox.session(python="3.11")
def fuzz(session: nox.Session) -> None:
    """Hypothesis-generated cells, e.g. `nox -s fuzz -- --examples 50 --impl upstream`."""
    _install(session, "test")
    session.run("python", "-m", "harness", "fuzz", *session.posargs, env=_cache_env(session))
