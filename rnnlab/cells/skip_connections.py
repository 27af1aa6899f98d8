r"""Skip connections through time: every gate also reads the state d steps back.

The notes' coarse time scale by "direct connections from variables in the distant past to
variables in the present": for any cell, the pre-activation of every gate gets one more term,

.. math::
    z_t = W_{ih} x_t + b + W_{hh} h_{t-1} + W_{skip} h_{t-d}

so that a gradient reaches h_{t-d} from h_t through one Jacobian instead of a product of d, and
the loss at step n reaches step k through about (n - k) / d factors. ``W_skip`` (G*H, H) has one
H x H block per gate block of ``weight_hh``, in the same order (for the GRU in torch's form the
candidate block adds to the input part of the candidate's pre-activation, outside the reset gate).

The cell keeps the d most recent outputs in a delay line, one more state tensor:

    D_{t-1} = [h_{t-1}, h_{t-2}, ..., h_{t-d}]                    (B, d*H), newest first
    xw'_t   = xw_t + h_{t-d} W_skip^T                             h_{t-d} = D_{t-1}'s last slot
    state_t = cell.step(xw'_t, state_{t-1})                        the wrapped cell, unchanged
    D_t     = [h_t, h_{t-1}, ..., h_{t-d+1}]                      shift in h_t, drop h_{t-d}

Before the first step the delay line is the initial state's ``delay`` tensor (zeros by default:
h_{1-d} .. h_0 = 0). The step's derivative, beside the wrapped cell's own:

    dL/dh_t        += dL/dD_t[0]                   D_t's first slot is h_t
    dL/dD_{t-1}[j]  = dL/dD_t[j + 1]               j = 0 .. d-2, the shift
    dL/dD_{t-1}[d-1] = dL/dxw'_t W_skip            the skip term (dL/dxw'_t = dL/dxw_t)
    dL/dW_skip      = sum_t (dL/dxw_t)^T h_{t-d}   one product over all steps

Because the delay line is an ordinary state tensor, every engine (``bptt``, ``loop``), variable
lengths (the delay line is carried through padding with the rest of the state), bidirectional and
multi-layer stacking, truncated BPTT (the delay line is carried across chunks) and the initial
state ``hx`` work unchanged. torch has no fused kernel for it: ``native`` refuses it.

:func:`with_skip_connections` makes the skip-connected class of any cell class; the layers take
``skip_steps=d`` (:class:`rnnlab.layers.RecurrentLayer`).

Shapes: state (..., h, ...) as the wrapped cell, plus ``delay`` (B, d*H). Parameters: the
wrapped cell's, plus ``weight_skip`` (G*H, H), initialised like ``weight_hh`` (under ``rnnlab``
each H x H block orthogonal; under ``torch`` U(-1/sqrt(H), 1/sqrt(H))).
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch

from ..linalg import addmm, mm, outer_sum
from .cell import RecurrentCell, check_size

#: the name of the delay line among a skip-connected cell's states
DELAY = "delay"

_CLASSES: Dict[type, type] = {}


class SkipConnections:
    """The skip connections of the module docstring, mixed in before a cell class (see
    :func:`with_skip_connections`); ``skip_steps`` is d."""

    # the wrapped step keeps what it saves in its own tensors (xw'_t is a new tensor each step)
    grad_in_xw = False

    def __init__(self, input_size: int, hidden_size: int, *args, skip_steps: int, **kwargs):
        self.skip_steps = check_size("skip_steps", skip_steps)
        super().__init__(input_size, hidden_size, *args, **kwargs)
        self.native_mode = None  # no torch kernel has the skip term

    @property
    def writes_out(self) -> bool:
        """Whether ``step`` takes ``out=``: when the wrapped cell's does."""
        return super().writes_out

    # ------------------------------------------------------------------ shapes
    @property
    def state_names(self) -> Tuple[str, ...]:
        return super().state_names + (DELAY,)

    @property
    def state_sizes(self) -> Tuple[int, ...]:
        own = self._own_state_sizes()
        return own + (self.skip_steps * own[self.output_state],)

    def _own_state_sizes(self) -> Tuple[int, ...]:
        # the wrapped cell's sizes (a base that sizes every name in state_names sizes one more)
        return super().state_sizes[:len(super().state_names)]

    @property
    def skipped_size(self) -> int:
        """H, the width of the state the skip connections read (the cell's output)."""
        return self._own_state_sizes()[self.output_state]

    def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        shapes, out = super().parameter_shapes(), {}
        G_H = shapes["weight_hh"][0]
        for name, shape in shapes.items():     # weight_skip after weight_hh: weights, then biases
            out[name] = shape
            if name == "weight_hh":
                out["weight_skip"] = (G_H, self.skipped_size)
        return out

    def extra_repr(self) -> str:
        return super().extra_repr() + f", skip_steps={self.skip_steps}"

    # ------------------------------------------------------------------ the step
    def step(self, p, xw, state, out=None):
        """xw'_t = xw_t + h_{t-d} W_skip^T, the wrapped step, then the delay line shifted (with
        ``out``, the bptt engine's buffers, written in place)."""
        *inner, delay = state
        H, d = self.skipped_size, self.skip_steps
        xw = addmm(xw, delay[:, (d - 1) * H:], p["weight_skip"].t())          # (B, G*H), a new tensor
        if out is None:
            new, saved = super().step(p, xw, tuple(inner))
            h = new[self.output_state]                                        # (B, H)
            return tuple(new) + (torch.cat((h, delay[:, :(d - 1) * H]), dim=1),), saved
        new, saved = super().step(p, xw, tuple(inner), out=out[:-1])
        line = out[-1]                                                        # (B, d*H)
        line[:, :H].copy_(new[self.output_state])
        line[:, H:].copy_(delay[:, :(d - 1) * H])
        return tuple(new) + (line,), saved

    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """The module docstring's derivative: the delay line's first slot joins dL/dh_t, the
        wrapped cell's backward writes dL/dxw_t, the skip term goes to the last slot."""
        *d_inner, d_delay = d_new_state
        H = self.skipped_size
        o = self.output_state
        d_inner[o] = d_inner[o] + d_delay[:, :H]                              # D_t[0] = h_t
        d_prev, d_rec = super().step_backward(p, saved, state[:-1], new_state[:-1],
                                              tuple(d_inner), d_xw)
        d_back = mm(d_xw, p["weight_skip"])                                   # (B, H) dL/dh_{t-d}
        return tuple(d_prev) + (torch.cat((d_delay[:, H:], d_back), dim=1),), d_rec

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        """The wrapped cell's gradients, and dW_skip = sum_t dz_t^T h_{t-d}, one product."""
        grads = super().recurrent_grads(p, d_xw, d_rec, prev[:-1], new[:-1], saved)
        H, d = self.skipped_size, self.skip_steps
        grads["weight_skip"] = outer_sum(d_xw, prev[-1][..., (d - 1) * H:])
        return grads


def with_skip_connections(cell_class: type) -> type:
    """The skip-connected version of ``cell_class`` (one class per cell class, made once): a
    subclass, so it is still an instance of the cell it extends, taking ``skip_steps=d``."""
    if issubclass(cell_class, SkipConnections):
        return cell_class
    if not issubclass(cell_class, RecurrentCell):
        raise TypeError(f"skip connections wrap a RecurrentCell subclass, got {cell_class!r}")
    if cell_class not in _CLASSES:
        _CLASSES[cell_class] = type(f"Skip{cell_class.__name__}", (SkipConnections, cell_class),
                                    {"__doc__": f"{cell_class.__name__} with skip connections "
                                                f"through time (rnnlab.cells.skip_connections)."})
    return _CLASSES[cell_class]


def output_gradient(cell: RecurrentCell, state_grads: Tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The total dL/dh_t (T, B, H) of the cell's output from the ``bptt`` engine's recorded
    dL/dstate_t (:func:`rnnlab.engines.bptt.record_state_gradients`): the output state's own, plus,
    under skip connections, the delay line's first slot (D_t[0] is h_t, and the gradient the skip
    connection carries back reaches h_t there)."""
    own = state_grads[cell.output_state]
    if not isinstance(cell, SkipConnections):
        return own
    return own + state_grads[-1][..., :cell.skipped_size]
