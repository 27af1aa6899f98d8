"""Batches of training and held-out examples for the projection learners.

An *epoch plan* fixes, from a generator seeded by (seed, epoch) alone, which occurrences of the
training text survive subsampling, the dynamic radius b_i of each survivor and the order in
which the centres are visited; batch k takes the next ``batch_size`` centres of that order and
draws its noise words from a generator seeded by (seed, epoch, k). Every batch is therefore a
function of (seed, epoch, k): a resumed run sees the batches the uninterrupted one would have.

A batch of skip-gram is the pairs (w_i, c) of its centres; a batch of CBOW is its centres' windows
(a centre alone in its sentence has no context and is left out).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch

from .negative_sampling import draw_negatives
from .windows import context_window, skipgram_pairs


@dataclass
class Batch:
    """What the model's loss reads: skip-gram pairs (``mask`` None, ``contexts`` (P,)) or CBOW
    windows (``contexts`` and ``mask`` (B, 2W)); ``negatives`` (P or B, K)."""
    centres: torch.Tensor
    contexts: torch.Tensor
    mask: Optional[torch.Tensor]
    negatives: torch.Tensor

    @property
    def count(self) -> int:
        """How many losses the batch sums: pairs (skip-gram) or windows (CBOW)."""
        return int(self.centres.numel())


@dataclass
class EpochPlan:
    """The subsampled stream of one epoch, the radius of each of its positions and their order."""
    words: torch.Tensor                # (M',) word ids that survived subsampling
    sentence: torch.Tensor             # (M',)
    radius: torch.Tensor               # (M',) b_i in 1 .. W
    order: torch.Tensor                # (M',) a permutation of the positions

    def num_batches(self, batch_size: int) -> int:
        return -(-self.order.numel() // batch_size)


def epoch_generator(seed: int, epoch: int, index: int = -1) -> torch.Generator:
    """The generator of an epoch's plan (``index`` -1) or of batch ``index``'s noise words."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_033 + index + 1)


def plan_epoch(words: torch.Tensor, sentence: torch.Tensor, keep: torch.Tensor, window: int,
               seed: int, epoch: int) -> EpochPlan:
    """Subsample (each occurrence kept with probability ``keep[w]``), draw the radii and shuffle."""
    g = epoch_generator(seed, epoch)
    survive = torch.rand(words.shape, generator=g, dtype=torch.double) < keep[words]   # (M,)
    w, s = words[survive], sentence[survive]
    radius = torch.randint(1, window + 1, w.shape, generator=g)
    order = torch.randperm(w.numel(), generator=g)
    return EpochPlan(w, s, radius, order)


def make_batch(method: str, words: torch.Tensor, sentence: torch.Tensor, centres: torch.Tensor,
               radius: torch.Tensor, window: int, noise: torch.Tensor, negatives: int,
               generator: torch.Generator) -> Batch:
    """The batch of the positions ``centres`` (B,) with radii ``radius`` (B,)."""
    contexts, mask = context_window(words, sentence, centres, radius, window)   # (B, 2W)
    centre_words = words[centres]                                               # (B,)
    if method == "skipgram":
        w, c = skipgram_pairs(centre_words, contexts, mask)                     # (P,), (P,)
        return Batch(w, c, None, draw_negatives(noise, (w.numel(), negatives), generator))
    has = mask.any(1)                                                           # (B,)
    centre_words, contexts, mask = centre_words[has], contexts[has], mask[has]
    return Batch(centre_words, contexts, mask,
                 draw_negatives(noise, (centre_words.numel(), negatives), generator))


def training_batch(method: str, plan: EpochPlan, index: int, batch_size: int, window: int,
                   noise: torch.Tensor, negatives: int, seed: int, epoch: int) -> Batch:
    """Batch ``index`` of the epoch of ``plan``."""
    centres = plan.order[index * batch_size:(index + 1) * batch_size]           # (B,)
    return make_batch(method, plan.words, plan.sentence, centres, plan.radius[centres], window,
                      noise, negatives, epoch_generator(seed, epoch, index))


def held_out_batches(method: str, words: torch.Tensor, sentence: torch.Tensor, keep: torch.Tensor,
                     window: int, noise: torch.Tensor, negatives: int, generator: torch.Generator,
                     batch_size: int = 4096) -> Iterator[Batch]:
    """The examples of a held-out stream drawn as training draws them (subsampling with the keep
    probabilities ``keep``, dynamic radii, noise words), every surviving position a centre, in
    order; all draws from ``generator`` (seeded by the caller: the same examples every time)."""
    survive = torch.rand(words.shape, generator=generator, dtype=torch.double) < keep[words]
    words, sentence = words[survive], sentence[survive]
    radius = torch.randint(1, window + 1, words.shape, generator=generator)
    for start in range(0, words.numel(), batch_size):
        centres = torch.arange(start, min(start + batch_size, words.numel()))
        yield make_batch(method, words, sentence, centres, radius[centres], window, noise,
                         negatives, generator)
