from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    """Any attempt to reach the network fails the test that made it."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError(f"test tried to open a network connection to {address!r}")
        return real_connect(self, address)  # type: ignore[arg-type]

    socket.socket.connect = guarded  # type: ignore[method-assign]
    yield
    socket.socket.connect = real_connect  # type: ignore[method-assign]


@pytest.fixture(autouse=True, scope="session")
def _fixture_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tests generate fixtures into a cache of their own, never the user's."""
    root = tmp_path_factory.mktemp("fixture-cache")
    old = os.environ.get("OFFLOAD_CONFORMANCE_CACHE")
    os.environ["OFFLOAD_CONFORMANCE_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("OFFLOAD_CONFORMANCE_CACHE", None)
    else:
        os.environ["OFFLOAD_CONFORMANCE_CACHE"] = old
