r"""Held-out figures of a projection learner, computed on text it was not trained on.

- ``loss``: the mean negative-sampling loss l (:mod:`rnnlab.embeddings.negative_sampling`) per
  prediction, a skip-gram pair or a CBOW window: the training objective on held-out text, its
  examples drawn as training draws them (subsampling, dynamic window, noise words) by a
  generator seeded by the caller, so two evaluations of the same weights agree to the bit.
  Untrained weights score (K + 1) log 2. (Without the subsampling, held-out pairs would be
  dominated by the frequent words that training mostly discards and meets mainly as noise.)
- ``rank_accuracy``: the share of (prediction, noise word) comparisons in which the word to predict
  scores above the noise word, u_o . h > u_n . h: the probability that the model ranks a true
  context above a random word of the noise distribution (0.5 by chance; ties count half).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch

from ..training.device import model_device, to_device
from .batches import held_out_batches
from .negative_sampling import pair_scores
from .word2vec import WordVectors


@torch.no_grad()
def held_out_metrics(model: WordVectors, words: torch.Tensor, sentence: torch.Tensor,
                     keep: torch.Tensor, window: int, noise: torch.Tensor, negatives: int,
                     seed: int) -> Optional[Dict[str, float]]:
    """``loss``, ``rank_accuracy`` and ``predictions`` over a held-out stream (module docstring);
    None when the stream makes no prediction (no sentence of two words)."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    total, count, wins, comparisons = 0.0, 0, 0.0, 0
    try:
        for b in held_out_batches(model.config.method, words, sentence, keep, window, noise,
                                  negatives, g):
            if b.count == 0:
                continue
            b = to_device(b, model_device(model))
            total += float(model(b.centres, b.contexts, b.mask, b.negatives).double().sum())
            if b.mask is None:
                h = model.input_vectors(b.centres)                                 # (P, D)
                u_pos = model.output_vectors(b.contexts)
            else:
                h = model.cbow_input(b.contexts, b.mask)                           # (B, D)
                u_pos = model.output_vectors(b.centres)
            s_pos, s_neg = pair_scores(h, u_pos, model.output_vectors(b.negatives))
            diff = s_pos.unsqueeze(1) - s_neg                                      # (P, K)
            wins += float((diff > 0).double().sum() + 0.5 * (diff == 0).double().sum())
            comparisons += diff.numel()
            count += b.count
    finally:
        model.train(was_training)
    if count == 0:
        return None
    return {"loss": total / count, "rank_accuracy": wins / max(comparisons, 1), "predictions": count}
