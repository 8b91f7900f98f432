"""Repro: loading a DeepSeek-V4 checkpoint in its Hub naming (`layers.0.attn.wq_a.weight`,
`embed.weight`, ...) and saving it in memory does not give the Hub names back: the save keeps the
`model.` prefix and the embed / hc_head / kv_norm renames (e.g. `model.layers.0.attn.wq_a.weight`,
`model.embed_tokens.weight`). The values are all there; the names are not the checkpoint's.

Needs torch and transformers >= the first release with deepseek_v4; the tiny checkpoint is
written by this repo's fixtures package. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from offload_conformance.fixtures import by_name, generate

os.environ["HF_HUB_OFFLINE"] = "1"
with tempfile.TemporaryDirectory() as tmp:
    src = generate(by_name("deepseek_v4"), root=Path(tmp))
    AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16).save_pretrained(Path(tmp) / "out")

    def names(d: Path) -> set[str]:
        out: set[str] = set()
        for f in d.glob("*.safetensors"):
            with safe_open(f, "pt") as h:
                out |= set(h.keys())
        return out

    hub, saved = names(src), names(Path(tmp) / "out")
    print(
        f"{len(hub - saved)} Hub names missing from the save, e.g. {sorted(hub - saved)[:2]};"
        f" {len(saved - hub)} other names, e.g. {sorted(saved - hub)[:2]}"
    )
    sys.exit(1 if hub != saved else 0)
