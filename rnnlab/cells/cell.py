"""The base of every recurrent cell: one time step, forward and backward side by side.

A cell is one step of a recurrence,

    (x_t, state_{t-1}) -> (output_t, state_t),

written once as a pure function of its parameters so that the three engines share it:

- ``loop`` runs :meth:`RecurrentCell.step` under autograd, one step after another (the reference);
- ``bptt`` runs the same :meth:`step` without autograd and then the cell's hand-written
  :meth:`step_backward` in reverse time, the notes' backpropagation through time;
- ``native`` hands the configurations torch has a fused kernel for to that kernel.

Every cell has an input weight ``weight_ih`` of shape ``(G*H, I)`` and, optionally, a bias
``bias_ih`` of shape ``(G*H,)``, where G is the number of gate blocks (4 for the LSTM, 3 for the
GRU, 1 for the vanilla RNN). The input projection of all time steps,

    xw_t = W_ih x_t + b,          xw: (T, B, G*H),

is one matrix product done by the engine before the time loop. ``b`` is :meth:`input_bias`:
``bias_ih`` alone, or ``bias_ih + bias_hh`` when the recurrent bias adds linearly too. The cell's
step receives ``xw_t`` and does everything else.

The contract a cell implements (``p`` is a dict of parameter tensors by name):

- ``step(p, xw_t, state) -> (new_state, saved)``: the forward equations. ``state`` and
  ``new_state`` are tuples of tensors, one per name in :attr:`state_names`; ``saved`` is a tuple of
  what the backward needs beyond the states before and after the step (the engine keeps these
  tensors as they are, so the cell must never modify one after it is saved). A cell that sets
  :attr:`writes_out` also accepts ``out=``, a tuple of buffers to write the new state into (the
  ``bptt`` engine passes them, sparing a copy per step).
- ``step_backward(p, saved, state, new_state, d_new_state, d_xw) -> (d_state, d_rec)``: the
  derivative of the step. It writes dL/d(xw_t) into ``d_xw`` (B, G*H) and returns dL/d(state_{t-1})
  and a tuple ``d_rec`` of per-step gradients the weight gradients need (often empty).
- ``recurrent_grads(p, d_xw, d_rec, prev, new, saved) -> dict``: the gradients of every parameter
  other than ``weight_ih``, from all steps at once (``d_xw`` (T, B, G*H), ``prev`` and ``new`` the
  state sequences before and after each step, each (T, B, S); ``d_rec[k]`` and ``saved[k]`` are
  item k of every step's ``d_rec`` / ``saved`` stacked over time, (T, ...)); each gradient is one
  matrix product or sum over all steps.

The recurrent matrix product W_hh h_{t-1} goes through :meth:`RecurrentCell.recurrent_product`
and :meth:`RecurrentCell.recurrent_product_grad` (and dW_hh reads :func:`recurrent_input`), so
that variational recurrent dropout (a mask ``p["recurrent_mask"]``) and layer normalisation
(:mod:`rnnlab.cells.layer_norm`) reach every cell; see :mod:`rnnlab.regularization`.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ..init import INIT_SCHEMES, init_parameter
from ..linalg import addmm, addmm_, mm

State = Tuple[torch.Tensor, ...]
Params = Dict[str, torch.Tensor]


def check_size(name: str, value) -> int:
    """A positive integer size, or one clear error."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class RecurrentCell(nn.Module):
    """One time step of a recurrent network; see the module docstring for the contract.

    Args:
        input_size: I, the number of features of x_t.
        hidden_size: H, the number of units.
        bias: if False, the cell has no ``bias_ih`` / ``bias_hh``.
        init: ``"rnnlab"`` (orthogonal recurrent weights, Glorot input weights, zero biases and
            forget-gate bias 1 where there is a forget gate) or ``"torch"`` (torch.nn's uniform
            U(-1/sqrt(H), 1/sqrt(H)) for every parameter).
    """

    #: G, the number of gate blocks in ``weight_ih`` / ``weight_hh``.
    gate_count: int = 1
    #: names of the state tensors, e.g. ("h",) or ("h", "c").
    state_names: Tuple[str, ...] = ("h",)
    #: which state tensor is the cell's output.
    output_state: int = 0
    #: the torch fused kernel that computes exactly this cell, or None (see engines/native.py).
    native_mode: Optional[str] = None
    #: True when ``bias_hh`` is folded into the input projection (it adds linearly to xw). A cell
    #: folding only part of it overrides :meth:`input_bias` and :meth:`bias_grads` instead.
    fold_bias_hh: bool = True
    #: True when ``step`` accepts ``out=``: buffers to write the new state into (bptt, no autograd).
    writes_out: bool = False
    #: True when, under ``out=``, ``step`` keeps what it saves in ``xw_t``'s storage and
    #: ``step_backward`` may be handed that same storage as ``d_xw`` (it reads before it writes).
    grad_in_xw: bool = False

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, init: str = "rnnlab",
                 device=None, dtype=None):
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        if init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {', '.join(map(repr, INIT_SCHEMES))}, got {init!r}")
        self.bias = bool(bias)
        self.init = init
        factory = {"device": device, "dtype": dtype}
        for name, shape in self.parameter_shapes().items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
        self.reset_parameters()

    # ------------------------------------------------------------------ parameters
    def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Name -> shape of every parameter, in torch.nn's order (weights, then biases)."""
        G, H, I = self.gate_count, self.hidden_size, self.input_size
        shapes = {"weight_ih": (G * H, I), "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        return shapes

    def reset_parameters(self) -> None:
        """(Re)initialise every parameter by ``self.init`` (see the class docstring)."""
        with torch.no_grad():
            for name, param in self._parameters.items():
                init_parameter(self, name, param, self.init)

    def init_bias(self, name: str, bias: torch.Tensor) -> None:
        """Set a bias under the ``rnnlab`` scheme (zero; gated cells override for the forget gate)."""
        bias.zero_()

    def init_extra(self, name: str, param: torch.Tensor) -> bool:
        """Initialise a cell-specific parameter (under any scheme: ``self.init`` says which);
        return False to leave it to the scheme's default."""
        return False

    def params(self) -> Params:
        """The parameters (and buffers, such as a fixed leak) the step functions read, by name."""
        return {**self._parameters, **self._buffers}

    @property
    def state_sizes(self) -> Tuple[int, ...]:
        """S_k, the width of each state tensor."""
        return (self.hidden_size,) * len(self.state_names)

    @property
    def output_size(self) -> int:
        return self.state_sizes[self.output_state]

    def input_bias(self, p: Params) -> Optional[torch.Tensor]:
        """b in xw_t = W_ih x_t + b: ``bias_ih`` (+ ``bias_hh`` when :attr:`fold_bias_hh`)."""
        b = p.get("bias_ih")
        if b is not None and self.fold_bias_hh:
            b = b + p["bias_hh"]
        return b

    def initial_state(self, batch: int, like: torch.Tensor) -> State:
        """The zero state, one (B, S_k) tensor per state name."""
        return tuple(like.new_zeros(batch, s) for s in self.state_sizes)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")

    # ------------------------------------------------------------------ the step
    def step(self, p: Params, xw: torch.Tensor, state: State) -> Tuple[State, State]:
        raise NotImplementedError

    def recurrent_product(self, p: Params, xw: Optional[torch.Tensor], h: torch.Tensor,
                          rows: Optional[slice] = None, inplace: bool = False) -> torch.Tensor:
        """xw + W_hh[rows] (m * h_{t-1}): the recurrent matrix product added to ``xw`` (B, R) (in
        place with ``inplace``; ``xw`` None: the product alone). ``rows`` picks a block of the rows
        of W_hh (all by default); m is the recurrent-dropout mask (:func:`recurrent_input`). Every
        cell computes its W_hh h_{t-1} here, and a wrapper that changes that term (layer
        normalisation, :mod:`rnnlab.cells.layer_norm`) overrides this and
        :meth:`recurrent_product_grad`."""
        W = p["weight_hh"] if rows is None else p["weight_hh"][rows]
        hd = recurrent_input(p, h)
        if xw is None:
            return mm(hd, W.t())
        return addmm_(xw, hd, W.t()) if inplace else addmm(xw, hd, W.t())

    def recurrent_product_grad(self, p: Params, base: Optional[torch.Tensor], dz: torch.Tensor,
                               rows: Optional[slice] = None) -> torch.Tensor:
        """dL/dh_{t-1} = base + m * (dz W_hh[rows]), dz = dL/d(the product's sum) (B, R); the
        derivative of :meth:`recurrent_product`."""
        W = p["weight_hh"] if rows is None else p["weight_hh"][rows]
        return add_recurrent_grad(p, base, dz, W)

    def step_backward(self, p: Params, saved: State, state: State, new_state: State,
                      d_new_state: State, d_xw: torch.Tensor) -> Tuple[State, State]:
        raise NotImplementedError

    def recurrent_grads(self, p: Params, d_xw: torch.Tensor, d_rec: State, prev: State,
                        new: State, saved: State) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    @property
    def block_names(self) -> Tuple[str, ...]:
        """A name for each of the G blocks of ``weight_hh``'s rows (the gate it feeds)."""
        return ("h",) if self.gate_count == 1 else tuple(f"block {k}" for k in range(self.gate_count))

    def gate_activations(self, saved: State) -> Dict[str, torch.Tensor]:
        """The gates of one step, by name, each (B, H) in (0, 1), read from the step's ``saved``
        (a cell without gates: none). For diagnostics: how often a gate saturates."""
        return {}

    def bias_grads(self, p: Params, d_xw: torch.Tensor) -> Dict[str, torch.Tensor]:
        """dL/d(bias_ih) (and dL/d(bias_hh) when folded): both are sum_t sum_b dL/d(xw_t)."""
        if "bias_ih" not in p:
            return {}
        db = d_xw.sum((0, 1))  # (G*H,)
        return {"bias_ih": db, "bias_hh": db} if self.fold_bias_hh else {"bias_ih": db}

    # ------------------------------------------------------------------ module call
    def forward(self, input: torch.Tensor, state=None):
        """One step: ``(x_t, state_{t-1}) -> (output_t, state_t)``.

        Shapes: ``input`` (B, I) or (I,); ``state`` a tensor (B, H) for one-state cells, a tuple of
        (B, S_k) tensors otherwise, or None for zeros. Returns ``(output (B, H_out), state)`` in the
        same form as the state was given.
        """
        unbatched = input.dim() == 1
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__} expected input of shape (B, {self.input_size}) "
                             f"or ({self.input_size},), got {tuple(input.shape)}")
        x = input.unsqueeze(0) if unbatched else input
        state = self._as_state_tuple(state, x, unbatched)
        p = self.params()
        xw = nn.functional.linear(x, p["weight_ih"], self.input_bias(p))  # (B, G*H)
        new_state, _ = self.step(p, xw, state)
        if unbatched:
            new_state = tuple(s.squeeze(0) for s in new_state)
        out = new_state[self.output_state]
        return out, (new_state[0] if len(new_state) == 1 else new_state)

    def _as_state_tuple(self, state, x: torch.Tensor, unbatched: bool) -> State:
        B = x.shape[0]
        if state is None:
            return self.initial_state(B, x)
        state = (state,) if torch.is_tensor(state) else tuple(state)
        if len(state) != len(self.state_names):
            raise ValueError(f"{type(self).__name__} expected a state of {len(self.state_names)} "
                             f"tensor(s) {self.state_names}, got {len(state)}")
        out = []
        for name, size, s in zip(self.state_names, self.state_sizes, state):
            s = s.unsqueeze(0) if unbatched else s
            if tuple(s.shape) != (B, size):
                raise ValueError(f"{type(self).__name__} expected state {name!r} of shape "
                                 f"{(B, size) if not unbatched else (size,)}, got {tuple(state[len(out)].shape)}")
            out.append(s)
        return tuple(out)


#: the key in a cell's ``p`` of the variational recurrent-dropout mask m (B, H), already scaled by
#: 1/(1 - p) (see :mod:`rnnlab.regularization`); absent when recurrent dropout is off
RECURRENT_MASK = "recurrent_mask"


def recurrent_input(p: Params, h: torch.Tensor) -> torch.Tensor:
    """h_{t-1} as it enters the recurrent matrix product: m * h_{t-1} under variational recurrent
    dropout (one mask m (B, H) per sequence, the same at every step), else h_{t-1} itself.
    Works for a whole sequence (T, B, H) too (the weight gradients' products)."""
    m = p.get(RECURRENT_MASK)
    return h if m is None else h * m


def add_recurrent_grad(p: Params, base: Optional[torch.Tensor], dz: torch.Tensor,
                       W: torch.Tensor) -> torch.Tensor:
    """dL/dh_{t-1} = base + m * (dz W): the recurrent product's part of the gradient, masked by
    the same m as the forward (``base`` None: the product's part alone)."""
    m = p.get(RECURRENT_MASK)
    if m is None:
        return mm(dz, W) if base is None else addmm(base, dz, W)
    return mm(dz, W) * m if base is None else torch.addcmul(base, mm(dz, W), m)


def glorot_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))


def split_gates(t: torch.Tensor, sizes: Sequence[int]):
    """Split the last dimension of ``t`` into gate blocks of the given widths."""
    return torch.split(t, list(sizes), dim=-1)
