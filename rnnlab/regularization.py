r"""Regularization of a recurrent layer: weight drop, variational recurrent dropout, zoneout.

Three options of every :class:`rnnlab.RecurrentLayer` (and so of every cell and of the ``bptt``
and ``loop`` engines); the fourth, ``layer_norm``, belongs to the cells (it adds parameters).
Each draws its masks once per forward call, here, in Python, from torch's default generator (so
``torch.manual_seed`` makes a run reproducible); the engines then apply exactly these masks, the
hand-written ``bptt`` in its forward and backward and ``loop`` through autograd, so the two agree.

- ``weight_drop`` q (DropConnect on the recurrent weights): one mask M over the entries of
  ``weight_hh`` per forward call, the same at every step and for every sequence of the batch,

      W~_hh = W_hh * M / (1 - q),      M_ij ~ Bernoulli(1 - q),

  applied to the weight before the time loop; dL/dW_hh = dL/dW~_hh * M / (1 - q) (the dropped
  entries get no gradient).
- ``recurrent_dropout`` q (variational dropout, Gal and Ghahramani): one mask m per sequence and
  cell, on h_{t-1} where it enters the recurrent matrix product, the same at every step,

      W_hh h_{t-1}  ->  W_hh (m * h_{t-1}),      m (B, H),  m_bj ~ Bernoulli(1 - q) / (1 - q);

  the state's other paths (the LSTM's f * C_{t-1}, the GRU's z * h_{t-1}, a leak or a skip) see
  the whole h_{t-1}. The cells read m from ``p["recurrent_mask"]`` (:func:`rnnlab.cells.cell.recurrent_input`).
- ``zoneout`` z (Krueger et al.): per unit and step, a state unit keeps its previous value with
  probability z, for every state tensor (h and the LSTM's C; one rate for all, or one per state),

      s_t = d_t * s_{t-1} + (1 - d_t) * s~_t,      d_t ~ Bernoulli(z),  s~_t the cell's new state;

  the engines run this as keep weights k_t = 1 - d_t per state tensor (the lengths mask folded
  in: k = 0 at padded steps), the same blend that carries the state through padding.

A forward call draws new masks: under truncated BPTT each chunk of a long sequence gets its own
recurrent-dropout and weight-drop masks (the same at every step of the chunk).

The output-recurrent cell (no ``weight_hh``) names its own recurrent weight, ``weight_yh``
(:func:`recurrent_weight`), and its recurrent-dropout width, O (``recurrent_input_size``), and
draws its masks itself under teacher forcing (:class:`MaskedRunner`). The 2-D
:class:`rnnlab.GridRNN` defines the four for its two predecessors with :func:`drop_connect` and
:func:`dropout_mask`.

At evaluation (``model.eval()``) every mask is off: dropout and weight drop are inverted (scaled
by 1/(1 - q) in training), so evaluation is the plain cell; zoneout takes its expectation,
s_t = z s_{t-1} + (1 - z) s~_t (k = 1 - z).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch

from .cells.cell import RECURRENT_MASK, Params, RecurrentCell, State
from .errors import ConfigError

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

    def check_layer(self, layer) -> None:
        """Refuse a layer whose cells have no recurrent weight (:func:`recurrent_weight`): there
        would be nothing to drop."""
        for i, cell in enumerate(layer.cells):
            name = recurrent_weight(cell)
            if name not in layer.cell_params(i):
                raise ConfigError(f"{type(cell).__name__} has no recurrent weight {name}; "
                                  f"{self.describe()} does not apply to it")

    # ------------------------------------------------------------------ masks
    def apply(self, cell: RecurrentCell, p: Params, x: torch.Tensor, mask: Optional[torch.Tensor],
              training: bool) -> Tuple[Params, object]:
        """Draw this call's masks for ``cell`` run over ``x`` (T, B, I) and return the parameters
        and engine mask to run it with: ``p`` with ``weight_hh`` masked and ``recurrent_mask``
        added (training), and ``mask`` (the lengths mask (T, B, 1) or None) turned into zoneout
        keep weights, one (T, B, S_k) per state tensor (training: 1 - d_t; evaluation: 1 - z)."""
        T, B = x.shape[:2]
        p = dict(p)
        if training and self.weight_drop:
            name = recurrent_weight(cell)
            p[name] = drop_connect(p[name], self.weight_drop)
        if training and self.recurrent_dropout:
            # (B, H), one per sequence (the output-recurrent cell: (B, O), on y_{t-1})
            width = getattr(cell, "recurrent_input_size", cell.state_sizes[0])
            p[RECURRENT_MASK] = dropout_mask(x, (B, width), self.recurrent_dropout)
        if any(self.zoneout):
            keeps = []  # states beyond the rates given (a skip connection's delay line): rate 0
            rates = self.zoneout + (0.0,) * max(0, len(cell.state_sizes) - len(self.zoneout))
            for size, z in zip(cell.state_sizes, rates):
                k = x.new_full((T, B, size), 1.0 - z)
                if training:
                    k = torch.bernoulli(k)  # 1 - d_t:  d_t ~ Bernoulli(z)
                if mask is not None:
                    k = k * mask  # padded steps carry the whole state
                keeps.append(k)
            mask = tuple(keeps)
        return p, mask

    def runner(self, runner: Callable, training: bool) -> "MaskedRunner":
        """An engine runner (``run_bptt`` / ``run_loop``) that first draws the masks (:meth:`apply`)."""
        return MaskedRunner(self, runner, training)


@dataclass(frozen=True)
class MaskedRunner:
    """``runner`` (an engine: ``run_bptt`` / ``run_loop``) called with the masks of
    ``regularization`` drawn first. A cell that runs its own passes (the output-recurrent cell
    under teacher forcing) draws them itself with ``regularization.apply`` and calls ``runner``."""
    regularization: Regularization
    runner: Callable
    training: bool

    def __call__(self, cell: RecurrentCell, p: Params, x: torch.Tensor, state0: State, mask):
        p, mask = self.regularization.apply(cell, p, x, mask, self.training)
        return self.runner(cell, p, x, state0, mask)


def recurrent_weight(cell: RecurrentCell) -> str:
    """The name of the weight weight drop masks: ``weight_hh``, or the cell's own
    ``recurrent_weight`` (the output-recurrent cell's W y_{t-1}: ``weight_yh``)."""
    return getattr(cell, "recurrent_weight", "weight_hh")


def drop_connect(W: torch.Tensor, q: float) -> torch.Tensor:
    """W * M / (1 - q), M_ij ~ Bernoulli(1 - q): one weight-drop mask over every entry of W."""
    keep = 1.0 - q
    return W * torch.bernoulli(torch.full_like(W, keep)).div_(keep)


def dropout_mask(like: torch.Tensor, shape: Tuple[int, ...], q: float) -> torch.Tensor:
    """m ~ Bernoulli(1 - q) / (1 - q) of ``shape``, in ``like``'s dtype and device."""
    keep = 1.0 - q
    return torch.bernoulli(like.new_full(shape, keep)).div_(keep)
