r"""Connectionist temporal classification: the divergence of an order-synchronous, time-asynchronous
output (the notes' "order synchronous, time asynchronous" structure), with its hand-written backward.

The network gives a distribution over C symbols at every input step, y_t(k) = P(k | t, x), one of
them the *blank* (no output here). A target l = l_1 .. l_S (no blanks) is produced by any
*alignment* pi_1 .. pi_T that reads l once repeated symbols are merged and blanks dropped
(``1 1 _ 1 2 2`` reads ``1 1 2``). The divergence is

    Div = - log P(l | x),      P(l | x) = sum over alignments pi of l   prod_t y_t(pi_t).

**Extended sequence.** Put a blank around every label: l' = _ l_1 _ l_2 _ ... _ l_S _, of length
S' = 2S + 1 (positions s = 1 .. S'; even s the labels, odd s the blanks). An alignment is a path
through l' that starts at l'_1 or l'_2, ends at l'_S' or l'_{S'-1}, and at every step stays, moves
one on, or skips one blank between two *different* labels (a blank between equal labels cannot be
skipped, or the two would merge).

**Forward (alpha) recursion**, alpha_t(s) = P(pi_1..t ends at s, reads l'_1..s so far):

    alpha_1(1) = y_1(_),  alpha_1(2) = y_1(l_1),  alpha_1(s) = 0 for s > 2
    alpha_t(s) = y_t(l'_s) [alpha_{t-1}(s) + alpha_{t-1}(s-1) + skip(s) alpha_{t-1}(s-2)]
    skip(s) = 1 if l'_s is a label and l'_s != l'_{s-2}, else 0
    P(l | x) = alpha_T(S') + alpha_T(S' - 1)

**Backward (beta) recursion**, beta_t(s) = P(pi_t..T starts at s and reads l'_s..S'), the mirror
image (y_t(l'_s) counted in both alpha_t(s) and beta_t(s)):

    beta_T(S') = y_T(_),  beta_T(S' - 1) = y_T(l_S),  beta_T(s) = 0 otherwise
    beta_t(s) = y_t(l'_s) [beta_{t+1}(s) + beta_{t+1}(s+1) + skip(s+2) beta_{t+1}(s+2)]

**Gradient.** For every t, sum_s alpha_t(s) beta_t(s) / y_t(l'_s) = P(l | x), and each term is the
probability mass of the alignments that sit at s at step t. So the posterior occupancy of symbol
k at step t is

    gamma_t(k) = 1 / P(l | x)  sum_{s : l'_s = k}  alpha_t(s) beta_t(s) / y_t(k),

and with z_t(k) = log y_t(k) (the ``log_probs`` this function takes),

    dDiv / dz_t(k) = - gamma_t(k).

Through a softmax (z = log_softmax(a)), the gradient with respect to the logits is
dDiv / da_t(k) = y_t(k) - gamma_t(k): the network's distribution minus the posterior occupancy.

Everything is computed in log space (products become sums, sums log-sum-exp), batched over the B
sequences with tensor operations; only time is a Python loop. A sequence runs over its own
``input_lengths[b]`` steps; an impossible target (fewer steps than S plus the number of repeated
neighbours) has P = 0 and Div = inf, set to 0 with its gradient when ``zero_infinity``.

Shapes: log_probs (T, B, C); targets (B, S_max) padded, or 1-D (sum of target_lengths,) the
targets one after another; input_lengths (B,); target_lengths (B,). Reductions: ``"none"`` (B,),
``"sum"``, ``"mean"`` (each Div divided by its target length, at least 1, then averaged over B).
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch.autograd.function import once_differentiable

from .. import compiler
from ..errors import ConfigError, check_choice

REDUCTIONS = ("none", "sum", "mean")
NEG_INF = float("-inf")


# ------------------------------------------------------------------------------ the extended sequence
def padded_targets(targets: torch.Tensor, target_lengths: torch.Tensor, batch: int) -> torch.Tensor:
    """``targets`` as (B, S_max) int64, whether given padded (B, S_max) or one after another (1-D)."""
    if targets.dim() == 2:
        if targets.shape[0] != batch:
            raise ConfigError(f"targets (B, S_max) must have B = {batch} rows, got shape {tuple(targets.shape)}")
        if batch and targets.shape[1] < int(target_lengths.max()):
            raise ConfigError(f"targets have {targets.shape[1]} columns, fewer than the longest "
                              f"target length {int(target_lengths.max())}")
        return targets.long()
    if targets.dim() != 1:
        raise ConfigError(f"targets must be (B, S_max) or 1-D, got shape {tuple(targets.shape)}")
    total = int(target_lengths.sum())
    if targets.numel() < total:
        raise ConfigError(f"1-D targets hold {targets.numel()} labels, the target lengths add up to {total}")
    S = int(target_lengths.max()) if batch else 0
    out = targets.new_zeros((batch, S), dtype=torch.long)                   # (B, S_max)
    start = 0
    for b, n in enumerate(target_lengths.tolist()):
        out[b, :n] = targets[start:start + n]
        start += n
    return out


def extended_sequence(targets: torch.Tensor, blank: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(l', skip): the extended label sequences (B, 2 S_max + 1), blanks at even indices (0-based),
    and ``skip`` (B, 2 S_max + 1), True where alpha may come from two positions back."""
    B, S = targets.shape
    ext = targets.new_full((B, 2 * S + 1), blank)                           # (B, S')
    ext[:, 1::2] = targets
    skip = torch.zeros_like(ext, dtype=torch.bool)
    if S > 1:
        skip[:, 3::2] = targets[:, 1:] != targets[:, :-1]                   # l'_s != l'_{s-2}
    return ext, skip


def _logsumexp3(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """log(e^a + e^b + e^c) elementwise; -inf where all three are -inf."""
    return torch.logaddexp(torch.logaddexp(a, b), c)


def _skip_penalty(skip: torch.Tensor, dtype) -> torch.Tensor:
    """0 where a skip is allowed, -inf where not: added to the term two positions away."""
    return torch.zeros(skip.shape, dtype=dtype, device=skip.device).masked_fill(~skip, NEG_INF)


# ------------------------------------------------------------------------------ forward and backward
def alpha_recursion(lp_ext: torch.Tensor, skip: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """log alpha (T, B, S') from lp_ext (T, B, S'), lp_ext[t, b, s] = log y_t(l'_s) (module docstring)."""
    T, B, S_ext = lp_ext.shape
    # two columns of -inf on the left: alpha_{t-1}(s - 1) and alpha_{t-1}(s - 2) are views
    buf = torch.full((T, B, S_ext + 2), NEG_INF, dtype=lp_ext.dtype, device=lp_ext.device)
    log_alpha = buf[:, :, 2:]                                               # (T, B, S')
    log_alpha[0, :, 0] = lp_ext[0, :, 0]                                    # blank first
    if S_ext > 1:
        log_alpha[0, :, 1] = torch.where(target_lengths > 0, lp_ext[0, :, 1], NEG_INF)   # or l_1 first
    penalty = _skip_penalty(skip, lp_ext.dtype)                             # (B, S')
    for t in range(1, T):
        prev = buf[t - 1]                                                   # (B, S' + 2)
        log_alpha[t] = lp_ext[t] + _logsumexp3(prev[:, 2:], prev[:, 1:-1], prev[:, :-2] + penalty)
    return log_alpha


def beta_recursion(lp_ext: torch.Tensor, skip: torch.Tensor, input_lengths: torch.Tensor,
                   target_lengths: torch.Tensor) -> torch.Tensor:
    """log beta (T, B, S'): each sequence b starts at its own last step input_lengths[b] - 1 and is
    -inf after it (module docstring)."""
    T, B, S_ext = lp_ext.shape
    # two columns of -inf on the right: beta_{t+1}(s + 1) and beta_{t+1}(s + 2) are views
    buf = torch.full((T, B, S_ext + 2), NEG_INF, dtype=lp_ext.dtype, device=lp_ext.device)
    log_beta = buf[:, :, :-2]                                               # (T, B, S')
    rows = torch.arange(B, device=lp_ext.device)
    last, end = input_lengths - 1, 2 * target_lengths                       # (B,) last step, last blank
    log_beta[last, rows, end] = lp_ext[last, rows, end]                     # ends on the last blank
    has_label = target_lengths > 0
    r, e = rows[has_label], end[has_label] - 1
    log_beta[last[has_label], r, e] = lp_ext[last[has_label], r, e]         # or on the last label
    skip_next = torch.zeros_like(skip)                                      # skip(s + 2) at s
    skip_next[:, :-2] = skip[:, 2:]
    penalty = _skip_penalty(skip_next, lp_ext.dtype)                        # (B, S')
    steps = torch.arange(T, device=lp_ext.device).unsqueeze(1)              # (T, 1)
    running = (steps < last.unsqueeze(0)).unsqueeze(2)                      # (T, B, 1) before the last step
    for t in range(T - 2, -1, -1):
        nxt = buf[t + 1]                                                    # (B, S' + 2)
        from_later = lp_ext[t] + _logsumexp3(nxt[:, :-2], nxt[:, 1:-1], nxt[:, 2:] + penalty)
        log_beta[t] = torch.where(running[t], from_later, log_beta[t])
    return log_beta


def log_likelihood(log_alpha: torch.Tensor, input_lengths: torch.Tensor,
                   target_lengths: torch.Tensor) -> torch.Tensor:
    """log P(l | x) (B,) = log(alpha_T(S') + alpha_T(S' - 1)), T each sequence's own length."""
    B = log_alpha.shape[1]
    rows = torch.arange(B, device=log_alpha.device)
    at_end = log_alpha[input_lengths - 1, rows]                              # (B, S')
    end = 2 * target_lengths
    last_blank = at_end[rows, end]
    last_label = torch.where(target_lengths > 0, at_end[rows, (end - 1).clamp(min=0)], NEG_INF)
    return torch.logaddexp(last_blank, last_label)


def occupancy_gradient(log_probs: torch.Tensor, lp_ext: torch.Tensor, ext: torch.Tensor,
                       log_alpha: torch.Tensor, log_beta: torch.Tensor, loglik: torch.Tensor) -> torch.Tensor:
    """dDiv / dlog_probs (T, B, C) = - gamma_t(k) (module docstring)."""
    # log of alpha_t(s) beta_t(s) / (y_t(l'_s) P(l | x)), a probability at every (t, b, s)
    log_occ = log_alpha + log_beta - lp_ext - loglik.view(1, -1, 1)        # (T, B, S')
    gamma = torch.zeros_like(log_probs)                                     # (T, B, C)
    index = ext.unsqueeze(0).expand_as(log_occ)                             # (T, B, S')
    gamma.scatter_add_(2, index, log_occ.exp())
    return -gamma


class CTCDivergence(torch.autograd.Function):
    """Div_b = -log P(l_b | x_b) (B,), forward by the alpha recursion, backward by alpha and beta."""

    @staticmethod
    def forward(ctx, log_probs, targets, input_lengths, target_lengths, blank, zero_infinity):
        ext, skip = extended_sequence(targets, blank)                       # (B, S')
        T, B, _ = log_probs.shape
        lp_ext = log_probs.gather(2, ext.unsqueeze(0).expand(T, -1, -1))    # (T, B, S')
        log_alpha = alpha_recursion(lp_ext, skip, target_lengths)
        loglik = log_likelihood(log_alpha, input_lengths, target_lengths)   # (B,)
        div = -loglik
        infinite = torch.isinf(div)
        if zero_infinity:
            div = torch.where(infinite, torch.zeros_like(div), div)
        ctx.save_for_backward(log_probs, lp_ext, ext, skip, log_alpha, loglik, input_lengths, target_lengths)
        ctx.zero_infinity = zero_infinity
        return div

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_div):
        log_probs, lp_ext, ext, skip, log_alpha, loglik, input_lengths, target_lengths = ctx.saved_tensors
        log_beta = beta_recursion(lp_ext, skip, input_lengths, target_lengths)
        grad = occupancy_gradient(log_probs, lp_ext, ext, log_alpha, log_beta, loglik)  # (T, B, C)
        if ctx.zero_infinity:
            grad = torch.where(torch.isinf(loglik).view(1, -1, 1), torch.zeros_like(grad), grad)
        return grad * grad_div.view(1, -1, 1), None, None, None, None, None


@compiler.disable
def ctc_loss(log_probs: torch.Tensor, targets: torch.Tensor, input_lengths, target_lengths,
             blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> torch.Tensor:
    """The CTC divergence of the module docstring, with its hand-written backward.

    log_probs (T, B, C) (normally a log_softmax over C); targets (B, S_max) or 1-D; input_lengths,
    target_lengths (B,) (tensors or sequences of ints). Returns (B,) for ``reduction="none"``, else
    a scalar. Under torch.compile it runs outside the graph (one graph break): its checks read
    values, and its recursions, unrolled, were compiled again for every T.
    """
    check_choice("reduction", reduction, REDUCTIONS)
    if log_probs.dim() != 3:
        raise ConfigError(f"log_probs must be (T, B, C), got shape {tuple(log_probs.shape)}")
    T, B, C = log_probs.shape
    device = log_probs.device
    input_lengths = torch.as_tensor(input_lengths, dtype=torch.long, device=device).reshape(-1)
    target_lengths = torch.as_tensor(target_lengths, dtype=torch.long, device=device).reshape(-1)
    if input_lengths.numel() != B or target_lengths.numel() != B:
        raise ConfigError(f"input_lengths and target_lengths need B = {B} entries, got "
                          f"{input_lengths.numel()} and {target_lengths.numel()}")
    if B and (int(input_lengths.min()) < 1 or int(input_lengths.max()) > T):
        raise ConfigError(f"input_lengths must lie in 1..T = {T}, got {input_lengths.tolist()}")
    if B and int(target_lengths.min()) < 0:
        raise ConfigError(f"target_lengths must be >= 0, got {target_lengths.tolist()}")
    if not 0 <= blank < C:
        raise ConfigError(f"blank must be a class in 0..{C - 1}, got {blank}")
    targets = padded_targets(torch.as_tensor(targets, device=device), target_lengths, B)
    S = targets.shape[1]
    if S:
        used = torch.arange(S, device=device).unsqueeze(0) < target_lengths.unsqueeze(1)   # (B, S)
        labels = targets[used]
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= C or bool((labels == blank).any())):
            raise ConfigError(f"target labels must lie in 0..{C - 1} and not be the blank {blank}")
        targets = torch.where(used, targets, torch.full_like(targets, blank))
    div = CTCDivergence.apply(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity)
    if reduction == "none":
        return div
    if reduction == "sum":
        return div.sum()
    return (div / target_lengths.clamp(min=1).to(div.dtype)).mean()
