"""Byte-pair encoding as the textbook states it: count the pairs, merge the most frequent, repeat.

Short and slow, and the reference that `fast.py` is tested against, merge for merge. When several
pairs are equally frequent, the smallest pair is merged, as rustbpe decides, so our merges can be
checked against an independent implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Pair = tuple[int, int]
Merges = dict[Pair, int]  # (left id, right id) -> id of the merged token, in the order learned
NO_MERGE = float("inf")  # the rank of a pair that is not a merge


def pair_counts(ids: Sequence[int], counts: dict[Pair, int] | None = None) -> dict[Pair, int]:
    """How often each adjacent pair occurs in `ids`, added into `counts` when given.

    Example: `pair_counts([1, 2, 3, 1, 2])` gives `{(1, 2): 2, (2, 3): 1, (3, 1): 1}`.
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """`ids` with each occurrence of `pair`, scanning left to right, replaced by `new_id`.

    Example: `merge([1, 2, 3, 1, 2], (1, 2), 256)` gives `[256, 3, 256]`.
    """
    merged = []
    i = 0
    while i < len(ids):
        if ids[i] == pair[0] and i + 1 < len(ids) and ids[i + 1] == pair[1]:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def most_frequent(counts: dict[Pair, int]) -> Pair:
    """The pair with the highest count; among equals the smallest pair, as rustbpe decides.

    Example: `most_frequent({(2, 3): 2, (1, 2): 2, (3, 1): 1})` gives `(1, 2)`.
    """
    return min(counts, key=lambda pair: (-counts[pair], pair))


def train_reference(chunks: Iterable[str], num_merges: int) -> list[tuple[Pair, int]]:
    """The textbook BPE: count every pair, merge the most frequent one everywhere, repeat.

    Returns the merges in the order learned, each with its count; the i-th makes token 256 + i.
    Stops early once no chunk has a pair left.
    Example: `train_reference(["aaabdaaabac"], 3)` gives `[((97, 97), 4), ((97, 98), 2), ((256, 257), 2)]`.
    """
    chunk_ids = [list(chunk.encode("utf-8")) for chunk in chunks]
    merges = []
    for new_id in range(256, 256 + num_merges):
        counts: dict[Pair, int] = {}
        for ids in chunk_ids:
            pair_counts(ids, counts)
        if not counts:
            break
        pair = most_frequent(counts)
        chunk_ids = [merge(ids, pair, new_id) for ids in chunk_ids]
        merges.append((pair, counts[pair]))
    return merges


def encode_reference(ids: list[int], merges: Merges) -> list[int]:
    """The textbook encoder: apply the earliest-learned merge that occurs, until none does.

    Example: `encode_reference([97, 97, 97, 98], {(97, 97): 256, (97, 98): 257})` gives `[256, 257]`.
    """
    while len(ids) >= 2:
        counts = pair_counts(ids)
        pair = min(counts, key=lambda p: merges.get(p, NO_MERGE))
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids
