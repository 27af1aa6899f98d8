"""The contract of a recurrent cell: its point-wise core, and the products it declares.

Every cell of the notes takes one step the same way:

    xw_t = W_ih x_t + b                      the input projection (the engine: all steps at once)
    u_k  = W_k v_k                           the matrix products the cell declares (:class:`Product`)
    z_t  = xw_t + (the products that add)    the pre-activations
    state_t, saved = core(z_t, u, state_{t-1})        the cell's point-wise equations

A cell defines only its core and the core's derivative:

- ``core(p, z, u, state, mm) -> (new_state, saved)``: ``z`` (B, G*H) the pre-activations, ``u`` a
  tuple of the products that do not add into z (:attr:`Product.adds` False), ``state`` a tuple of
  (B, S_k) tensors. ``mm(k, v)`` forms inner product k (``v W_k^T + b_k``, for a product whose
  input the core itself computes: the notes' GRU's W_hn (r * h_{t-1}), an output's W_hy s_t).
  ``saved`` is what the backward needs beyond the states.
- ``core_backward(p, saved, state, new_state, d_new, mm_grad) -> (dz, du, d_state, d_p)``: with
  ``d_new`` = dL/dstate_t, returns dL/dz_t (B, G*H), dL/du for each product apart, dL/dstate_{t-1}
  along the core's own paths (not through the products, which the engine owns) and a dict of
  this step's gradients of the core's own parameters (a peephole vector, a leak), each summed over
  the batch. ``mm_grad(k, du)`` is inner product k's derivative: returns dL/dv.

Engines own everything else: the input projection and the products with their weight gradients
(one product over all steps each), the biases, layer normalisation of each product, recurrent
dropout masks, weight drop, zoneout, skip connections through time, lengths, directions and
stacking. A cell holds no state between or during calls; its parameters live on the layer.

Parameter names and shapes follow torch.nn (``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H),
``bias_ih``, ``bias_hh`` (G*H,)), so a torch.nn state dict loads unchanged. ``layer_norm=True``
adds the gains the engine's normalisation reads, ``ln_gain_ih`` and one per normalised product.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..init import INIT_SCHEMES, init_parameter

State = Tuple[torch.Tensor, ...]
Params = Dict[str, torch.Tensor]


def check_size(name: str, value) -> int:
    """A positive integer size, or one clear error."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class Product:
    """One matrix product of a step, u = v W[rows]^T (+ b[rows]).

    - ``weight``, ``bias``: parameter names (``bias`` None: none).
    - ``source``: the state whose previous value is v (the engine forms the product before the
      core runs); for an inner product (``inner``) the core forms v and calls ``mm``, and
      ``source`` names the state whose recurrent-dropout mask v takes.
    - ``rows``: (start, stop) of W's rows, None for all.
    - ``adds``: u adds into z's columns ``cols`` (None: all), its bias folded into the input
      projection's; otherwise the core receives u (bias included) apart.
    - ``dropout``: variational recurrent dropout masks v (the same mask for every product of the
      same ``source``); ``norm``: layer normalisation normalises u per block of H units, with the
      gain ``ln_gain_<weight's suffix>`` (rows as W's); ``part``: v is these columns of the source.
    """
    weight: str = "weight_hh"
    bias: Optional[str] = "bias_hh"
    source: int = 0
    rows: Optional[Tuple[int, int]] = None
    adds: bool = True
    cols: Optional[Tuple[int, int]] = None
    inner: bool = False
    dropout: bool = True
    norm: bool = True
    part: Optional[Tuple[int, int]] = None

    def read(self, state) -> torch.Tensor:
        """v of a product the engine forms: its source state (the columns ``part`` of it)."""
        v = state[self.source]
        return v if self.part is None else v[:, self.part[0]:self.part[1]]

    @property
    def gain(self) -> str:
        return "ln_gain_" + self.weight[len("weight_"):]


class RecurrentCell(nn.Module):
    """One time step of a recurrent network; see the module docstring for the contract.

    Args:
        input_size: I, the number of features of x_t.
        hidden_size: H, the number of units.
        bias: if False, the cell has no biases.
        init: ``"rnnlab"`` (orthogonal recurrent weights, Glorot input weights, zero biases and
            forget-gate bias 1 where there is a forget gate) or ``"torch"`` (torch.nn's uniform
            U(-1/sqrt(H), 1/sqrt(H)) for every parameter).
        layer_norm: the engine normalises the input projection and the products (Ba et al.); the
            cell then has the gains ``ln_gain_ih`` and ``ln_gain_<product>`` (1 at the start).
    """

    #: G, the number of gate blocks in ``weight_ih``.
    gate_count: int = 1
    #: names of the state tensors, e.g. ("h",) or ("h", "c").
    state_names: Tuple[str, ...] = ("h",)
    #: which state tensor is the cell's output.
    output_state: int = 0
    #: the torch fused kernel that computes exactly this cell, or None (see engines/native.py).
    native_mode: Optional[str] = None
    #: the states whose previous value the core reads (beyond the products): with none of them
    #: and every product's source given (teacher forcing), the steps do not depend on each other
    core_reads: Optional[Tuple[int, ...]] = None

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, init: str = "rnnlab",
                 device=None, dtype=None, layer_norm: bool = False):
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        if init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {', '.join(map(repr, INIT_SCHEMES))}, got {init!r}")
        if not isinstance(layer_norm, bool):
            raise ConfigError(f"layer_norm must be true or false, got {layer_norm!r}")
        self.bias, self.init, self.layer_norm = bool(bias), init, layer_norm
        factory = {"device": device, "dtype": dtype}
        for name, shape in self.parameter_shapes().items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
        self.reset_parameters()

    # ------------------------------------------------------------------ parameters
    @property
    def products(self) -> Tuple[Product, ...]:
        """The step's matrix products: W_hh h_{t-1} into every gate block by default."""
        return self.hidden_products()

    def hidden_products(self) -> Tuple[Product, ...]:
        """W_hh h_{t-1} into every gate block: the default :attr:`products`, which a subclass's
        extend through this method (torch.compile reads ``super().products`` as the property)."""
        return (Product(bias="bias_hh" if self.bias else None),)

    def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Name -> shape of every parameter, in torch.nn's order (weights, then biases), then the
        cell's own, then the layer-norm gains."""
        shapes = {**self.weight_shapes(), **self.own_parameter_shapes()}
        if self.layer_norm:
            shapes["ln_gain_ih"] = shapes["weight_ih"][:1]
            for prod in self.products:
                if prod.norm:
                    shapes[prod.gain] = (shapes[prod.weight][0],)
        return shapes

    def weight_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """torch.nn's four: ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H), the biases (G*H,)."""
        G, H, I = self.gate_count, self.hidden_size, self.input_size
        shapes = {"weight_ih": (G * H, I), "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        return shapes

    def own_parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """The cell's parameters beyond torch.nn's four (peepholes, a leak, ...)."""
        return {}

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
        """The parameters (and buffers, such as a fixed leak) the core reads, by name."""
        return {**self._parameters, **self._buffers}

    @property
    def state_sizes(self) -> Tuple[int, ...]:
        """S_k, the width of each state tensor."""
        return (self.hidden_size,) * len(self.state_names)

    @property
    def output_size(self) -> int:
        return self.state_sizes[self.output_state]

    @property
    def block_names(self) -> Tuple[str, ...]:
        """A name for each of the G blocks of z (the gate it feeds)."""
        return ("h",) if self.gate_count == 1 else tuple(f"block {k}" for k in range(self.gate_count))

    def gate_activations(self, saved: State) -> Dict[str, torch.Tensor]:
        """The gates of one step, by name, each (B, H) in (0, 1), read from the step's ``saved``
        (a cell without gates: none). For diagnostics: how often a gate saturates."""
        return {}

    def initial_state(self, batch: int, like: torch.Tensor) -> State:
        """The zero state, one (B, S_k) tensor per state name."""
        return tuple(like.new_zeros(batch, s) for s in self.state_sizes)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")
        return s + (", layer_norm=True" if self.layer_norm else "")

    # ------------------------------------------------------------------ the core
    def core(self, p: Params, z: torch.Tensor, u: State, state: State, mm) -> Tuple[State, State]:
        raise NotImplementedError

    def core_backward(self, p: Params, saved: State, state: State, new_state: State,
                      d_new: State, mm_grad):
        raise NotImplementedError

    # ------------------------------------------------------------------ module call
    def forward(self, input: torch.Tensor, state=None):
        """One step, ``(x_t, state_{t-1}) -> (output_t, state_t)``, under autograd; the engines'
        layer normalisation applies when the cell has it (no dropout: a single step has no
        sequence to share a mask over).

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
        xw = input_projection(self, p, x)
        new_state = step(self, p, xw, state)
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


# ---------------------------------------------------------------------- the step's arithmetic
#: the epsilon under the square root of layer normalisation
EPS = 1e-5


def block_norm(a: torch.Tensor, H: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """y = (a - mu) / s over each block of H units of the last dimension, and 1/s.
    a (..., R) -> y (..., R), 1/s (..., R/H, 1)."""
    v = a.reshape(*a.shape[:-1], a.shape[-1] // H, H)
    mu = v.mean(-1, keepdim=True)
    c = v - mu
    inv = torch.rsqrt((c * c).mean(-1, keepdim=True) + EPS)  # two passes: torch.var is far slower here
    return (c * inv).reshape(a.shape), inv


def block_norm_backward(d: torch.Tensor, y: torch.Tensor, inv: torch.Tensor, H: int) -> torch.Tensor:
    """dL/da = (d - mean(d) - y mean(d y)) / s per block, d = dL/dy."""
    dv, yv = d.reshape(*d.shape[:-1], d.shape[-1] // H, H), y.reshape(*y.shape[:-1], y.shape[-1] // H, H)
    out = dv - dv.mean(-1, keepdim=True) - yv * (dv * yv).mean(-1, keepdim=True)
    return (out * inv).reshape(d.shape)


def input_bias(cell: RecurrentCell, p: Params) -> Optional[torch.Tensor]:
    """b in xw_t = W_ih x_t + b: ``bias_ih`` plus the bias of every product that adds into z."""
    b = p.get("bias_ih")
    if b is None:
        return None
    for prod in cell.products:
        if prod.adds and not prod.inner and prod.bias is not None:
            pb = p[prod.bias] if prod.rows is None else p[prod.bias][prod.rows[0]:prod.rows[1]]
            if prod.cols is None:
                b = b + pb
            else:
                b = torch.cat((b[:prod.cols[0]], b[prod.cols[0]:prod.cols[1]] + pb, b[prod.cols[1]:]))
    return b


def input_projection(cell: RecurrentCell, p: Params, x: torch.Tensor) -> torch.Tensor:
    """xw = W_ih x + b for every row of x (..., I) at once: (..., G*H); with layer
    normalisation LN(W_ih x; g_ih) + b."""
    b = input_bias(cell, p)
    if not cell.layer_norm:
        return F.linear(x, p["weight_ih"], b)
    y, _ = block_norm(F.linear(x, p["weight_ih"]), cell.hidden_size)
    y = y * p["ln_gain_ih"]
    return y if b is None else y + b


def weight_rows(p: Params, name: Optional[str], rows) -> Optional[torch.Tensor]:
    """Parameter ``name`` restricted to ``rows`` (None: all; a missing name: None)."""
    if name is None or name not in p:
        return None
    return p[name] if rows is None else p[name][rows[0]:rows[1]]


# ---------------------------------------------------------------------- one step under autograd
# The ``loop`` engine's step (the reference every other engine is tested against) and a cell's
# own ``forward``: each product W (m * v) (m a recurrent-dropout mask for v's source, when given),
# normalised per block of H units with its gain under layer normalisation, plus its bias where it
# does not add into z (an adding product's bias is in xw_t already, :func:`input_bias`); then the core.
def product(cell: RecurrentCell, p: Params, prod: Product, v: torch.Tensor,
            masks: Optional[Dict[int, torch.Tensor]] = None, with_bias: bool = True) -> torch.Tensor:
    """u = LN(W[rows] (m * v); g[rows]) (+ b[rows]), the product as autograd sees it."""
    if masks and prod.dropout and prod.source in masks:
        v = v * masks[prod.source]
    u = F.linear(v, weight_rows(p, prod.weight, prod.rows))
    if cell.layer_norm and prod.norm:
        u = block_norm(u, cell.hidden_size)[0] * weight_rows(p, prod.gain, prod.rows)
    b = weight_rows(p, prod.bias, prod.rows) if with_bias else None
    return u if b is None else u + b


def step(cell: RecurrentCell, p: Params, xw: torch.Tensor, state: State,
         masks: Optional[Dict[int, torch.Tensor]] = None) -> State:
    """state_t from xw_t (B, G*H) and state_{t-1}; ``masks`` {source: (B, S)} recurrent dropout."""
    z, apart, inner = xw, [], [pr for pr in cell.products if pr.inner]
    for prod in cell.products:
        if prod.inner:
            continue
        if not prod.adds:
            apart.append(product(cell, p, prod, prod.read(state), masks))
            continue
        u = product(cell, p, prod, prod.read(state), masks, with_bias=False)
        if prod.cols is None:
            z = z + u
        else:
            a, b = prod.cols
            z = torch.cat((z[:, :a], z[:, a:b] + u, z[:, b:]), dim=1)

    def mm(k: int, v: torch.Tensor) -> torch.Tensor:
        return product(cell, p, inner[k], v, masks)

    new_state, _ = cell.core(p, z, tuple(apart), state, mm)
    return new_state


def glorot_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))
