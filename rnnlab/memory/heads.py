r"""The heads of a Neural Turing Machine: what the controller emits for each head, and its range.

From the controller's output h_t (C,), one linear map emits every head's parameters at once,
each squashed into its range:

.. math::
    k_t &= \tanh(W_k h_t + b_k)                 && \text{key, } (M,) \\
    \beta_t &= \mathrm{softplus}(W_\beta h_t + b_\beta)   && \text{key strength} \ge 0 \\
    g_t &= \sigma(W_g h_t + b_g)                 && \text{interpolation gate in } [0, 1] \\
    s_t &= \mathrm{softmax}(W_s h_t + b_s)       && \text{shift distribution, } (S,) \\
    \gamma_t &= 1 + \mathrm{softplus}(W_\gamma h_t + b_\gamma) && \text{sharpening} \ge 1 \\
    e_t &= \sigma(W_e h_t + b_e)                 && \text{erase vector, write heads, } (M,) \\
    a_t &= \tanh(W_a h_t + b_a)                  && \text{add vector, write heads, } (M,)

sigma is the logistic sigmoid. A read head emits (k, beta, g, s, gamma), M + S + 3 numbers; a write
head also (e, a), 3M + S + 3. The emissions of all heads come out of one matrix product and are
returned stacked over heads, read heads first, so that all heads are addressed together
(:func:`rnnlab.memory.addressing.address`).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F


class HeadParameters(NamedTuple):
    """Every head's parameters at one step; H = R + W heads (read heads first)."""
    keys: torch.Tensor                 # (B, H, M)
    beta: torch.Tensor                 # (B, H, 1)
    gate: torch.Tensor                 # (B, H, 1)
    shift: torch.Tensor                # (B, H, S)
    gamma: torch.Tensor                # (B, H, 1)
    erase: torch.Tensor                # (B, W, M)
    add: torch.Tensor                  # (B, W, M)


class Heads(nn.Module):
    """The emission of R read heads and W write heads from the controller's output.

    Args:
        controller_size: C, the width of h_t.
        memory_width: M, the width of a memory row.
        read_heads, write_heads: R, W.
        shift_count: S, the number of allowed shifts.

    Shapes: h (B, C) -> :class:`HeadParameters`. Parameters: ``weight`` (R (M + S + 3) +
    W (3M + S + 3), C), ``bias`` of that length (as ``nn.Linear``, under ``emit``).
    """

    def __init__(self, controller_size: int, memory_width: int, read_heads: int, write_heads: int,
                 shift_count: int):
        super().__init__()
        self.M, self.R, self.W, self.S = memory_width, read_heads, write_heads, shift_count
        self.per_head = memory_width + shift_count + 3                      # k, s, beta, g, gamma
        self.emit = nn.Linear(controller_size, (read_heads + write_heads) * self.per_head
                              + write_heads * 2 * memory_width)

    def forward(self, h: torch.Tensor) -> HeadParameters:
        B = h.shape[0]
        H, M, S, W = self.R + self.W, self.M, self.S, self.W
        out = self.emit(h)                                                  # (B, H (M+S+3) + 2WM)
        addressing = out[:, :H * self.per_head].view(B, H, self.per_head)   # (B, H, M + S + 3)
        k, s, beta, g, gamma = addressing.split([M, S, 1, 1, 1], dim=-1)
        ea = out[:, H * self.per_head:].view(B, W, 2 * M)                   # (B, W, 2M)
        e, a = ea.split([M, M], dim=-1)
        return HeadParameters(keys=torch.tanh(k), beta=F.softplus(beta), gate=torch.sigmoid(g),
                              shift=torch.softmax(s, dim=-1), gamma=1 + F.softplus(gamma),
                              erase=torch.sigmoid(e), add=torch.tanh(a))
