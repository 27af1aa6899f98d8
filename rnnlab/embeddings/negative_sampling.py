r"""Negative sampling: the objective both projection learners (CBOW and skip-gram) maximise, the
noise distribution its negatives come from, and the subsampling of frequent words.

For an input vector h (the centre word's v_w for skip-gram, the mean of the context words' input
vectors for CBOW), the output vector u_o of the word to predict, and K noise words n_1 .. n_K:

.. math::
    \ell(h, o, n_{1..K}) = -\log \sigma(u_o \cdot h) - \sum_{k=1}^{K} \log \sigma(-u_{n_k} \cdot h)

the negated objective, so lower is better. Its derivatives, with s_+ = u_o . h and s_k = u_{n_k} . h
and d/ds log sigma(s) = 1 - sigma(s):

.. math::
    \partial\ell / \partial h &= (\sigma(s_+) - 1)\, u_o + \sum_k \sigma(s_k)\, u_{n_k} \\
    \partial\ell / \partial u_o &= (\sigma(s_+) - 1)\, h \\
    \partial\ell / \partial u_{n_k} &= \sigma(s_k)\, h

The noise words are drawn from the unigram distribution raised to the 3/4 power,
P_n(w) = c(w)^{3/4} / sum_v c(v)^{3/4} (c the training counts), which flattens the unigram
distribution: rare words are drawn more often than their frequency. A noise word may equal the
word to predict; the formula above is then computed as written.

Subsampling of frequent words: each occurrence of w in the training text is discarded, for one
epoch, with probability P_discard(w) = max(0, 1 - sqrt(t / f(w))), f(w) = c(w) / sum_v c(v) its
relative frequency and t the threshold (``subsample``); words with f(w) <= t are always kept.
"""
from __future__ import annotations

import torch

#: the power of the unigram counts in the noise distribution
NOISE_POWER = 0.75


def noise_distribution(counts: torch.Tensor, power: float = NOISE_POWER) -> torch.Tensor:
    """(N,) probabilities c(w)^power / sum_v c(v)^power from (N,) counts; words never seen have
    probability 0."""
    weights = counts.double().clamp(min=0) ** power                       # (N,)
    total = weights.sum()
    if total <= 0:
        raise ValueError("the noise distribution needs at least one word with a positive count")
    return weights / total


def draw_negatives(noise: torch.Tensor, shape, generator: torch.Generator) -> torch.Tensor:
    """Noise words of ``shape`` (e.g. (P, K)), independent draws from ``noise``."""
    n = 1
    for s in shape:
        n *= s
    if n == 0:
        return torch.zeros(shape, dtype=torch.long)
    return torch.multinomial(noise, n, replacement=True, generator=generator).view(*shape)


def keep_probabilities(counts: torch.Tensor, threshold: float) -> torch.Tensor:
    """(N,) probability that an occurrence of each word is kept: min(1, sqrt(t / f(w)));
    ``threshold`` 0 keeps every word."""
    if threshold <= 0:
        return torch.ones(counts.shape, dtype=torch.double)
    f = counts.double() / counts.sum().clamp(min=1)                        # (N,)
    return (threshold / f.clamp(min=1e-300)).sqrt().clamp(max=1.0)


class NegativeSamplingLoss(torch.autograd.Function):
    r"""The per-example loss :math:`\ell` of the module docstring, with its hand-written backward.

    Inputs: h (P, D), u_pos (P, D), u_neg (P, K, D). Output: (P,) losses.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, u_pos: torch.Tensor, u_neg: torch.Tensor) -> torch.Tensor:
        s_pos = (u_pos * h).sum(-1)                                        # (P,)
        s_neg = torch.bmm(u_neg, h.unsqueeze(-1)).squeeze(-1)              # (P, K)
        # -log sigma(s) = softplus(-s), exact for large |s|
        loss = torch.nn.functional.softplus(-s_pos) + torch.nn.functional.softplus(s_neg).sum(-1)
        ctx.save_for_backward(h, u_pos, u_neg, s_pos, s_neg)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        h, u_pos, u_neg, s_pos, s_neg = ctx.saved_tensors
        g_pos = (torch.sigmoid(s_pos) - 1) * grad_loss                     # (P,)   d l / d s_+
        g_neg = torch.sigmoid(s_neg) * grad_loss.unsqueeze(-1)             # (P, K) d l / d s_k
        grad_h = g_pos.unsqueeze(-1) * u_pos \
            + torch.bmm(g_neg.unsqueeze(1), u_neg).squeeze(1)              # (P, D)
        grad_u_pos = g_pos.unsqueeze(-1) * h                               # (P, D)
        grad_u_neg = g_neg.unsqueeze(-1) * h.unsqueeze(1)                  # (P, K, D)
        return grad_h, grad_u_pos, grad_u_neg


def negative_sampling_loss(h: torch.Tensor, u_pos: torch.Tensor, u_neg: torch.Tensor) -> torch.Tensor:
    """(P,) losses -log sigma(u_pos . h) - sum_k log sigma(-u_neg_k . h) (module docstring)."""
    return NegativeSamplingLoss.apply(h, u_pos, u_neg)


def pair_scores(h: torch.Tensor, u_pos: torch.Tensor, u_neg: torch.Tensor):
    """(P,) scores u_pos . h and (P, K) scores u_neg_k . h, without gradients."""
    return (u_pos * h).sum(-1), torch.bmm(u_neg, h.unsqueeze(-1)).squeeze(-1)
