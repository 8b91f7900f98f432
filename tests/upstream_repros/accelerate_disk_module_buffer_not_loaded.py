"""Repro: accelerate's `load_checkpoint_and_dispatch` with a module placed on "disk" and `offload_buffers=False` (the
default) never loads that module's persistent buffers: they stay as `init_empty_weights` left them, and a forward
pass or a save (transformers' or any) reads zeros instead of the checkpoint's values. DeepSeek-V3's router bias
`e_score_correction_bias` is such a buffer: its saves hold zeros there (meta-or-empty), for every IUT.

Bad on accelerate 1.15.0; passes on 1.16.0 (the harness's cells: with transformers 5.24.0 and 5.25.0; this repro uses
plain torch modules).

Needs torch, accelerate, safetensors. Exit 1 while the bug is present.
"""

import os
import sys
import tempfile
from pathlib import Path

import torch
from accelerate import init_empty_weights, load_checkpoint_and_dispatch
from safetensors.torch import save_file
from torch import nn


class Router(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(4, 8))
        self.register_buffer("bias", torch.empty(4))  # persistent: in the state dict, in the checkpoint


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 8)
        self.router = Router()


torch.manual_seed(0)
state = {
    "embed.weight": torch.randn(8, 8),
    "embed.bias": torch.randn(8),
    "router.weight": torch.randn(4, 8),
    "router.bias": torch.arange(1.0, 5.0),
}
with tempfile.TemporaryDirectory() as tmp:
    ckpt = Path(tmp, "model.safetensors")
    save_file(state, ckpt)
    with init_empty_weights():
        model = Model()
    device_map = {"embed": "cpu", "router": "disk"}
    model = load_checkpoint_and_dispatch(model, str(ckpt), device_map=device_map, offload_folder=os.path.join(tmp, "o"))
    hook = model.router._hf_hook
    got = model.router.bias
    if got.device.type == "meta":  # left to the hook: read it the way the hook does
        got = hook.weights_map.get("bias", got)
    print(f"router.bias after the load: {got.to('cpu') if got.device.type != 'meta' else 'meta'}")
    if got.device.type == "meta" or not torch.equal(got.to("cpu"), state["router.bias"]):
        print("the disk-placed module's persistent buffer does not hold the checkpoint's values")
        sys.exit(1)
    print("the buffer holds the checkpoint's values")
