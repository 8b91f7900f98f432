"""Standalone repro (extra tensor): a GLM-ASR checkpoint that ties its lm_head to the embeddings (no lm_head.weight in
the file, no tie_word_embeddings in config.json: the model's default) loads untied, and save_pretrained writes a
`language_model.lm_head.weight` the checkpoint does not have (transformers#46456, a regression of #45534).

#45534 dropped the `tie_word_embeddings: bool = True` default of the audio LLM configs (glmasr, granite_speech,
granite_speech_plus), so the language model's head is no longer tied to the embeddings: a checkpoint relying on the
default loads the head as a missing tensor (newly initialised, not the embeddings' values) and the save writes it.
Bad on 5.9.0 (the ledger's fixtures also fail on 5.6.2 and 5.8.1); fixed in 5.12.1 (#46456 restored the default,
already in the 5.10.4 wheel); 5.24.0 saves the checkpoint's tensors too.

Needs only torch, transformers, safetensors; the tiny checkpoint is written here with safetensors under the model's
own names (lm_head.weight left out: tied), and tie_word_embeddings is removed from its config.json so the release's
default applies; it is not written by the release under test's save_pretrained. Exit 1 while the bug is present.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from safetensors.torch import load_file, save_file
from transformers import GlmAsrConfig, GlmAsrForConditionalGeneration

config = GlmAsrConfig(
    text_config={
        "vocab_size": 128,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "eos_token_id": [1],
    },
    audio_config={
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_mel_bins": 16,
    },
    audio_token_id=127,
)
torch.manual_seed(0)
with torch.no_grad():
    state = GlmAsrForConditionalGeneration(config).state_dict()
    ckpt_state = {k: v.to(torch.bfloat16).contiguous() for k, v in state.items() if not k.endswith("lm_head.weight")}
with tempfile.TemporaryDirectory() as tmp:
    ckpt, out = Path(tmp, "ckpt"), Path(tmp, "out")
    config.save_pretrained(ckpt)
    cfg = json.loads((ckpt / "config.json").read_text())
    for d in (cfg, cfg["text_config"]):
        d.pop("tie_word_embeddings", None)
    (ckpt / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file(ckpt_state, ckpt / "model.safetensors", metadata={"format": "pt"})
    model = GlmAsrForConditionalGeneration.from_pretrained(ckpt, dtype=torch.bfloat16)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    tie = getattr(model.config, "tie_word_embeddings", None)
    print(f"loaded: config tie_word_embeddings={tie!r}, lm_head is the embeddings: {tied}")
    model.save_pretrained(out)
    saved = {k: v for f in out.glob("*.safetensors") for k, v in load_file(f).items()}
missing = sorted(set(ckpt_state) - set(saved))
extra = sorted(set(saved) - set(ckpt_state))
changed = sorted(k for k in set(ckpt_state) & set(saved) if not torch.equal(ckpt_state[k], saved[k]))
print(f"checkpoint: {len(ckpt_state)} tensors, no lm_head")
print(f"{len(extra)} saved names not in the checkpoint: {[f'{k} {list(saved[k].shape)}' for k in extra]}")
print(f"{len(missing)} checkpoint names not in the save, e.g. {missing[:2]}")
print(f"{len(changed)} tensors saved under the checkpoint's name with other values, e.g. {changed[:2]}")
sys.exit(1 if missing or extra or changed else 0)
