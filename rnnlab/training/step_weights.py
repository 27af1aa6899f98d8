r"""Per-step loss weights: the notes' sequence divergence with a weight w_t at every step,

.. math::
    Div(Y_{target}(1..T), Y(1..T)) = \sum_t w_t \, Div(Y_{target}(t), Y(t)),
    \qquad \nabla_{Y(t)} Div = w_t \, \nabla_{Y(t)} Div(Y_{target}(t), Y(t)).

``--step-weights`` (:attr:`TrainConfig.step_weights`) gives the w_t of a sequence's steps
t = 1, 2, ..., counted from the first step that has a loss (for the language model: the first
loss step of each truncated-BPTT window):

- ``[]`` (the default) or any list of ones: every w_t = 1, the plain sum; the tasks then compute
  exactly what they compute without weights (the same operations, the same bits);
- numbers ``w_1 w_2 .. w_n``: step t weighs w_t, and every step after the n-th weighs w_n
  (``0 0 1``: the first two predictions of every sequence do not count);
- ``linear``: w_t = t / n for a sequence of n loss steps (later steps count more, the last 1);
- ``last``: w_n = 1 and every other w_t = 0 (only the final prediction counts).

Weights are finite, >= 0 and not all zero. Only training is weighted: validation, test and every
figure ``rnnlab evaluate`` prints stay unweighted, so runs with different weights compare.

What a task does with them (:func:`weigh`): from the per-step divergences Div_{t,b} (T, B) of a
batch (zero at padded steps), the objective is the task's own normaliser N_task (the streams,
the words, the values, as without weights) applied to the weighted sum,

    objective = sum_{t,b} w_{t,b} Div_{t,b} / N_task,

so each step's gradient is w_t times its unweighted one, as the equation says. The training loss
the trainer logs is the weighted mean, sum w Div / sum w over the real steps (the plain mean when
every w_t = 1; a batch whose real steps all weigh 0 logs its plain mean); the count (tokens/s,
the summary's tokens) stays the number of predictions made.
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import torch

from ..errors import ConfigError

#: the weightings with a name (each its own w_t rule, see the module docstring)
NAMED_WEIGHTS = ("linear", "last")


def check_step_weights(spec: Any) -> List[Any]:
    """The canonical form of a user's weights: [] (all ones), a list of floats, or [name].

    Accepts a list of numbers or of strings of numbers (the command line's ``--step-weights 0 0 1``),
    a name (``"linear"``) or a one-item list of it; anything else is a one-line ConfigError."""
    if isinstance(spec, str):
        spec = [spec]
    if spec is None:
        return []
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        spec = [spec]
    if not isinstance(spec, (list, tuple)):
        raise ConfigError(f"step_weights takes numbers w_1 .. w_n or one of {', '.join(NAMED_WEIGHTS)}; "
                          f"got {spec!r}")
    spec = list(spec)
    if len(spec) == 1 and isinstance(spec[0], str) and spec[0].strip().lower() in NAMED_WEIGHTS:
        return [spec[0].strip().lower()]
    values = []
    for v in spec:
        try:
            if isinstance(v, bool):
                raise ValueError
            value = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"step_weights takes numbers w_1 .. w_n or one of "
                              f"{', '.join(NAMED_WEIGHTS)} alone; got {v!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"step_weights must be finite and >= 0, got {v!r}")
        values.append(value)
    if values and not any(values):
        raise ConfigError(f"step_weights are all zero ({' '.join(map(str, spec))}): no step would "
                          f"count; give at least one w_t > 0")
    return values


def all_ones(spec: List[Any]) -> bool:
    """Whether ``spec`` (canonical) weighs every step 1: the unweighted divergence."""
    return all(not isinstance(v, str) and v == 1.0 for v in spec)


def step_weights(spec: List[Any], T: int, lengths: Optional[torch.Tensor] = None,
                 like: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
    """w_t of steps t = 1..T, (T, 1), or (T, B) when they depend on each sequence's ``lengths``
    (B,) (``linear``, ``last``); None when every w_t is 1 (the caller computes the plain sum).
    Steps past a sequence's length get w = 0 under the named forms (their divergence is zero
    anyway). ``like``: the dtype and device of the result (float32 on the CPU by default)."""
    spec = check_step_weights(spec)
    if all_ones(spec):
        return None
    factory = {"dtype": like.dtype, "device": like.device} if like is not None else {"dtype": torch.float32}
    if spec and isinstance(spec[0], str):
        n = (torch.full((1,), T) if lengths is None else lengths).to(factory.get("device", "cpu"))
        t = torch.arange(1, T + 1, device=n.device, dtype=torch.float64)[:, None]    # (T, 1)
        n = n[None, :].to(torch.float64)                                    # (1, B)
        if spec[0] == "linear":
            w = torch.where(t <= n, t / n, torch.zeros((), dtype=n.dtype, device=n.device))
        else:  # "last"
            w = (t == n).double()
        return w.to(**factory)                                              # (T, B)
    values = torch.tensor(spec, **factory)
    index = torch.arange(T).clamp(max=len(spec) - 1).to(values.device)
    return values[index][:, None]                                           # (T, 1)


def weigh(div: torch.Tensor, weights: torch.Tensor,
          real: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, float]:
    """The weighted divergence of per-step divergences ``div`` (T, B) (zero at padded steps) and
    what the trainer logs for it: (sum_{t,b} w_{t,b} Div_{t,b}, a tensor to divide by the task's
    normaliser; the logged loss sum, sum w Div / sum_real w * (real steps), a float, so that the
    task's loss sum / count is the weighted mean). ``real`` (T, B) bool marks the real steps (all
    if None)."""
    weighted = (weights * div).sum()
    real = torch.ones_like(div, dtype=torch.bool) if real is None else real
    w_real = float(torch.where(real, weights.expand_as(div), torch.zeros((), dtype=div.dtype,
                                                                          device=div.device)).sum())
    n_real = int(real.sum())
    if w_real > 0:
        logged = float(weighted.detach()) * n_real / w_real
    else:
        logged = float(div.detach().sum())
    return weighted, logged
