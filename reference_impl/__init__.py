"""Offload-aware save_pretrained, byte-identical to the in-memory save, streaming and atomic."""

from offload_conformance.reference_impl.files import SaveError
from offload_conformance.reference_impl.offload import OffloadError
from offload_conformance.reference_impl.save import save_pretrained

__all__ = ["OffloadError", "SaveError", "save_pretrained"]
