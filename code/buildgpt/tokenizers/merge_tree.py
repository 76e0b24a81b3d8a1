"""How a long token is built: the tree of merges behind it, read back from a tokenizer's merges."""

from __future__ import annotations

from .textbook import Merges

# A leaf is a byte token's id; a node is the pair of subtrees that were merged.
MergeTree = int | tuple["MergeTree", "MergeTree"]


def merge_tree(token_id: int, merges: Merges) -> MergeTree:
    """The merges that built `token_id`, as nested pairs down to the byte tokens.

    Example: `merge_tree(258, {(97, 97): 256, (97, 98): 257, (256, 257): 258})`
    gives `((97, 97), (97, 98))`.
    """
    parents = {new_id: pair for pair, new_id in merges.items()}
    if token_id < 0:
        raise ValueError(f"token ids are never negative, got {token_id}")
    if token_id >= 256 and token_id not in parents:  # e.g. a special token, or past the vocabulary
        raise ValueError(f"token {token_id} is neither a byte token (0..255) nor made by one of these merges")

    def build(node: int) -> MergeTree:
        if node not in parents:  # a byte token: nothing was merged to make it
            return node
        left, right = parents[node]
        return build(left), build(right)

    return build(token_id)


def tree_depth(tree: MergeTree) -> int:
    """How many merges deep the tree goes (a byte token: 0).

    Example: `tree_depth(((97, 97), 98))` gives `2`.
    """
    return 0 if isinstance(tree, int) else 1 + max(tree_depth(tree[0]), tree_depth(tree[1]))
