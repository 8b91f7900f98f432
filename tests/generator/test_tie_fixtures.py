"""The tie fixtures (fixtures.ties) and hrm_text's views: deterministic bytes, and after load the storage-sharing
structure the save's tied-weight handling (`remove_tied_weights_from_state_dict`) is tested with."""

from __future__ import annotations

import re
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import pytest
import torch
import transformers
from safetensors import safe_open

from offload_conformance.fixtures import by_name, generate
from offload_conformance.fixtures.generated.build import weight_files
from offload_conformance.fixtures.manifest import read_manifest
from offload_conformance.fixtures.spec import GeneratedSpec
from offload_conformance.fixtures.ties import BERT_MLM, RT_DETR_V2


def _loaded(spec: GeneratedSpec, d: Path) -> torch.nn.Module:
    return getattr(transformers, spec.auto_class).from_pretrained(d, dtype=torch.bfloat16)


def _groups(model: torch.nn.Module) -> list[list[str]]:
    """State-dict names sharing one storage, each list in state-dict order, the lists by their first name's."""
    by_storage: dict[int, list[str]] = defaultdict(list)
    for name, t in model.state_dict().items():
        by_storage[t.untyped_storage().data_ptr()].append(name)
    return [names for names in by_storage.values() if len(names) > 1]


def _saved_names(d: Path) -> set[str]:
    names: set[str] = set()
    for f in weight_files(d):
        if f.name.endswith(".safetensors"):
            with safe_open(str(f), "pt") as s:
                names.update(s.keys())
    return names


def _tie_patterns(model: torch.nn.Module) -> set[str]:
    from transformers.modeling_utils import _get_tied_weight_keys

    return set(_get_tied_weight_keys(model))


@pytest.mark.parametrize("spec", [BERT_MLM, RT_DETR_V2], ids=lambda s: s.name)
def test_tie_fixtures_are_named_and_deterministic(spec: GeneratedSpec, tmp_path: Path) -> None:
    assert by_name(spec.name) == spec
    a, b = generate(spec, tmp_path / "a"), generate(spec, tmp_path / "b")
    assert read_manifest(a)["recipe"]["files"] == read_manifest(b)["recipe"]["files"]


def test_bert_mlm_has_two_tie_groups_the_second_after_the_first(tmp_path: Path) -> None:
    d = generate(BERT_MLM, tmp_path)
    groups = _groups(_loaded(BERT_MLM, d))
    # Two groups (not one of four): the second group's tied name must not be filed under the first.
    assert groups == [
        ["bert.embeddings.word_embeddings.weight", "cls.predictions.decoder.weight"],
        ["cls.predictions.bias", "cls.predictions.decoder.bias"],
    ]
    # The kept name sorts before its tied one: a save that keeps the last sorted name keeps the wrong one.
    saved = _saved_names(d)
    assert {"bert.embeddings.word_embeddings.weight", "cls.predictions.bias"} <= saved
    assert not {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"} & saved


def test_rt_detr_v2_ties_match_a_pattern_under_every_name(tmp_path: Path) -> None:
    d = generate(RT_DETR_V2, tmp_path)
    model = _loaded(RT_DETR_V2, d)
    groups, patterns = _groups(model), _tie_patterns(model)
    assert len(groups) >= 4 and all(len(g) == 2 for g in groups)
    for names in groups:
        # Every name of the group matches a tie pattern, so which one the save keeps depends on counting them.
        assert all(any(re.search(p, n) for p in patterns) for n in names), names
        # state-dict order differs from sorted order: a save that does not sort keeps the other name.
        assert names[0].startswith("model.decoder.") and sorted(names)[0] == names[1]
    saved = _saved_names(d)
    assert all(g[0] in saved and g[1] not in saved for g in groups)  # the last sorted name, model.decoder.*


def test_hrm_text_views_are_disjoint_parts_of_one_storage() -> None:
    spec = by_name("hrm_text")
    model = transformers.AutoModelForCausalLM.from_pretrained(generate(spec), dtype=torch.bfloat16)
    sd = model.state_dict()
    groups = _groups(model)
    assert groups and all(len(g) in (2, 4) for g in groups)
    for names in groups:
        spans = sorted((sd[n].data_ptr(), sd[n].data_ptr() + sd[n].nbytes) for n in names)
        # Views that do not overlap: the save must clone each one, else one storage is saved under several names.
        assert all(stop <= start for (_, stop), (start, _) in pairwise(spans))
