r"""Regularization of a recurrent layer: weight drop, variational recurrent dropout, zoneout.

Options of every :class:`rnnlab.RecurrentLayer`, so of every cell and every engine that runs it.
Each draws its masks once per forward call, here, from torch's default generator (so
``torch.manual_seed`` makes a run reproducible), into the call's own :class:`Call`; the engines
then apply exactly these masks, so they agree. (The fourth regularizer, layer normalisation, adds
parameters: it is the cells' ``layer_norm`` option, carried out by the engines.)

- ``weight_drop`` q (DropConnect on the recurrent weights): one mask M over the entries of each
  recurrent weight (the weight of every product that recurrent dropout acts on: ``weight_hh``;
  the output-recurrent cell's ``weight_yh``) per forward call, the same at every step and for
  every sequence of the batch,

      W~ = W * M / (1 - q),      M_ij ~ Bernoulli(1 - q);

  autograd carries dL/dW~ back to dL/dW = dL/dW~ * M / (1 - q).
- ``recurrent_dropout`` q (variational dropout, Gal and Ghahramani): one mask m per sequence and
  cell on the state where it enters the recurrent products, the same at every step,

      W_hh h_{t-1}  ->  W_hh (m * h_{t-1}),      m (B, H),  m_bj ~ Bernoulli(1 - q) / (1 - q);

  the state's other paths (the LSTM's f * C_{t-1}, the GRU's z * h_{t-1}, a leak or a skip) see
  the whole h_{t-1}.
- ``zoneout`` z (Krueger et al.): per unit and step, a state unit keeps its previous value with
  probability z, for every state tensor (h and the LSTM's C; one rate for all, or one per state),

      s_t = d_t * s_{t-1} + (1 - d_t) * s~_t,      d_t ~ Bernoulli(z),  s~_t the cell's new state;

  the engines run this as keep weights k_t = 1 - d_t per state tensor (the lengths mask folded
  in: k = 0 at padded steps), the same blend that carries the state through padding.

At evaluation (``model.eval()``) every mask is off: dropout and weight drop are inverted (scaled
by 1/(1 - q) in training), so evaluation is the plain cell; zoneout takes its expectation,
s_t = z s_{t-1} + (1 - z) s~_t (k = 1 - z). Under truncated BPTT each chunk gets its own masks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from ..cells.cell import Params
from ..errors import ConfigError
from . import compiled
from .call import Call

#: the layer options this module owns (popped from a layer's cell options)
OPTIONS = ("weight_drop", "recurrent_dropout", "zoneout")


def _probability(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Regularization:
    """The mask-drawn regularizers of one layer (see the module docstring). ``zoneout`` is one
    rate for every state tensor or a tuple of one rate per state tensor (e.g. (h, C))."""
    weight_drop: float = 0.0
    recurrent_dropout: float = 0.0
    zoneout: Tuple[float, ...] = (0.0,)

    @classmethod
    def from_options(cls, options: dict, state_names: Tuple[str, ...]) -> "Regularization":
        """Take (pop) the regularization options out of a layer's cell options and check them."""
        wd = _probability("weight_drop", options.pop("weight_drop", 0.0))
        rd = _probability("recurrent_dropout", options.pop("recurrent_dropout", 0.0))
        z = options.pop("zoneout", 0.0)
        rates = tuple(z) if isinstance(z, (tuple, list)) else (z,) * len(state_names)
        if len(rates) != len(state_names):
            raise ConfigError(f"zoneout takes one rate or one per state tensor {state_names}, "
                              f"got {len(rates)} rates")
        rates = tuple(_probability(f"zoneout ({n})", r) for n, r in zip(state_names, rates))
        return cls(wd, rd, rates)

    @property
    def active(self) -> bool:
        return bool(self.weight_drop or self.recurrent_dropout or any(self.zoneout))

    def describe(self) -> str:
        """The options in force, e.g. ``weight_drop=0.5, zoneout=(0.1, 0.1)``."""
        parts = []
        if self.weight_drop:
            parts.append(f"weight_drop={self.weight_drop}")
        if self.recurrent_dropout:
            parts.append(f"recurrent_dropout={self.recurrent_dropout}")
        if any(self.zoneout):
            z = self.zoneout
            parts.append(f"zoneout={z[0] if len(set(z)) == 1 else z}")
        return ", ".join(parts)

    def check_cell(self, cell) -> None:
        """Refuse a cell with no recurrent product to drop (weight drop, recurrent dropout)."""
        if (self.weight_drop or self.recurrent_dropout) and not recurrent_weights(cell):
            raise ConfigError(f"{type(cell).__name__} has no recurrent weight; "
                              f"{self.describe()} does not apply to it")


def recurrent_weights(cell) -> Tuple[str, ...]:
    """The weights recurrent dropout and weight drop act on: those of the products marked
    ``dropout`` (``weight_hh``; the output-recurrent cell's ``weight_yh``)."""
    return tuple(dict.fromkeys(pr.weight for pr in cell.products if pr.dropout))


def make_call(cell, p: Params, x: torch.Tensor, lengths: Optional[torch.Tensor],
              reg: Optional[Regularization], training: bool,
              given: Optional[Dict[int, torch.Tensor]] = None) -> Call:
    """This call's :class:`Call` for ``cell`` over ``x`` (T, B, I): the masks of ``reg`` drawn
    (training), zoneout's keep weights (training: 1 - d_t; evaluation: 1 - z)."""
    given = given or {}
    if reg is None or not reg.active:
        return Call(cell, p, lengths=lengths, given=given)
    T, B = x.shape[:2]
    p, masks, zoneout = dict(p), {}, None
    if training and reg.weight_drop:
        for name in recurrent_weights(cell):
            p[name] = drop_connect(p[name], reg.weight_drop)
    if training and reg.recurrent_dropout:
        for k in dict.fromkeys(pr.source for pr in cell.products if pr.dropout):
            masks[k] = dropout_mask(x, (B, cell.state_sizes[k]), reg.recurrent_dropout)
    if any(reg.zoneout):
        keeps = []  # states beyond the rates given (a skip connection's delay line): rate 0
        rates = reg.zoneout + (0.0,) * max(0, len(cell.state_sizes) - len(reg.zoneout))
        for size, z in zip(cell.state_sizes, rates):
            # 1 - d_t, d_t ~ Bernoulli(z)
            k = bernoulli(x, (T, B, size), 1.0 - z) if training else x.new_full((T, B, size), 1.0 - z)
            if lengths is not None:
                k = k * lengths  # padded steps carry the whole state
            keeps.append(k)
        zoneout = tuple(keeps)
    return Call(cell, p, masks, lengths, zoneout, given)


def drop_connect(W: torch.Tensor, q: float) -> torch.Tensor:
    """W * M / (1 - q), M_ij ~ Bernoulli(1 - q): one weight-drop mask over every entry of W."""
    keep = 1.0 - q
    return W * bernoulli(W, W.shape, keep).div_(keep)


def dropout_mask(like: torch.Tensor, shape: Tuple[int, ...], q: float) -> torch.Tensor:
    """m ~ Bernoulli(1 - q) / (1 - q) of ``shape``, in ``like``'s dtype and device."""
    keep = 1.0 - q
    return bernoulli(like, shape, keep).div_(keep)


def _signed(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


#: splitmix64's increment and multipliers, as torch's int64 holds them
_GOLDEN, _MIX1, _MIX2 = map(_signed, (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))


def _xorshift(z: torch.Tensor, k: int) -> torch.Tensor:
    """z ^ (z >> k), the shift logical (torch's >> on int64 keeps the sign)."""
    return z ^ ((z >> k) & ((1 << (64 - k)) - 1))


def bernoulli(like: torch.Tensor, shape: Tuple[int, ...], p: float) -> torch.Tensor:
    """0/1 samples of Bernoulli(p) of ``shape``, in ``like``'s dtype and device, reproduced by
    ``torch.manual_seed``. On the CPU: splitmix64 of each 64-bit counter i * golden + s, s one
    draw from torch's generator, cut into four 16-bit uniforms u, sample = [u < p 2^16] (p taken
    to the nearest multiple of 2^-16): a handful of vectorised integer passes, two to four times
    faster than ``bernoulli_``, whose Mersenne twister draws one element at a time (zoneout's
    masks, (T, B, H) per state, cost more than the LSTM's own steps at small sizes). Under
    torch.compile one custom operator (inductor's int64 arithmetic does not wrap as torch's does).
    Elsewhere (CUDA: a counter-based generator already) torch's ``bernoulli_``."""
    if like.device.type != "cpu":
        return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(p)
    if torch.compiler.is_compiling():
        return _bernoulli_op(list(shape), float(p), like.dtype, like.device)
    return _bernoulli(list(shape), float(p), like.dtype, like.device)


def dropout(x: torch.Tensor, q: float, training: bool = True) -> torch.Tensor:
    """``torch.nn.functional.dropout(x, q, training)`` with :func:`bernoulli`'s masks:
    x * m / (1 - q), m ~ Bernoulli(1 - q) per entry (on the CPU about three times faster
    than torch's, benchmarks/masks.py)."""
    if not training or q == 0.0 or q >= 1.0 or x.device.type != "cpu":
        return torch.nn.functional.dropout(x, q, training)
    return x * dropout_mask(x, x.shape, q)


def _bernoulli(shape: List[int], p: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if round(p * 65536) >= 65536:
        return torch.ones(shape, dtype=dtype, device=device)
    n = 1
    for d in shape:
        n *= int(d)
    seed = torch.randint(-(1 << 62), 1 << 62, (1,), device=device)
    fast = compiled.loaded()
    if fast is not None and dtype in (torch.float32, torch.float64):
        return fast.bernoulli(n, round(p * 65536) - 32768, int(seed), dtype).view(shape).to(device)  # (the same bits, one pass)
    z = torch.arange(1, (n + 3) // 4 + 1, device=device) * _GOLDEN + seed
    z = _xorshift(_xorshift(_xorshift(z, 30) * _MIX1, 27) * _MIX2, 31)
    u = z.view(torch.int16)[:n].view(shape)                                    # uniform in [-2^15, 2^15)
    return (u < round(p * 65536) - 32768).to(dtype)


_bernoulli_op = torch.library.custom_op("rnnlab::bernoulli", _bernoulli, mutates_args=())


@_bernoulli_op.register_fake
def _(shape, p, dtype, device):
    return torch.empty(shape, dtype=dtype, device=device)
