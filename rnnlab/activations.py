"""Element-wise activations and their derivatives, written from the activation's output.

For a hand-written backward the derivative is cheapest from the value the forward already saved:

    tanh:     a = tanh(z),      da/dz = 1 - a^2
    sigmoid:  a = sigma(z),     da/dz = a (1 - a)
    relu:     a = max(z, 0),    da/dz = [a > 0]
    identity: a = z,            da/dz = 1
"""
from __future__ import annotations

import torch

ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")


def check_activation(name: str, allowed=ACTIVATIONS) -> str:
    """Return ``name`` if it is a known activation, else raise one clear error."""
    if name not in allowed:
        raise ValueError(f"nonlinearity must be one of {', '.join(map(repr, allowed))}, got {name!r}")
    return name


def activate(name: str, z: torch.Tensor, out=None) -> torch.Tensor:
    """a = act(z), written into ``out`` when given (no autograd)."""
    if name == "tanh":
        return torch.tanh(z, out=out)
    if name == "sigmoid":
        return torch.sigmoid(z, out=out)
    if name == "relu":
        return torch.clamp(z, min=0, out=out) if out is not None else torch.relu(z)
    return z if out is None else out.copy_(z)


def activate_backward(name: str, a: torch.Tensor, da: torch.Tensor) -> torch.Tensor:
    """dz = da * act'(z), with act'(z) written from the output a = act(z)."""
    if name == "tanh":
        return da * (1 - a * a)
    if name == "sigmoid":
        return da * a * (1 - a)
    if name == "relu":
        return da * (a > 0).to(da.dtype)
    return da
