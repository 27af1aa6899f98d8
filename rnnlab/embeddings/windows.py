r"""Context windows: which words surround a centre word.

The text is a stream of words w_1 .. w_M with the sentence each belongs to (``<eos>`` ends a
sentence and is not itself a word here). The context of the centre w_i with radius b_i is

.. math::
    C(i) = \{ w_j : 0 < |j - i| \le b_i, \ \mathrm{sentence}(j) = \mathrm{sentence}(i) \}

a window that never crosses a sentence boundary. Training draws a *dynamic window*:
b_i uniform in {1, .., W} for each centre, so a word at distance d is a context with probability
(W - d + 1) / W and near words weigh more than far ones; held-out figures use b_i = W.

Skip-gram predicts each context word from the centre: the pairs (w_i, c) for c in C(i).
CBOW predicts the centre from the mean of its context's input vectors.
"""
from __future__ import annotations

from typing import Tuple

import torch

from ..data.vocabulary import EOS, Vocabulary


def words_and_sentences(ids: torch.Tensor, vocab: Vocabulary) -> Tuple[torch.Tensor, torch.Tensor]:
    """(M,) word ids without ``<eos>``, and (M,) the index of the sentence of each: the stream
    the windows run over."""
    eos = vocab.index.get(EOS, -1)
    is_eos = ids == eos                                                    # (N,)
    sentence = torch.cumsum(is_eos.long(), 0) - is_eos.long()              # (N,) eos closes its own
    keep = ~is_eos
    return ids[keep], sentence[keep]


def offsets(window: int) -> torch.Tensor:
    """(2W,) the relative positions -W .. -1, 1 .. W."""
    r = torch.arange(1, window + 1)
    return torch.cat([-r.flip(0), r])


def context_window(words: torch.Tensor, sentence: torch.Tensor, centres: torch.Tensor,
                   radius: torch.Tensor, window: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The contexts of the positions ``centres`` (B,) with radii ``radius`` (B,):
    (B, 2W) word ids and a (B, 2W) mask of which are in C(i) (the others are padding)."""
    d = offsets(window)                                                    # (2W,)
    pos = centres.unsqueeze(1) + d                                         # (B, 2W)
    inside = (pos >= 0) & (pos < words.numel())
    at = pos.clamp(0, max(words.numel() - 1, 0))
    mask = inside & (d.abs() <= radius.unsqueeze(1)) \
        & (sentence[at] == sentence[centres].unsqueeze(1))                 # (B, 2W)
    return words[at], mask


def skipgram_pairs(centre_words: torch.Tensor, contexts: torch.Tensor,
                   mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(P,) centre words and (P,) context words of every pair (w_i, c), c in C(i), in the order
    of the centres and, within one, of the offsets."""
    B, S = contexts.shape
    return centre_words.unsqueeze(1).expand(B, S)[mask], contexts[mask]
