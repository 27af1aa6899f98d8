r"""Digit strings spoken as noisy frames, generated from a seed: a task whose output order is known
but whose timing is not (the notes' order-synchronous, time-asynchronous structure, trained with
CTC, :mod:`rnnlab.ctc`).

A digit string d_1 .. d_n (n uniform in ``min_digits .. max_digits``, each digit uniform in 0..9)
is rendered as a sequence of F-dimensional frames:

    silence (0 .. max_gap frames)
    d_1 for u_1 frames, gap_1, d_2 for u_2 frames, gap_2, ..., d_n for u_n frames
    silence (0 .. max_gap frames)

- a digit's frame is its *prototype* p_d in R^F, a fixed random vector (entries N(0, 1), drawn
  once from the data seed, the same in every split), times an amplitude a ~ U(0.75, 1.25) drawn
  per occurrence;
- its duration u_i is uniform in ``min_duration .. max_duration`` frames, and is not given to the
  model;
- a silence frame is the zero vector; between two digits there is a gap of 1 .. ``max_gap``
  silence frames with probability ``gap_probability``, and always between two equal digits (without
  it, "7 7" would be one long 7);
- every frame gets Gaussian noise of standard deviation ``noise``.

The input is the frames, x (T, F); the target is the digit string. An example's length T varies
from 1 to max_digits * max_duration + (max_digits + 1) * max_gap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Sequence

import torch

from ..errors import ConfigError
from ..training.config import positive_int, positive_number

DIGITS = 10
AMPLITUDE = (0.75, 1.25)


@dataclass
class Rendering:
    """How digit strings become frames (module docstring)."""
    features: int = 8
    min_duration: int = 1
    max_duration: int = 5
    gap_probability: float = 0.3
    max_gap: int = 3
    noise: float = 0.8

    def check(self) -> "Rendering":
        positive_int("features", self.features)
        positive_int("min_duration", self.min_duration)
        positive_int("max_duration", self.max_duration)
        positive_int("max_gap", self.max_gap)
        positive_number("noise", self.noise, allow_zero=True)
        if self.max_duration < self.min_duration:
            raise ConfigError(f"max_duration must be >= min_duration {self.min_duration}, got {self.max_duration}")
        if not isinstance(self.gap_probability, (int, float)) or not 0 <= self.gap_probability <= 1:
            raise ConfigError(f"gap_probability must lie in [0, 1], got {self.gap_probability!r}")
        return self


class DigitExample(NamedTuple):
    x: torch.Tensor                    # (T, F) frames
    digits: List[int]                  # the target, digits 0..9 in order


def prototypes(features: int, generator: torch.Generator) -> torch.Tensor:
    """The digits' prototype frames (10, F), entries N(0, 1)."""
    return torch.randn(DIGITS, features, generator=generator)


def random_digits(n: int, min_digits: int, max_digits: int,
                  generator: Optional[torch.Generator] = None) -> List[List[int]]:
    """``n`` digit strings, lengths uniform in min_digits .. max_digits."""
    if not 0 <= min_digits <= max_digits:
        raise ConfigError(f"digit string lengths need 0 <= min_digits <= max_digits, got "
                          f"{min_digits} and {max_digits}")
    lengths = torch.randint(min_digits, max_digits + 1, (n,), generator=generator).tolist()
    return [torch.randint(0, DIGITS, (L,), generator=generator).tolist() for L in lengths]


def render(digits: Sequence[int], protos: torch.Tensor, r: Rendering,
           generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The frames (T, F) of one digit string (module docstring); T >= 1."""
    g = generator

    def draw(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    F = protos.shape[1]
    pieces = [torch.zeros(draw(0, r.max_gap), F)]                          # leading silence
    for i, d in enumerate(digits):
        if not 0 <= d < DIGITS:
            raise ConfigError(f"digits lie in 0..9, got {d}")
        if i:
            gap = float(torch.rand((), generator=g)) < r.gap_probability or digits[i - 1] == d
            pieces.append(torch.zeros(draw(1, r.max_gap) if gap else 0, F))
        amplitude = AMPLITUDE[0] + (AMPLITUDE[1] - AMPLITUDE[0]) * float(torch.rand((), generator=g))
        pieces.append((amplitude * protos[d]).expand(draw(r.min_duration, r.max_duration), F))
    pieces.append(torch.zeros(draw(0, r.max_gap), F))                       # trailing silence
    x = torch.cat(pieces)                                                  # (T, F)
    if len(x) == 0:
        x = torch.zeros(1, F)
    return x + r.noise * torch.randn(x.shape, generator=g)


def digit_examples(digit_strings: Sequence[Sequence[int]], protos: torch.Tensor, r: Rendering,
                   generator: Optional[torch.Generator] = None) -> List[DigitExample]:
    """Each digit string rendered: (frames, digits) examples."""
    return [DigitExample(render(d, protos, r, generator), list(d)) for d in digit_strings]
