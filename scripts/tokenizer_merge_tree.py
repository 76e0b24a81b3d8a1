"""Draws book/images/tokenizer-merge-tree.svg: the merges that build GPT-4's token " strawberry".

The tree is read from GPT-4's merges (buildgpt.tokenizers.merge_tree), so rerunning this script
redraws the same picture: `python scripts/tokenizer_merge_tree.py`.
"""

from __future__ import annotations

import argparse
from html import escape
from pathlib import Path

from buildgpt.tokenizers.gpt4 import GPT4Tokenizer
from buildgpt.tokenizers.merge_tree import MergeTree, merge_tree, tree_depth

WORD = " strawberry"
OUT = Path(__file__).resolve().parents[1] / "book" / "images" / "tokenizer-merge-tree.svg"
LEAF_GAP, LEVEL_GAP, MARGIN = 58, 62, 30  # pixels between leaves, between levels, around the tree


def layout(tree: MergeTree, depth_of_root: int) -> list[tuple[MergeTree, float, float, list]]:
    """Every node with its x, y and its children's positions: leaves left to right along the
    bottom, each merge above the middle of its two parts, at the height of its depth."""
    nodes, next_leaf = [], [0]

    def place(node: MergeTree) -> tuple[float, float]:
        y = MARGIN + 20 + (depth_of_root - tree_depth(node)) * LEVEL_GAP
        if isinstance(node, int):
            x = MARGIN + 30 + next_leaf[0] * LEAF_GAP
            next_leaf[0] += 1
            nodes.append((node, x, y, []))
            return x, y
        children = [place(node[0]), place(node[1])]
        x = (children[0][0] + children[1][0]) / 2
        nodes.append((node, x, y, children))
        return x, y

    place(tree)
    return nodes


def svg(tokenizer: GPT4Tokenizer, word: str) -> str:
    (token_id,) = tokenizer.encode(word)
    tree = merge_tree(token_id, tokenizer.merges)
    depth = tree_depth(tree)
    nodes = layout(tree, depth)
    width = max(x for _, x, _, _ in nodes) + MARGIN + 30
    height = MARGIN * 2 + 30 + depth * LEVEL_GAP + 30

    def text_of(node: MergeTree) -> str:
        if isinstance(node, int):
            return tokenizer.vocab[node].decode().replace(" ", "␣")
        return text_of(node[0]) + text_of(node[1])

    def id_of(node: MergeTree) -> int:
        return node if isinstance(node, int) else tokenizer.merges[id_of(node[0]), id_of(node[1])]

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
             f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans Mono, monospace" font-size="13">',
             f"<title>The merges that build GPT-4's token {escape(repr(word))}</title>",
             '<rect width="100%" height="100%" fill="white"/>']
    for _, x, y, children in nodes:
        parts += [f'<line x1="{x:.1f}" y1="{y + 29:.1f}" x2="{cx:.1f}" y2="{cy - 13:.1f}" stroke="#9aa4b2" stroke-width="1.5"/>'
                  for cx, cy in children]
    for node, x, y, _ in nodes:
        label = text_of(node)
        box = 9 * len(label) + 12
        fill = "#e8eef7" if isinstance(node, int) else "#fde9c8"
        parts.append(f'<rect x="{x - box / 2:.1f}" y="{y - 13:.1f}" width="{box}" height="26" rx="5" '
                     f'fill="{fill}" stroke="#5b6b82"/>')
        parts.append(f'<text x="{x:.1f}" y="{y + 4.5:.1f}" text-anchor="middle">{escape(label)}</text>')
        parts.append(f'<text x="{x:.1f}" y="{y + 25:.1f}" text-anchor="middle" font-size="9" '
                     f'fill="#5b6b82">{id_of(node)}</text>')
    parts.append(f'<text x="{MARGIN}" y="{height - 12:.0f}" font-size="11" fill="#5b6b82">blue: a byte token; '
                 "orange: the merge of the two below it; small: GPT-4's token id</text>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the SVG (default: the book's)")
    out = parser.parse_args().out
    out.write_text(svg(GPT4Tokenizer(), WORD), encoding="utf-8")
    print(f"wrote {out}")
