"""Standalone repro: MarianMTModel loaded with its whole model on disk cannot run a forward pass. Its sinusoidal
position tables (`embed_positions.weight`, computed at init and left out of every checkpoint:
`_keys_to_ignore_on_save`) are offloaded as meta placeholders whose values nothing stores: the hook asks its
weights map for them and gets KeyError. The same checkpoint runs in memory.

Found by the harness's `offload-read` check (a meta tensor its modules' offload storage does not list) on
`gen_marian-disk-full`; the save itself is right (those tensors are not saved). Exit 1 while the bug is present.
Needs torch, transformers, accelerate; the tiny checkpoint is written by this repo's fixtures package.
"""

import os
import sys
import tempfile

import torch
from transformers import AutoModelForSeq2SeqLM

from offload_conformance.fixtures import generate
from offload_conformance.fixtures.spec import GeneratedSpec

os.environ["HF_HUB_OFFLINE"] = "1"
src = generate(GeneratedSpec("marian", "AutoModelForSeq2SeqLM"))
ids = torch.tensor([[3, 5, 7, 2]])
with torch.no_grad():
    expected = AutoModelForSeq2SeqLM.from_pretrained(src)(input_ids=ids, decoder_input_ids=ids).logits
with tempfile.TemporaryDirectory() as tmp:
    model = AutoModelForSeq2SeqLM.from_pretrained(src, device_map={"": "disk"}, offload_folder=tmp)
    try:
        with torch.no_grad():
            got = model(input_ids=ids, decoder_input_ids=ids).logits
    except KeyError as e:
        print(f"the forward pass of the model offloaded to disk raises KeyError: {e}")
        sys.exit(1)
    print(f"the forward pass runs; logits equal to the in-memory model's: {torch.equal(got, expected)}")
    sys.exit(0 if torch.equal(got, expected) else 1)
