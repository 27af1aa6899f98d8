r"""The copy task of the Neural Turing Machine paper (Graves, Wayne and Danihelka 2014, section
4.1), generated from a seed.

A sequence of L random vectors of ``bits`` bits (each bit 0 or 1 with probability 1/2) is shown
one vector per step, followed by a delimiter on a channel of its own; during the next L steps the
input is zero and the target is the sequence again. With D = bits + 1 input channels:

    step t         0 .. L-1          L            L+1 .. 2L
    input x_t      (v_t, 0)          (0.., 1)     0
    target y_t     -                 -            v_{t-L-1}

so an example is T = 2L + 1 steps long, and only the last L carry a target (the mask). The cost is
the bit-wise cross-entropy over the output steps; a guess of 1/2 everywhere costs L * bits bits.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

from ..errors import ConfigError

BITS = 8


def check_lengths(lengths: Sequence[int]) -> None:
    for L in lengths:
        if isinstance(L, bool) or not isinstance(L, int) or L < 1:
            raise ConfigError(f"sequence lengths must be whole numbers >= 1, got {L!r}")


def copy_sequence(vectors: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The input (2L + 1, bits + 1) and target (L, bits) of one example from its vectors (L, bits)."""
    L, bits = vectors.shape
    x = torch.zeros(2 * L + 1, bits + 1)
    x[:L, :bits] = vectors
    x[L, bits] = 1.0                                                      # the delimiter
    return x, vectors.clone()


def random_vectors(n: int, lengths: Sequence[int], bits: int = BITS,
                   generator: Optional[torch.Generator] = None) -> list:
    """``n`` sequences of random bit vectors, sequence k of length ``lengths[k]``: a list of float
    tensors (L_k, bits) of zeros and ones."""
    check_lengths(lengths)
    if len(lengths) != n:
        raise ConfigError(f"expected {n} lengths, got {len(lengths)}")
    return [torch.randint(0, 2, (L, bits), generator=generator).float() for L in lengths]
