r"""Tasks that need long memory, generated from a seed: the adding problem and copying memory.

**Adding problem**, two forms. Each step gives a pair (value, marker); two steps are marked, and
the target, read after the last step, depends only on the two marked values X1 and X2:

- ``form="modern"`` (Le et al. 2015, Arjovsky et al. 2016): T steps, values U(0, 1), one marker in
  each half, target X1 + X2, mean squared error. Always answering 1 (the mean of the target)
  scores the baseline MSE Var(X1 + X2) = 1/6.
- ``form="hochreiter"`` (Hochreiter and Schmidhuber 1997, experiment 4): a length drawn from
  [T, T + T/10], values U(-1, 1), markers 1 on X1 (one of the first 10 steps) and X2 (one of the
  first T/2 - 1 steps, not X1's), -1 on the first and last steps unless marked, 0 elsewhere; when
  X1 falls on the first step its value is set to 0; target 0.5 + (X1 + X2) / 4; a sequence counts
  as solved when the absolute error is below 0.04.

**Copying memory** (Arjovsky et al. 2016): 10 symbols drawn from 8 categories (1..8), then T - 1
blanks (0), the delimiter (9), and 10 blanks; the target is T + 10 blanks and then the 10 symbols.
A model that outputs the blank at the first T + 10 steps and guesses uniformly at the last 10
scores the baseline cross-entropy 10 log 8 / (T + 20) per step.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from ..errors import ConfigError, check_choice

ADDING_FORMS = ("modern", "hochreiter")
COPY_SYMBOLS, COPY_CATEGORIES, COPY_BLANK, COPY_DELIMITER = 10, 8, 0, 9


def adding_baseline_mse() -> float:
    """MSE of always answering 1 on the modern adding problem: Var(U + U') = 2/12."""
    return 1.0 / 6.0


def copy_baseline_loss(T: int) -> float:
    """Cross-entropy per step of the memoryless strategy on copying memory of delay T."""
    return COPY_SYMBOLS * math.log(COPY_CATEGORIES) / (T + 2 * COPY_SYMBOLS)


def check_length(T: int, least: int) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < least:
        raise ConfigError(f"length must be a whole number >= {least}, got {T!r}")


def adding_problem(n: int, T: int, form: str = "modern",
                   generator: Optional[torch.Generator] = None
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` sequences of the adding problem.

    Returns x (T_max, n, 2) float32 of (value, marker) pairs (zero-padded past each length),
    lengths (n,) int64, and targets (n,) float32.
    """
    check_choice("form", form, ADDING_FORMS)
    check_length(T, 4 if form == "modern" else 24)
    g = generator
    if form == "modern":
        x = torch.zeros(T, n, 2)
        x[:, :, 0] = torch.rand(T, n, generator=g)
        half = T // 2
        i1 = torch.randint(0, half, (n,), generator=g)
        i2 = torch.randint(half, T, (n,), generator=g)
        cols = torch.arange(n)
        x[i1, cols, 1] = 1.0
        x[i2, cols, 1] = 1.0
        y = x[i1, cols, 0] + x[i2, cols, 0]
        return x, torch.full((n,), T, dtype=torch.long), y
    lengths = torch.randint(T, T + T // 10 + 1, (n,), generator=g)
    x = torch.zeros(int(lengths.max()), n, 2)
    y = torch.empty(n)
    for b in range(n):
        L = int(lengths[b])
        x[:L, b, 0] = torch.rand(L, generator=g) * 2 - 1
        i1 = int(torch.randint(0, 10, (1,), generator=g))
        i2 = i1
        while i2 == i1:
            i2 = int(torch.randint(0, T // 2 - 1, (1,), generator=g))
        x[0, b, 1] = x[L - 1, b, 1] = -1.0
        x[i1, b, 1] = x[i2, b, 1] = 1.0
        if i1 == 0:
            x[0, b, 0] = 0.0
        y[b] = 0.5 + (x[i1, b, 0] + x[i2, b, 0]) / 4
    return x, lengths, y


def copy_task(n: int, T: int, generator: Optional[torch.Generator] = None
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences of copying memory with delay T: inputs and targets, (T + 20, n) int64,
    symbols 0 (blank), 1..8 (data), 9 (delimiter)."""
    check_length(T, 1)
    S = COPY_SYMBOLS
    data = torch.randint(1, COPY_CATEGORIES + 1, (S, n), generator=generator)   # (10, n)
    x = torch.full((T + 2 * S, n), COPY_BLANK, dtype=torch.long)
    y = torch.full((T + 2 * S, n), COPY_BLANK, dtype=torch.long)
    x[:S] = data
    x[S + T - 1] = COPY_DELIMITER
    y[T + S:] = data
    return x, y
