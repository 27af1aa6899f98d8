r"""How far back the gradient reaches: the norm of dL/dh_k against the lag n - k.

For a loss L read at the last step n, backpropagation through time carries the gradient back
through the product of the step Jacobians (the notes' vanishing and exploding gradients):

    dL/dh_k = dL/dh_n  prod_{t=k+1..n} dh_t/dh_{t-1}

A vanilla tanh RNN multiplies by diag(tanh'(a_t)) W_hh at every step, so the norm of dL/dh_k
falls (or grows) about geometrically with the lag n - k; the LSTM's cell state carries it through
C_t = f_t C_{t-1} + ..., scaled only by the forget gates.

The gradients are the ``bptt`` engine's own: its backward keeps dL/dstate_t of every step while
:func:`rnnlab.engines.bptt.record_state_gradients` is open.

Shapes: the recorded gradients are (T, B, S) per state tensor; the curves (T,) by lag 0..T-1.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import torch

from ..engines.bptt import record_state_gradients
from ..errors import ConfigError


def state_gradients(layer, loss_fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    """dL/dh_t (T, B, H) of every step of ``layer``'s first cell (its first layer, forward
    direction), h the cell's output state, for the loss ``loss_fn()`` computes through the layer.
    The layer runs the ``bptt`` engine for the call, whatever its own engine.

    (A cell's other state tensors, the LSTM's C_t, are recorded as the gradient that reaches them
    from later steps, before the step's own h_t = o_t tanh(C_t) adds its part; h_t is a step's
    output and its gradient is total.)"""
    engine = layer.engine
    layer.engine = "bptt"
    try:
        with record_state_gradients() as record:
            loss = loss_fn()
            loss.backward()
    finally:
        layer.engine = engine
    first = layer.cells[0]
    found = [grads for cell, grads in record if cell is first]
    if not found:
        raise ConfigError("the loss does not reach the recurrent layer's states: no gradient to show")
    return found[-1][first.output_state]


def norms_by_lag(grad: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """grad (T, B, S) -> (T,): at lag l, the mean over sequences of ||dL/dh_{n_b - l}||, n_b the
    last step of sequence b (its length, or T); sequences shorter than l + 1 are left out (NaN
    where none is long enough)."""
    T, B, _ = grad.shape
    norms = grad.norm(dim=-1)                                            # (T, B)
    if lengths is None:
        return norms.flip(0).mean(1)
    lags = torch.arange(T).unsqueeze(1)                                  # (T, 1)
    index = lengths.view(1, B) - 1 - lags                                # (T, B) step at each lag
    valid = index >= 0
    aligned = norms.gather(0, index.clamp(min=0)) * valid                # (T, B)
    count = valid.sum(1)
    return torch.where(count > 0, aligned.sum(1) / count.clamp(min=1), torch.full((T,), math.nan))


def decay_rate(curve: torch.Tensor, skip: int = 1) -> Tuple[float, float]:
    """(factor per step, lag at which the norm falls below 1e-6 of its lag-0 value, or inf): the
    factor is exp of the least-squares slope of log ||dL/dh|| against the lag, from lag ``skip``
    on (the first steps see the output layer's own transient)."""
    c = curve.double()
    ok = torch.isfinite(c) & (c > 0)
    ok[:skip] = False
    lags = torch.arange(len(c), dtype=torch.float64)[ok]
    logs = c[ok].log()
    if len(lags) < 2:
        return math.nan, math.inf
    slope = float(((lags - lags.mean()) * (logs - logs.mean())).sum() / ((lags - lags.mean()) ** 2).sum())
    below = (c < 1e-6 * c[0]).nonzero()
    return math.exp(slope), (float(below[0, 0]) if len(below) else math.inf)
