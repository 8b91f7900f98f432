"""The llm-compressor workflow as a client: quantize a bf16 fixture data-free with `oneshot`, save it compressed,
and compare every offloaded flow with the in-memory flow. Only `plan` is importable without llmcompressor."""
