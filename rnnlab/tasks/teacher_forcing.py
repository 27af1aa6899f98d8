r"""Word sequences as a decoder's output, trained under teacher forcing (captioning, translation).

For a reference y_1 .. y_n the decoder reads <eos>, y_1, .., y_n (the reference's previous word at
every step, whatever it would have produced) and is scored on y_1, .., y_n, <eos>:

    Div = - sum_t log P(y_t | y_<t, context)

summed over the words of a batch (the closing <eos> included) and divided by their number, the
loss per word; perplexity = e^loss. Padding past each sentence's end is ignored.

Shapes: B 1-D targets of lengths n_b -> y_in, y_out (T, B) with T = max n_b + 1, lengths (B,).
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch.nn import functional as F

from ..training.device import to_device
from ..training.step_weights import step_weights, weigh
from .examples import BatchLoss, pad

#: the target index cross-entropy ignores (padding)
IGNORE = -100


def decoder_sequences(targets: Sequence[torch.Tensor], eos: int
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The decoder's inputs <eos> y_1 .. y_n and outputs y_1 .. y_n <eos> of every target, padded."""
    end = torch.tensor([eos])
    y_in, lengths = pad([torch.cat([end, y]) for y in targets], eos)           # (T, B), (B,)
    y_out, _ = pad([torch.cat([y, end]) for y in targets], IGNORE)             # (T, B)
    return y_in, y_out, lengths


def word_loss(logits: torch.Tensor, y_out: torch.Tensor, weights: Optional[list] = None) -> BatchLoss:
    """(T, B, V) logits against (T, B) outputs: the mean cross-entropy per word to train on.

    ``weights``: a ``step_weights`` setting (:mod:`rnnlab.training.step_weights`), w_t of the
    decoder's step t of each sentence: sum_t w_t CE_t / words; None or all ones: the plain mean."""
    y_out = to_device(y_out, logits.device)                                       # where the model is
    real = y_out != IGNORE                                                        # (T, B)
    w = step_weights(weights, y_out.shape[0], real.sum(0), logits) if weights else None
    if w is not None:
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y_out.reshape(-1),
                             ignore_index=IGNORE, reduction="none").view(y_out.shape)  # (T, B)
        weighted, logged = weigh(ce, w.to(ce.device), real)
        count = int(real.sum())
        return BatchLoss(weighted / count, logged, count)
    loss_sum = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y_out.reshape(-1),
                               ignore_index=IGNORE, reduction="sum")
    count = int((y_out != IGNORE).sum())
    return BatchLoss(loss_sum / count, float(loss_sum.detach()), count)


def word_metrics(loss_sum: float, count: int, stats: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """``loss`` per word (nats) and ``perplexity``."""
    loss = loss_sum / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}
