"""Damaged offload storage, generated: `offload-conformance fuzz --damage` (docs/reliability.md)."""
