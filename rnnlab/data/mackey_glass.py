r"""The Mackey-Glass series: the chaotic benchmark of the echo state network papers.

The delay differential equation (Mackey & Glass 1977):

    dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x(t)

with beta = 0.2, gamma = 0.1, n = 10 and tau = 17 (mildly chaotic; tau > 16.8), from the constant
history x(t) = x0 for t in [-tau, 0].

Integration: classical fourth-order Runge-Kutta with step h = ``dt`` (0.1), tau / h steps of
history kept. The delayed term is needed at t - tau, t - tau + h/2 and t - tau + h: the two ends
are stored points, the midpoint the mean of its two neighbours (linear interpolation, exact to
O(h^2) inside an O(h^4) step; the usual choice for a fixed-step RK4 on a delay equation).

Sampling: the first ``transient`` time units are discarded, then x is read every ``sample_every``
(1.0) time units: ``samples`` values, x(transient), x(transient + 1), ... Pure Python floats, no
random numbers: the same arguments give the same series, bit for bit.
"""
from __future__ import annotations

from collections import deque

import torch

from ..errors import ConfigError


def _steps(name: str, span: float, dt: float) -> int:
    """span / dt as an integer, or a ConfigError if it is not one."""
    k = round(span / dt)
    if k < 0 or abs(k * dt - span) > 1e-9 * max(1.0, span):
        raise ConfigError(f"{name} must be a non-negative multiple of dt = {dt}, got {span}")
    return k


def mackey_glass(samples: int, tau: float = 17.0, beta: float = 0.2, gamma: float = 0.1,
                 n: float = 10.0, dt: float = 0.1, sample_every: float = 1.0,
                 transient: float = 1000.0, x0: float = 1.2) -> torch.Tensor:
    """``samples`` values of the Mackey-Glass series, float64, shape (samples,)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples must be an integer >= 1, got {samples!r}")
    if not dt > 0:
        raise ConfigError(f"dt must be > 0, got {dt}")
    if not tau > 0:
        raise ConfigError(f"tau must be > 0, got {tau}")
    d = _steps("tau", tau, dt)                           # delay in steps
    every = _steps("sample_every", sample_every, dt)
    if every < 1:
        raise ConfigError(f"sample_every must be at least dt = {dt}, got {sample_every}")
    skip = _steps("transient", transient, dt)

    def f(x: float, x_tau: float) -> float:
        return beta * x_tau / (1.0 + x_tau ** n) - gamma * x

    history = deque([x0] * (d + 1), maxlen=d + 1)        # x(t - tau) .. x(t), step dt apart
    x, out = x0, []
    total = skip + (samples - 1) * every
    for k in range(total + 1):
        if k >= skip and (k - skip) % every == 0:
            out.append(x)
        if k == total:
            break
        lag0, lag1 = history[0], history[1]              # x(t - tau), x(t - tau + h)
        lag_half = 0.5 * (lag0 + lag1)
        k1 = f(x, lag0)
        k2 = f(x + 0.5 * dt * k1, lag_half)
        k3 = f(x + 0.5 * dt * k2, lag_half)
        k4 = f(x + dt * k3, lag1)
        x = x + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        history.append(x)                                # drops x(t - tau)
    return torch.tensor(out, dtype=torch.float64)
