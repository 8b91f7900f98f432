"""The schedule's runs (reference_impl.schedule._runs): transformers' revert order, cut per layer prefix,
without holding every name's sort key at once."""

from __future__ import annotations

import itertools
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.core_model_loading import dot_natural_key

from offload_conformance.reference_impl.schedule import _prefix, _runs

# Components as state-dict names have them: words, words with a trailing number, layer numbers (no leading
# zeros: names equal under dot_natural_key are the one case _runs documents as ordered otherwise).
_WORD = st.sampled_from(["model", "layers", "h", "mlp", "experts", "w", "lm_head", "norm", "x1", "x12", "blocks"])
_NUMBER = st.integers(min_value=0, max_value=40).map(str)
_NAMES = st.lists(st.lists(st.one_of(_WORD, _NUMBER), min_size=1, max_size=6).map(".".join), unique=True, max_size=60)


@settings(max_examples=300, deadline=None)
@given(_NAMES)
def test_runs_are_the_revert_order_cut_at_each_change_of_layer_prefix(names: list[str]) -> None:
    runs = _runs(names)
    assert [n for run in runs for n in run] == sorted(names, key=dot_natural_key)
    for run in runs:
        assert len({_prefix(n) for n in run}) == 1, run
    for before, after in itertools.pairwise(runs):
        assert _prefix(before[0]) != _prefix(after[0])


def _peak(sort: object, names: list[str]) -> int:
    tracemalloc.start()
    try:
        sort(names)  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_runs_hold_one_layer_s_sort_keys_not_every_name_s() -> None:
    """Side by side on the same names: sorting them at once holds every key (the peak grows with the layers);
    _runs holds one layer's. The check fails if _runs goes back to one sorted() of every name."""

    def model(layers: int) -> list[str]:
        per_layer = [f"self_attn.{p}_proj.weight" for p in "qkvo"] + [f"mlp.{p}_proj.weight" for p in ("gate", "up")]
        return ["lm_head.weight", "model.norm.weight"] + [
            f"model.layers.{i}.{suffix}" for i in range(layers) for suffix in per_layer
        ]

    small, large = model(8), model(256)
    at_once = _peak(lambda n: sorted(n, key=dot_natural_key), large) - _peak(
        lambda n: sorted(n, key=dot_natural_key), small
    )
    by_run = _peak(_runs, large) - _peak(_runs, small)
    # What grows with the layers in _runs is the runs themselves and one short key per layer prefix.
    assert at_once > 4 * by_run, (at_once, by_run)
