"""Standalone repro (wrong names): save_pretrained of a DeepSeek-V4 model splits the shared expert's
`down_proj` as if it were the routed experts' fused `down_proj` (transformers#45782).

The routed experts are fused on load (`mlp.experts.down_proj`) and split back per expert on save by a
reverse pattern `experts.down_proj` that also matches `mlp.shared_experts.down_proj.weight`: the save
writes that [hidden, intermediate] matrix as one row per "expert" (`shared_experts.N.w2.weight.weight`)
instead of itself. Bad on 5.8.0; 5.8.1 anchors the pattern on `mlp.experts.` (its save still names the routed
experts `experts..N.w1`, a separate 5.8.1 slip); 5.9.0 gives the checkpoint back.

The checkpoint is the repo's `deepseek_v4_transformers` fixture: DeepSeek-V4 under transformers' own
names, the layout a DeepSeek-V4 saved by transformers has (the Hub's own names never come back from a
DeepseekV4ForCausalLM save: deepseek_v4_names_not_reverted.py). Needs torch and a transformers with
deepseek_v4 (5.8.0+). Exit 1 while the bug is present.
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


def tensors(d: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in d.glob("*.safetensors"):
        with safe_open(f, "pt") as h:
            out |= {k: h.get_tensor(k) for k in h.keys()}  # noqa: SIM118 - safe_open is not a Mapping
    return out


with tempfile.TemporaryDirectory() as tmp:
    src = generate(by_name("deepseek_v4_transformers"), root=Path(tmp))
    AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).save_pretrained(Path(tmp) / "out")
    fixture, saved = tensors(src), tensors(Path(tmp) / "out")

shared = sorted(k for k in fixture if ".shared_experts.down_proj." in k)
lost = [k for k in shared if k not in saved or not torch.equal(saved[k], fixture[k])]
split = sorted(k for k in saved if ".shared_experts." in k and k not in fixture)
print(
    f"{len(lost)} of {len(shared)} shared_experts.down_proj weights not saved as themselves;"
    f" {len(split)} other shared_experts tensors saved, e.g. {split[:2]}"
)
sys.exit(1 if lost or split else 0)
