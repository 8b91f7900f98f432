"""`shard-plan`: the shard split a sharded save must have, recomputed from the saved tensors alone.

The in-memory save of a model loaded by `from_pretrained` hands huggingface_hub's planner its state dict sorted by
transformers' `dot_natural_key`, and the planner packs greedily in that order: an item is added to the open shard
unless that would take it over `max_shard_size`, in which case the open shard is closed first; an item larger than
the limit gets a shard of its own (placed at once, the open shard stays open). The experts `X.experts.N.P` of one
projection `P` are views of one fused tensor in memory: one item, as large as all of them. safetensors orders the
tensors inside a file itself, so the plan only shows in which file, of which number, each tensor lands; that is what
is compared.

The planner sorts the in-memory names, before the revert to checkpoint names: the saved names give its order where
the load renames nothing (the caller's to know: judge.absolute), except inside the experts of one layer. Those are
fused in memory under names the checkpoint does not show (`gate_up_proj`, `gate_up_proj_scale_inv`), so their
block `X.experts` has a known place but no known inner order: a split passes when some order of each block's items
gives it (a FP8 block is planned down, down scales, gate, up, gate scales, up scales).

This is deliberately an independent implementation (our own natural key and greedy packing): it checks
huggingface_hub's planner and transformers' `dot_natural_key`, so it must not import either. The differential
comparison cannot see a fault of theirs: the in-memory baseline is planned by the same code.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from offload_conformance.harness.outcomes import FailureClass as C
from offload_conformance.harness.results import Difference

RULE = "shard-plan"
# The planner's rules a difference names.
NATURAL_ORDER = "natural order"
GREEDY = "greedy packing"
ONE_ITEM = "one storage, one item"
_EXPERT = re.compile(r"^(?P<pre>.*\.experts)\.\d+\.(?P<post>.+)$")
_TRAILING_DIGITS = re.compile(r"^(?P<text>.*?)(?P<digits>[0-9]+)$")
_SHARD_FILE = re.compile(r"-(?P<k>\d{5})-of-(?P<n>\d{5})\.safetensors$")


@dataclass(frozen=True)
class Item:
    """What the planner places as one: a tensor, or every expert of one fused projection (shared storage)."""

    names: tuple[str, ...]
    nbytes: int
    block: str | None = None  # `X.experts`: the fused experts it is one of, whose inner order is not known


# The items of one block searched over all orders; a larger block (none known) is not judged.
MAX_BLOCK = 16


NaturalKey = tuple[tuple[int, int | str, int], ...]


def natural_key(name: str) -> NaturalKey:
    """Dot-separated parts; an all-digit part sorts by its number and before any text part; a text part sorts by
    its text, then by a number it ends with (`w2` before `w13`), a part without one first (`norm` before `norm1`)."""
    key = []
    for part in name.split("."):
        if part.isdigit():
            key.append((0, int(part), -1))
        elif (m := _TRAILING_DIGITS.match(part)) is not None:
            key.append((1, m["text"], int(m["digits"])))
        else:
            key.append((1, part, -1))
    return tuple(key)  # type: ignore[arg-type]


def place(item: Item) -> NaturalKey:
    """Where the planner meets an item: its name's natural key, or its block's (a block's items tie)."""
    return natural_key(item.block if item.block is not None else item.names[0])


def items(sizes: Mapping[str, int]) -> list[Item]:
    """The planner's items in natural order (inside a block: by first name, one order of those possible)."""
    groups: dict[tuple[str, str], list[str]] = {}
    singles: list[Item] = []
    for name in sizes:
        if (m := _EXPERT.match(name)) is not None:
            groups.setdefault((m["pre"], m["post"]), []).append(name)
        else:
            singles.append(Item((name,), sizes[name]))
    fused = []
    for (block, _), names in groups.items():
        ordered = tuple(sorted(names, key=natural_key))
        fused.append(Item(ordered, sum(sizes[n] for n in ordered), block))
    return sorted(singles + fused, key=lambda item: (place(item), natural_key(item.names[0])))


def greedy(plan: Iterable[Item], limit: int) -> list[list[str]]:
    """The shards, in file order, as names: greedy packing in the given order."""
    shards: list[list[str]] = []
    open_names: list[str] = []
    open_bytes = 0
    for item in plan:
        if item.nbytes > limit:
            shards.append(list(item.names))  # its own shard, ahead of the one still open
            continue
        if open_names and open_bytes + item.nbytes > limit:
            shards.append(open_names)
            open_names, open_bytes = [], 0
        open_names += item.names
        open_bytes += item.nbytes
    if open_names:
        shards.append(open_names)
    return shards


# (shards closed, names in the open shard, its bytes): where greedy packing stands between two items.
State = tuple[int, frozenset[str], int]


def consistent(plan: Sequence[Item], actual: Mapping[str, int], limit: int) -> bool | None:
    """Whether greedy packing of `plan`, each block's items in some order, puts every name in its `actual` shard
    number; None: a block too large to search."""
    want: dict[int, set[str]] = {}
    for name, k in actual.items():
        want.setdefault(k, set()).add(name)
    states: set[State] = {(0, frozenset(), 0)}
    for _, run in itertools.groupby(plan, key=lambda item: item.block or item.names[0]):
        block = tuple(run)
        if len(block) > MAX_BLOCK:
            return None
        states = {end for start in states for end in _orders(block, start, want, actual, limit)}
        if not states:
            return False
    return any(_finished(state, want) for state in states)


def _orders(
    block: tuple[Item, ...], start: State, want: Mapping[int, set[str]], actual: Mapping[str, int], limit: int
) -> set[State]:
    """The states after the block's items placed in every order the actual split allows (breadth first, a state
    reached by several orders kept once)."""
    frontier = {(frozenset(range(len(block))), start)}
    for _ in block:
        frontier = {
            (left - {i}, state)
            for left, at in frontier
            for i in left
            if (state := _add(at, block[i], want, actual, limit)) is not None
        }
    return {state for _, state in frontier}


def _add(at: State, item: Item, want: Mapping[int, set[str]], actual: Mapping[str, int], limit: int) -> State | None:
    """Greedy packing's next step, or None where it puts the item, or closes a shard, other than the actual split."""
    closed, open_names, open_bytes = at
    if item.nbytes > limit:  # a shard of its own, numbered before the one still open
        return (closed + 1, open_names, open_bytes) if want.get(closed + 1) == set(item.names) else None
    if open_names and open_bytes + item.nbytes > limit:
        if want.get(closed + 1) != open_names:
            return None
        closed, open_names, open_bytes = closed + 1, frozenset(), 0
    shards = {actual[n] for n in item.names}
    joins = {actual[next(iter(open_names))]} if open_names else shards
    if len(shards) != 1 or shards != joins or shards.pop() <= closed:
        return None
    return closed, open_names | set(item.names), open_bytes + item.nbytes


def _finished(end: State, want: Mapping[int, set[str]]) -> bool:
    """Whether the plan, its open shard closed, made exactly the actual shards."""
    closed, open_names, _ = end
    if not open_names:
        return closed == len(want)
    return closed + 1 == len(want) and want.get(closed + 1) == open_names


def shard_number(file: str) -> int:
    """A shard's position in the save: `-KKKKK-of-NNNNN` (a single-file save is shard 1)."""
    m = _SHARD_FILE.search(file)
    return int(m["k"]) if m else 1


def plan_differences(located: Mapping[str, tuple[str, int]], limit: int, files: Iterable[str] = ()) -> list[Difference]:
    """How the save whose tensors are where `located` says (name -> (file, bytes)), in weight `files` (an empty one
    too), departs from the greedy plan in natural order: one difference naming the rule it breaks; [] : none."""
    empty = sorted(set(files) - {file for file, _ in located.values()})
    if empty:
        return [
            Difference(C.SHARD_LAYOUT, f"{RULE}: {empty[0]} holds no tensor ({GREEDY} never closes an empty shard)")
        ]
    plan = items({name: nbytes for name, (_, nbytes) in located.items()})
    expected = greedy(plan, limit)
    actual = {name: shard_number(file) for name, (file, _) in located.items()}
    if {name: k for k, names in enumerate(expected, start=1) for name in names} == actual:
        return []
    if consistent(plan, actual, limit) is not False:  # another order inside the experts' blocks gives it
        return []
    why, tensor = _broken_rule(plan, actual, limit) or _first_departure(expected, actual)
    return [Difference(C.SHARD_LAYOUT, f"{RULE}: {why} (max_shard_size {limit} bytes)", tensor=tensor)]


def _broken_rule(plan: Sequence[Item], actual: Mapping[str, int], limit: int) -> tuple[str, str] | None:
    """(which rule of the planner the actual split breaks, the tensor it shows at), read from the split alone: an
    item in several shards, a shard whose items do not follow the previous one's in natural order, a shard closed
    though the next item fit, a shard of several items over the limit. None: no single rule shows it."""
    shards: dict[int, list[Item]] = {}
    for item in plan:
        where = sorted({actual[n] for n in item.names})
        if len(where) > 1:
            what = f"{item.names[0]} and the other experts of its projection are in shards {where}"
            return f"{what} ({ONE_ITEM}: one fused tensor is planned as one item, in one shard)", item.names[0]
        shards.setdefault(where[0], []).append(item)
    # An item over the limit has a shard of its own wherever the planner met it: only the others show the order.
    packed = [(k, held) for k, held in sorted(shards.items()) if not (len(held) == 1 and held[0].nbytes > limit)]
    for (k, held), (later, nxt) in itertools.pairwise(packed):
        if place(nxt[0]) < place(held[-1]):
            what = f"{nxt[0].names[0]} (shard {later}) comes before {held[-1].names[0]} (shard {k})"
            return f"{what} ({NATURAL_ORDER}: e.g. layers.2 before layers.10, w2 before w13)", nxt[0].names[0]
    for (k, held), (_, nxt) in itertools.pairwise(packed):
        total = sum(i.nbytes for i in held)
        # The next shard's first item: one of its block's, in an order not known, so the largest of them.
        first = max((i for i in nxt if place(i) == place(nxt[0])), key=lambda i: i.nbytes)
        if total + first.nbytes <= limit:
            what = f"shard {k} is closed at {total} bytes though the next item, {first.names[0]} ({first.nbytes} bytes)"
            rule = f"{GREEDY}: a shard is closed only when the next item would take it over the limit"
            return f"{what}, fits ({rule})", first.names[0]
    for k, held in packed:
        if (total := sum(i.nbytes for i in held)) > limit:
            what = f"shard {k} holds {total} bytes in {len(held)} items"
            return f"{what} ({GREEDY}: a shard of several items stays within the limit)", held[-1].names[0]
    return None


def _first_departure(expected: Sequence[Sequence[str]], actual: Mapping[str, int]) -> tuple[str, str | None]:
    """The first tensor, in plan order (one order inside the experts' blocks), not in the shard the plan puts it in."""
    for k, names in enumerate(expected, start=1):
        for name in names:
            if actual.get(name) != k:
                where = f"{name} is in shard {actual.get(name)}, the plan puts it in shard {k}"
                return f"{where} ({GREEDY} in {NATURAL_ORDER})", name
    return f"{len(set(actual.values()))} shards, the plan makes {len(expected)} ({GREEDY} in {NATURAL_ORDER})", None
