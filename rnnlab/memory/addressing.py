r"""The addressing of a Neural Turing Machine (Graves, Wayne and Danihelka 2014, section 3.3):
how a head turns the controller's emissions into a weighting over the N memory locations.

For one head at step t, with the previous weighting w_{t-1} and memory M_t:

.. math::
    K(u, v) &= \frac{u \cdot v}{\sqrt{\lVert u\rVert^2 \lVert v\rVert^2 + \epsilon^2}}
        && \text{cosine similarity} \\
    w^c_t(i) &= \frac{\exp(\beta_t K(k_t, M_t(i)))}{\sum_j \exp(\beta_t K(k_t, M_t(j)))}
        && \text{content addressing} \\
    w^g_t &= g_t w^c_t + (1 - g_t) w_{t-1}
        && \text{interpolation} \\
    \tilde w_t(i) &= \sum_{j=0}^{N-1} w^g_t(j)\, s_t(i - j \bmod N)
        && \text{circular convolution (location addressing)} \\
    w_t(i) &= \frac{(\tilde w_t(i) + \epsilon_s)^{\gamma_t}}{\sum_j (\tilde w_t(j) + \epsilon_s)^{\gamma_t}}
        && \text{sharpening}

Legend: M_t(i) the i-th row (location) of the memory, M wide; k_t the key (M,); beta_t >= 0 the
key strength; g_t in [0, 1] the interpolation gate; s_t a distribution over the allowed shifts
(e.g. -1, 0, +1), s_t(d) the weight of shifting by d (0 for shifts not allowed); gamma_t >= 1 the
sharpening exponent.

Numerics. The epsilon inside the square root keeps K and its gradient finite when a key or a row
is zero (a plain ``max(|u||v|, eps)`` has the infinite gradient of |u| at 0). Sharpening is
computed as ``softmax(gamma * log(w~ + eps_s))``, which equals the fraction above but never forms
``0 ** gamma`` (whose derivative in gamma, ``w ** gamma * log w``, is 0 * -inf = nan) and never
overflows.

Every function takes a head dimension: weightings are (B, H, N) for B sequences and H heads, keys
(B, H, M), scalars (B, H, 1), memory (B, N, M). Addressing all heads of a machine at once is one
batched matrix product instead of one per head.
"""
from __future__ import annotations

from typing import Sequence

import torch

#: epsilon of the cosine similarity (inside the square root, squared)
COSINE_EPS = 1e-8
#: epsilon added to the weights before sharpening
SHARPEN_EPS = 1e-12


def cosine_similarity(memory: torch.Tensor, keys: torch.Tensor, eps: float = COSINE_EPS) -> torch.Tensor:
    """K(k_h, M(i)) for every head h and location i: memory (B, N, M), keys (B, H, M) -> (B, H, N)."""
    dots = torch.bmm(keys, memory.transpose(1, 2))                          # (B, H, N)
    key_sq = (keys * keys).sum(-1, keepdim=True)                            # (B, H, 1)
    row_sq = (memory * memory).sum(-1).unsqueeze(1)                         # (B, 1, N)
    return dots / torch.sqrt(key_sq * row_sq + eps * eps)                   # (B, H, N)


def content_weighting(memory: torch.Tensor, keys: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """w^c = softmax_i(beta K(k, M(i))): memory (B, N, M), keys (B, H, M), beta (B, H, 1) ->
    (B, H, N)."""
    return torch.softmax(beta * cosine_similarity(memory, keys), dim=-1)    # (B, H, N)


def interpolate(w_content: torch.Tensor, w_prev: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """w^g = g w^c + (1 - g) w_{t-1}: weightings (B, H, N), gate (B, H, 1) -> (B, H, N)."""
    return gate * w_content + (1 - gate) * w_prev


def circular_shift(w: torch.Tensor, shift: torch.Tensor, shifts: Sequence[int]) -> torch.Tensor:
    """w~(i) = sum_j w(j) s(i - j mod N), where ``shift[..., k]`` is s(shifts[k]) and s is zero
    at every other offset: w (B, H, N), shift (B, H, S), S = len(shifts) -> (B, H, N).

    Only the allowed offsets d contribute, w(i - d) with weight s(d), so the sum is taken over them
    on w padded circularly by D = max |d| on each side: ``padded[D + i - d] = w(i - d mod N)``.
    A positive shift moves the focus to higher addresses.
    """
    if shift.shape[-1] != len(shifts):
        raise ValueError(f"expected a shift distribution over {len(shifts)} offsets {tuple(shifts)}, "
                         f"got {shift.shape[-1]}")
    N, D = w.shape[-1], max(abs(d) for d in shifts)
    padded = torch.cat([w[..., N - D:], w, w[..., :D]], dim=-1) if D else w  # (B, H, N + 2D)
    out = None
    for k, d in enumerate(shifts):
        term = shift[..., k:k + 1] * padded[..., D - d:D - d + N]             # (B, H, N)
        out = term if out is None else out + term
    return out


def sharpen(w: torch.Tensor, gamma: torch.Tensor, eps: float = SHARPEN_EPS) -> torch.Tensor:
    """w(i) = (w~(i) + eps)^gamma / sum_j (w~(j) + eps)^gamma: w (B, H, N), gamma (B, H, 1) >= 1
    -> (B, H, N)."""
    return torch.softmax(gamma * torch.log(w + eps), dim=-1)                 # (B, H, N)


def address(memory: torch.Tensor, w_prev: torch.Tensor, keys: torch.Tensor, beta: torch.Tensor,
            gate: torch.Tensor, shift: torch.Tensor, gamma: torch.Tensor,
            shifts: Sequence[int]) -> torch.Tensor:
    """The four steps of the module docstring in order: content, interpolation, shift, sharpening.

    memory (B, N, M); w_prev (B, H, N); keys (B, H, M); beta, gate, gamma (B, H, 1);
    shift (B, H, S) -> w_t (B, H, N).
    """
    w = content_weighting(memory, keys, beta)
    w = interpolate(w, w_prev, gate)
    w = circular_shift(w, shift, shifts)
    return sharpen(w, gamma)


def read(memory: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """r_h = sum_i w_h(i) M(i) (r = w^T M): memory (B, N, M), w (B, H, N) -> (B, H, M)."""
    return torch.bmm(w, memory)                                               # (B, H, M)


def write(memory: torch.Tensor, w: torch.Tensor, erase: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    r"""Erase, then add, for every write head h in turn folded into one product:

    .. math::
        \tilde M(i) = M(i) \odot \prod_h (1 - w_h(i) e_h), \qquad
        M'(i) = \tilde M(i) + \sum_h w_h(i) a_h

    (with one head, M' = M (1 - w e^T) + w a^T). memory (B, N, M); w (B, H, N); erase e in [0, 1]
    and add a, (B, H, M) -> (B, N, M).
    """
    if w.shape[1] == 1:                                                     # one head: two outer products
        w_col = w.transpose(1, 2)                                           # (B, N, 1)
        return memory * (1 - torch.bmm(w_col, erase)) + torch.bmm(w_col, add)  # (B, N, M)
    keep = 1 - w.unsqueeze(-1) * erase.unsqueeze(-2)                         # (B, H, N, M)
    return memory * keep.prod(dim=1) + torch.bmm(w.transpose(1, 2), add)     # (B, N, M)
