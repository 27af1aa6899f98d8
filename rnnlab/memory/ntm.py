r"""The Neural Turing Machine (Graves, Wayne and Danihelka 2014): a controller network that reads
from and writes to an external memory matrix through differentiable, soft-attention heads.

One step, with input x_t (I,), memory M_{t-1} (N, M), the previous read vectors r_{t-1} (R, M)
and the previous weightings of every head w_{t-1}:

.. math::
    h_t, c_t &= \mathrm{LSTM}([x_t; r_{t-1}], (h_{t-1}, c_{t-1}))
        && \text{controller (or } h_t = \tanh(W_c [x_t; r_{t-1}] + b_c)\text{, feed-forward)} \\
    (k, \beta, g, s, \gamma, e, a)_t &= \mathrm{heads}(h_t)
        && \text{(rnnlab.memory.heads)} \\
    w^h_t &= \mathrm{address}(M_{t-1}, w^h_{t-1}, k^h_t, \beta^h_t, g^h_t, s^h_t, \gamma^h_t)
        && \text{every head (rnnlab.memory.addressing)} \\
    r^h_t &= \textstyle\sum_i w^h_t(i) M_{t-1}(i)  && \text{read heads: } r = w^T M \\
    M_t &= M_{t-1} \odot (1 - w^{wr}_t e_t^T) + w^{wr}_t a_t^T
        && \text{write head: erase, then add} \\
    y_t &= W_y [h_t; r_t] + b_y    && \text{output logits; } \sigma(y_t) \text{ the bits}

Legend: N memory locations of width M; R read heads and W write heads (the write equation for
several write heads is in :func:`~rnnlab.memory.addressing.write`); [a; b] concatenation.
All heads address the memory as it was before the step's write, so their addressing is one
batched computation; the reads feed the step's output and the next step's controller.

Initial state (fixed, as the NTM replications found most reliable; Collier and Beel 2018): the
memory is the constant 1e-6 everywhere (small, nonzero so that cosine similarity is defined, and
equal in every row so no location is preferred by content); every head's weighting starts fully
on location 0, so that location addressing (shift, sharpen) has a focus to move from the first
step; the controller state is zero. The read vectors r_0 are learned (``initial_read``).

Shapes, time-first as rnnlab's layers: x (T, B, I) -> logits (T, B, O). State
:class:`NTMState`: controller (h, c), each (B, C) (empty for the feed-forward controller);
memory (B, N, M); reads (B, R, M); weights (B, R + W, N), read heads first.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import torch
from torch import nn

from .. import compiler
from ..cells import LSTMCell
from ..errors import ConfigError
from . import addressing
from .heads import Heads

CONTROLLERS = ("lstm", "feedforward")
#: the constant of the initial memory
MEMORY_INIT = 1e-6


class NTMState(NamedTuple):
    controller: Tuple[torch.Tensor, ...]   # (h, c), each (B, C); () for a feed-forward controller
    memory: torch.Tensor                   # (B, N, M)
    reads: torch.Tensor                    # (B, R, M)
    weights: torch.Tensor                  # (B, R + W, N), read heads first


class NTMCell(nn.Module):
    """One step of a Neural Turing Machine; the equations are in the module docstring.

    Args:
        input_size: I. output_size: O, the number of output logits.
        controller_size: C, the controller's units. controller: ``"lstm"`` (an rnnlab
            :class:`~rnnlab.cells.LSTMCell`) or ``"feedforward"`` (one tanh layer).
        memory_size: N, locations. memory_width: M, the width of a location.
        read_heads: R. write_heads: W. shifts: the allowed shifts of location addressing.

    Parameters: ``controller.*`` (an LSTMCell of input I + R M, hidden C; or ``weight`` (C, I + R M),
    ``bias`` (C,)); ``heads.emit.*`` (:class:`~rnnlab.memory.heads.Heads`); ``output.weight``
    (O, C + R M), ``output.bias`` (O,); ``initial_read`` (R, M).

    Call: ``cell(x_t (B, I), state or None) -> (y_t (B, O), NTMState)``.
    """

    def __init__(self, input_size: int, output_size: int, controller_size: int = 100,
                 memory_size: int = 128, memory_width: int = 20, read_heads: int = 1,
                 write_heads: int = 1, shifts: Sequence[int] = (-1, 0, 1), controller: str = "lstm"):
        super().__init__()
        for name, value in (("input_size", input_size), ("output_size", output_size),
                            ("controller_size", controller_size), ("memory_size", memory_size),
                            ("memory_width", memory_width), ("read_heads", read_heads),
                            ("write_heads", write_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if controller not in CONTROLLERS:
            raise ConfigError(f"controller takes one of {', '.join(map(repr, CONTROLLERS))}; got {controller!r}")
        shifts = tuple(int(d) for d in shifts)
        if not shifts or len(set(shifts)) != len(shifts) or any(abs(d) >= memory_size for d in shifts):
            raise ConfigError(f"shifts must be distinct offsets with |d| < memory_size {memory_size}, "
                              f"got {shifts}")
        self.I, self.O, self.C = input_size, output_size, controller_size
        self.N, self.M, self.R, self.W = memory_size, memory_width, read_heads, write_heads
        self.shifts = shifts
        self.controller_kind = controller
        inputs = input_size + read_heads * memory_width
        if controller == "lstm":
            self.controller = LSTMCell(inputs, controller_size)
        else:
            self.controller = nn.Linear(inputs, controller_size)
        self.heads = Heads(controller_size, memory_width, read_heads, write_heads, len(shifts))
        self.output = nn.Linear(controller_size + read_heads * memory_width, output_size)
        self.initial_read = nn.Parameter(torch.randn(read_heads, memory_width) * 0.01)

    def initial_state(self, batch: int, like: torch.Tensor) -> NTMState:
        """The fixed initial state of the module docstring, for ``batch`` sequences."""
        B, f = batch, dict(dtype=like.dtype, device=like.device)
        controller = (torch.zeros(B, self.C, **f), torch.zeros(B, self.C, **f)) \
            if self.controller_kind == "lstm" else ()
        memory = torch.full((B, self.N, self.M), MEMORY_INIT, **f)             # (B, N, M)
        reads = self.initial_read.to(like.dtype).expand(B, self.R, self.M)      # (B, R, M)
        weights = torch.zeros(B, self.R + self.W, self.N, **f)                  # (B, R + W, N)
        weights[:, :, 0] = 1.0
        return NTMState(controller, memory, reads, weights)

    def forward(self, x: torch.Tensor, state: Optional[NTMState] = None) -> Tuple[torch.Tensor, NTMState]:
        if x.dim() != 2 or x.shape[1] != self.I:
            raise ValueError(f"NTMCell expected input of shape (B, {self.I}), got {tuple(x.shape)}")
        B = x.shape[0]
        if state is None:
            state = self.initial_state(B, x)
        controller_in = torch.cat([x, state.reads.reshape(B, self.R * self.M)], dim=1)  # (B, I + RM)
        if self.controller_kind == "lstm":
            h, controller = self.controller(controller_in, state.controller)    # (B, C)
        else:
            h, controller = torch.tanh(self.controller(controller_in)), ()      # (B, C)
        p = self.heads(h)
        weights = addressing.address(state.memory, state.weights, p.keys, p.beta, p.gate,
                                     p.shift, p.gamma, self.shifts)              # (B, R + W, N)
        reads = addressing.read(state.memory, weights[:, :self.R])              # (B, R, M)
        memory = addressing.write(state.memory, weights[:, self.R:], p.erase, p.add)  # (B, N, M)
        y = self.output(torch.cat([h, reads.reshape(B, self.R * self.M)], dim=1))     # (B, O)
        return y, NTMState(tuple(controller), memory, reads, weights)


class NTM(nn.Module):
    """A Neural Turing Machine run over a sequence: :class:`NTMCell` (same arguments) in a loop
    over time, autograd for the backward.

    Call: ``ntm(x (T, B, I), state=None, record=False) -> (logits (T, B, O), state)``; with
    ``record=True`` a third result, the weightings of every step (T, B, R + W, N), read heads first.
    """

    def __init__(self, input_size: int, output_size: int, **options):
        super().__init__()
        self.cell = NTMCell(input_size, output_size, **options)

    def forward(self, x: torch.Tensor, state: Optional[NTMState] = None, record: bool = False):
        if x.dim() != 3 or x.shape[2] != self.cell.I:
            raise ValueError(f"NTM expected input of shape (T, B, {self.cell.I}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("NTM expected at least one time step, got an empty sequence")
        if state is None:
            state = self.cell.initial_state(x.shape[1], x)
        k = len(state.controller)

        def step(carry, x_t):
            y, new = self.cell(x_t, NTMState(tuple(carry[:k]), *carry[k:]))
            return (*new.controller, *new[1:]), (y, new.weights.clone()) if record else y

        # (fresh tensors: a scan's carry may not alias its start, an expanded view among them)
        carry, out = compiler.loop(step, tuple(s.clone() for s in (*state.controller, *state[1:])), x)
        state = NTMState(tuple(carry[:k]), *carry[k:])                        # out: (T, B, O)
        return (out[0], state, out[1]) if record else (out, state)

