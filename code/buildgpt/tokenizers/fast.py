"""The textbook's training and encoding, fast, with identical results.

`train_fast` learns exactly `train_reference`'s merges; `merge_by_rank` gives exactly
`encode_reference`'s ids, with tiktoken's loop.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable

from .textbook import NO_MERGE, Merges, Pair


def train_fast(chunks: Iterable[str], num_merges: int) -> list[tuple[Pair, int]]:
    """`train_reference`'s merges, fast. Three ideas:

    1. Text repeats its words: count each distinct chunk once and weigh its pairs by that count.
    2. A merge changes only the chunks that hold its pair, and in them only the pairs beside
       each place it merges: remember where each pair occurs, and update just those counts.
    3. Keep the pairs in a heap ordered like `most_frequent`. A merge only lowers the counts of
       the pairs that already existed (the pairs it creates are new), so a heap entry is never
       too low: when one surfaces with a count that has since fallen, push it back corrected.

    Example: `train_fast(["aaabdaaabac"], 3)` gives `[((97, 97), 4), ((97, 98), 2), ((256, 257), 2)]`.
    """
    chunk_counts = Counter(chunks)
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    weights = list(chunk_counts.values())
    counts: dict[Pair, int] = defaultdict(int)
    where: dict[Pair, set[int]] = defaultdict(set)  # pair -> the words that hold it (or once did)
    for i, (word, weight) in enumerate(zip(words, weights)):
        for pair in zip(word, word[1:]):
            counts[pair] += weight
            where[pair].add(i)
    heap = [(-count, pair) for pair, count in counts.items()]  # smallest first: top count, then pair
    heapq.heapify(heap)

    merges = []
    while len(merges) < num_merges and heap:
        negative_count, pair = heapq.heappop(heap)
        count = counts[pair]
        if count != -negative_count:  # stale entry
            if count:
                heapq.heappush(heap, (-count, pair))
            continue
        new_id = 256 + len(merges)
        merges.append((pair, count))
        created = set()
        for i in where.pop(pair):
            merged, new_pairs = merge_and_count(words[i], pair, new_id, weights[i], counts)
            words[i] = merged
            for new in new_pairs:
                where[new].add(i)
            created.update(new_pairs)
        for new in created:
            if counts[new]:  # zero when created and undone again: `a b a b` makes `new a`, then `new new`
                heapq.heappush(heap, (-counts[new], new))
    return merges


def merge_and_count(word: list[int], pair: Pair, new_id: int, weight: int,
                    counts: dict[Pair, int]) -> tuple[list[int], list[Pair]]:
    """`merge`, and the pair counts it changes: at each place `a b` becomes `new` between
    neighbours `x` and `y`, the pairs `x a`, `a b`, `b y` lose `weight` and `x new`, `new y` gain
    it. Returns the merged word and the pairs it created.

    Example: `merge_and_count([1, 2, 3], (1, 2), 256, 1, defaultdict(int))` gives `([256, 3], [(256, 3)])`.
    """
    a, b = pair
    merged, created = [], []
    i = 0
    while i < len(word):
        if word[i] == a and i + 1 < len(word) and word[i + 1] == b:
            counts[pair] -= weight
            if merged:
                x = merged[-1]  # the new token itself when two places touch: `a b a b`
                counts[x, a] -= weight
                counts[x, new_id] += weight
                created.append((x, new_id))
            if i + 2 < len(word):
                y = word[i + 2]
                counts[b, y] -= weight
                counts[new_id, y] += weight
                created.append((new_id, y))
            merged.append(new_id)
            i += 2
        else:
            merged.append(word[i])
            i += 1
    return merged, created


def merge_by_rank(ids: list[int], merges: Merges) -> list[int]:
    """`encode_reference`, fast: merge the leftmost pair of lowest rank until none is left.

    A merge's new id is its rank (earlier merges have smaller ids, and a token is always newer
    than its parts), and a merge changes only the ranks of the pairs beside it: keep the list
    of ranks and update just those two. This is tiktoken's loop.
    Example: `merge_by_rank([97, 97, 97, 98], {(97, 97): 256, (97, 98): 257})` gives `[256, 257]`.
    """
    ranks = [merges.get(pair, NO_MERGE) for pair in zip(ids, ids[1:])]
    while ranks:
        best = min(ranks)
        if best == NO_MERGE:
            break
        i = ranks.index(best)
        ids[i : i + 2] = [best]
        del ranks[i]
        if i > 0:
            ranks[i - 1] = merges.get((ids[i - 1], best), NO_MERGE)
        if i < len(ranks):
            ranks[i] = merges.get((best, ids[i + 1]), NO_MERGE)
    return ids
