"""Element-wise activations and their derivatives, written from the activation's output.

For a hand-written backward the derivative is cheapest from the value the forward already saved:

    tanh:     a = tanh(z),      da/dz = 1 - a^2
    sigmoid:  a = sigma(z),     da/dz = a (1 - a)
    relu:     a = max(z, 0),    da/dz = [a > 0]
    identity: a = z,            da/dz = 1
"""
from __future__ import annotations

import torch

_aten = torch.ops.aten

ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")


def check_activation(name: str, allowed=ACTIVATIONS, option: str = "nonlinearity") -> str:
    """Return ``name`` if it is a known activation, else raise one clear error naming ``option``."""
    if name not in allowed:
        raise ValueError(f"{option} must be one of {', '.join(map(repr, allowed))}, got {name!r}")
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


def activate_backward(name: str, a: torch.Tensor, da: torch.Tensor, out=None) -> torch.Tensor:
    """dz = da * act'(z), with act'(z) written from the output a = act(z); into ``out`` if given.

    One fused kernel each (aten's tanh_backward, sigmoid_backward, threshold_backward) rather
    than three element-wise ops: in a per-step backward this is much of the element-wise work.
    """
    if name == "tanh":
        return _aten.tanh_backward(da, a) if out is None else \
            _aten.tanh_backward.grad_input(da, a, grad_input=out)
    if name == "sigmoid":
        return _aten.sigmoid_backward(da, a) if out is None else \
            _aten.sigmoid_backward.grad_input(da, a, grad_input=out)
    if name == "relu":
        return _aten.threshold_backward(da, a, 0) if out is None else \
            _aten.threshold_backward.grad_input(da, a, 0, grad_input=out)
    return da if out is None else out.copy_(da)
