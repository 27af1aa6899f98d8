"""The 2-D PCA picture of chosen words of an embedding, as a PNG (the notes' "two-dimensional PCA
projection" of word vectors)."""
from __future__ import annotations

from typing import Dict, Mapping, Sequence

import torch

from ..data.vocabulary import Vocabulary
from ..diagnostics.plots import _figure
from .analysis import PTB_GROUPS, pca_2d, present_groups, unit_rows, word_ids


def projection_points(vectors: torch.Tensor, vocab: Vocabulary,
                      groups: Mapping[str, Sequence[str]] = PTB_GROUPS) -> Dict[str, object]:
    """The chosen words found in ``vocab``, their group, and their 2-D PCA coordinates (of the
    unit-length vectors, so that the picture shows directions, as cosine neighbours do)."""
    found = present_groups(vocab, groups, min_size=1)
    words = [w for ws in found.values() for w in ws]
    labels = [g for g, ws in found.items() for _ in ws]
    if len(words) < 2:
        raise ValueError(f"the picture needs at least 2 of the chosen words in the vocabulary, "
                         f"found {len(words)}")
    coords, share = pca_2d(unit_rows(vectors)[torch.tensor(word_ids(vocab, words))])
    return {"words": words, "groups": labels, "coords": coords, "share": share}


def plot_projection(vectors: torch.Tensor, vocab: Vocabulary, path, title: str,
                    groups: Mapping[str, Sequence[str]] = PTB_GROUPS) -> Dict[str, object]:
    """Draw the chosen words on their two principal axes, one colour per group; returns the
    points (:func:`projection_points`)."""
    pts = projection_points(vectors, vocab, groups)
    fig = _figure(7.6, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    colours = {}
    for i, (word, group) in enumerate(zip(pts["words"], pts["groups"])):
        x, y = (float(v) for v in pts["coords"][i])
        if group not in colours:
            colours[group] = f"C{len(colours) % 10}"
            ax.plot([], [], "o", color=colours[group], label=group)
        ax.plot(x, y, "o", color=colours[group], markersize=4)
        ax.annotate(word, (x, y), xytext=(3, 2), textcoords="offset points", fontsize=7,
                    color=colours[group])
    share = pts["share"]
    ax.set_xlabel(f"first principal axis ({100 * float(share[0]):.0f}% of the variance)")
    ax.set_ylabel(f"second principal axis ({100 * float(share[1]):.0f}%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return pts
