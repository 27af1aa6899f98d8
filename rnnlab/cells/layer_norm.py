r"""Layer normalisation inside a recurrent cell (Ba, Kiros and Hinton, 2016).

For any cell whose gates read ``W_ih x_t`` and ``W_hh h_{t-1}``, each of the G gate blocks of both
products is normalised over its H units, with a learned gain per unit, before the bias is added:

.. math::
    \mathrm{LN}(a; g) &= g \odot \frac{a - \mu(a)}{\sqrt{\sigma^2(a) + \epsilon}},
        \qquad \mu, \sigma^2 \text{ over the H units of each block} \\
    z_t &= \mathrm{LN}(W_{ih} x_t; g_{ih}) + \mathrm{LN}(W_{hh} h_{t-1}; g_{hh}) + b

and z_t goes on through the cell's own equations (the LSTM's gates, the RNN's phi, ...). b is the
cell's usual bias ``bias_ih`` (+ ``bias_hh``): it plays the part of the normalisation's shift, so
the two normalisations add only their gains ``ln_gain_ih``, ``ln_gain_hh`` (G*H,), both 1 at
initialisation. The GRU in torch's form keeps b_hn inside its reset gate:
n_t = tanh(LN(W_in x_t) + b_in + r_t * (LN(W_hn h_{t-1}) + b_hn)). For the LSTM the cell state is
normalised too before it reaches the output, with a gain and a shift of its own (H,):

.. math::
    h_t = o_t \odot \tanh(\mathrm{LN}(C_t; g_c) + b_c)

while C_t itself (what the next step and the peepholes read) stays as it is. With variational
recurrent dropout the normalised product is W_hh (m * h_{t-1}). In the deep-transition cell the
products normalised are those of its first layer (the ones that read x_t and h_{t-1}); in the
leaky, residual and deep-transition cells the state's other paths (the leak, the identity, the
skip) carry h_{t-1} itself.

The derivative (each step, by hand): with y = (a - mu) / s, s = sqrt(sigma^2 + eps) per block,

    dL/da = (d - mean(d) - y mean(d y)) / s,     d = g * dL/dLN,    means over the block's H units
    dL/dg = sum_t sum_b dL/dLN * y

so the step's backward runs the wrapped cell's own backward to get dL/dz_t (and the recurrent
block's dL/dLN, which the GRU's reset gate changes), then the two normalisations' backward.

:func:`with_layer_norm` makes the layer-normalised class of a cell class; the layers take
``layer_norm=True`` (:class:`rnnlab.layers.RecurrentLayer`). torch has no fused kernel for it.
Not for the output-feedback cell (its teacher-forced path runs an inner RNN) nor the GRU in the
notes' form (its candidate's product reads r_t * h_{t-1}, a different vector per step and gate).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from ..linalg import outer_sum
from .cell import Params, RecurrentCell, recurrent_input
from .gru_cell import GRUCell
from .lstm_cell import LSTMCell

#: the epsilon under the square root of the normalisation
EPS = 1e-5

_CLASSES: Dict[type, type] = {}


def block_norm(a: torch.Tensor, blocks: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """y = (a - mu) / s over each of ``blocks`` equal blocks of the last dimension, and 1/s.
    a (B, G*H) -> y (B, G*H), 1/s (B, G, 1)."""
    B = a.shape[0]
    v = a.view(B, blocks, -1)
    mu = v.mean(-1, keepdim=True)
    var = v.var(-1, unbiased=False, keepdim=True)
    inv = torch.rsqrt(var + EPS)
    return ((v - mu) * inv).view(B, -1), inv


def block_norm_backward(d: torch.Tensor, y: torch.Tensor, inv: torch.Tensor, blocks: int) -> torch.Tensor:
    """dL/da = (d - mean(d) - y mean(d y)) / s per block, d = dL/dy (B, G*H)."""
    B = d.shape[0]
    dv, yv = d.view(B, blocks, -1), y.view(B, blocks, -1)
    out = dv - dv.mean(-1, keepdim=True) - yv * (dv * yv).mean(-1, keepdim=True)
    return (out * inv).view(B, -1)


class LayerNorm:
    """Layer normalisation of the module docstring, mixed in before a cell class (see
    :func:`with_layer_norm`). ``saved`` gains (y_ih, 1/s_ih, y_hh, 1/s_hh) after the wrapped
    cell's own; ``d_rec`` gains (dz, du, dg_ih, dg_hh): dL/dz_t, the gradient of the
    un-normalised recurrent product W_hh h~_{t-1}, and the gains' per-step terms summed over the batch."""

    # the wrapped step runs without ``out=`` buffers and keeps what it saves in its own tensors
    writes_out = False
    grad_in_xw = False
    layer_norm = True
    n_saved = 4  # items this wrapper appends to saved (and to d_rec)

    def __init__(self, input_size: int, hidden_size: int, *args, layer_norm: bool = True, **kwargs):
        if layer_norm is not True:
            raise ValueError(f"a layer-normalised cell takes layer_norm=True, got {layer_norm!r}")
        self._ln_u: Optional[torch.Tensor] = None    # this step's LN(W_hh h~) (B, G*H)
        self._ln_du: Optional[torch.Tensor] = None   # its gradient, from the wrapped backward
        super().__init__(input_size, hidden_size, *args, **kwargs)
        self.native_mode = None  # no torch kernel normalises inside the cell

    def parameter_shapes(self):
        shapes = super().parameter_shapes()
        GH = self.gate_count * self.hidden_size
        shapes.update(ln_gain_ih=(GH,), ln_gain_hh=(GH,))
        return shapes

    def init_extra(self, name, param):
        if name.startswith("ln_gain"):
            param.fill_(1.0)
            return True
        if name.startswith("ln_bias"):
            param.zero_()
            return True
        return super().init_extra(name, param)

    def extra_repr(self):
        return super().extra_repr() + ", layer_norm=True"

    def input_bias(self, p: Params) -> Optional[torch.Tensor]:
        """None: xw_t = W_ih x_t alone; the bias is added after the normalisation (in :meth:`step`)."""
        return None

    # ------------------------------------------------------------------ the recurrent term
    def recurrent_product(self, p, xw, h, rows=None, inplace=False):
        """xw + LN(W_hh h~)[rows], the normalised product this step computed first."""
        u = self._ln_u if rows is None else self._ln_u[:, rows]
        if xw is None:
            return u
        return xw.add_(u) if inplace else xw + u

    def recurrent_product_grad(self, p, base, dz, rows=None):
        """Record dL/dLN(W_hh h~)[rows] = dz for :meth:`step_backward`; ``base`` passes on (the
        path through the normalisation back to h_{t-1} is added there)."""
        if rows is None:
            self._ln_du = dz
        else:
            if self._ln_du is None:
                self._ln_du = dz.new_zeros(dz.shape[0], self.gate_count * self.hidden_size)
            self._ln_du[:, rows] = dz
        return torch.zeros_like(self._ln_du[:, :self.hidden_size]) if base is None else base

    # ------------------------------------------------------------------ forward
    def step(self, p: Params, xw: torch.Tensor, state, out=None):
        """z_t = LN(xw_t; g_ih) + b + LN(W_hh h~_{t-1}; g_hh), then the wrapped cell's step."""
        G = self.gate_count
        y_ih, inv_ih = block_norm(xw, G)
        u = self.recurrent_product_raw(p, state[0])
        y_hh, inv_hh = block_norm(u, G)
        b = super().input_bias(p)
        a = y_ih * p["ln_gain_ih"] if b is None else torch.addcmul(b, y_ih, p["ln_gain_ih"])
        self._ln_u = y_hh * p["ln_gain_hh"]
        try:
            new, saved = super().step(p, a, state)
        finally:
            self._ln_u = None
        return new, tuple(saved) + (y_ih, inv_ih, y_hh, inv_hh)

    def recurrent_product_raw(self, p: Params, h: torch.Tensor) -> torch.Tensor:
        """W_hh h~_{t-1} (B, G*H), h~ = m * h_{t-1} under recurrent dropout."""
        return RecurrentCell.recurrent_product(self, p, None, h)

    # ------------------------------------------------------------------ backward
    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """The wrapped cell's backward gives dz_t (in d_xw) and dL/dLN(W_hh h~) (recorded by
        :meth:`recurrent_product_grad`); then dL/dxw_t = LN'(g_ih dz_t) and
        dL/dh_{t-1} += m * (LN'(g_hh dL/dLN) W_hh)."""
        G = self.gate_count
        inner, (y_ih, inv_ih, y_hh, inv_hh) = saved[:-self.n_saved], saved[-self.n_saved:]
        self._ln_du = None
        d_prev, d_rec = super().step_backward(p, inner, state, new_state, d_new_state, d_xw)
        d_ln, self._ln_du = self._ln_du, None  # may share d_xw's storage: used before d_xw is
        du = block_norm_backward(d_ln * p["ln_gain_hh"], y_hh, inv_hh, G)  # dL/d(W_hh h~)
        dg_hh = (d_ln * y_hh).sum(0)
        dz = d_xw.clone()
        d_xw.copy_(block_norm_backward(dz * p["ln_gain_ih"], y_ih, inv_ih, G))  # dL/dxw_t
        dh = RecurrentCell.recurrent_product_grad(self, p, d_prev[0], du)
        return (dh,) + tuple(d_prev[1:]), tuple(d_rec) + (dz, du, (dz * y_ih).sum(0), dg_hh)

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        """The wrapped cell's gradients from dz (its biases, peepholes, ...); then
        dW_hh = sum_t du_t^T h~_{t-1} and the gains' dg = sum over steps of the per-step terms."""
        k = len(d_rec) - 4  # where this wrapper's items start (the wrapped cell's before)
        dz, du = d_rec[k], d_rec[k + 1]  # (T, B, G*H)
        grads = super().recurrent_grads(p, dz, d_rec, prev, new, saved)
        grads["weight_hh"] = outer_sum(du, recurrent_input(p, prev[0]))
        grads["ln_gain_ih"] = d_rec[k + 2].sum(0)
        grads["ln_gain_hh"] = d_rec[k + 3].sum(0)
        return grads


class LayerNormLSTM(LayerNorm):
    """:class:`LayerNorm` for the LSTM, with the cell state normalised on its way to h_t:
    h_t = o * tanh(LN(C_t; g_c) + b_c); d_rec gains (dg_c, db_c) per step."""

    _ln_dc = None  # the step's (dg_c, db_c), from output_squash_grad to step_backward

    def parameter_shapes(self):
        shapes = super().parameter_shapes()
        shapes.update(ln_gain_c=(self.hidden_size,), ln_bias_c=(self.hidden_size,))
        return shapes

    def output_squash(self, p, c):
        y, _ = block_norm(c, 1)
        return torch.tanh(torch.addcmul(p["ln_bias_c"], y, p["ln_gain_c"]))

    def output_squash_grad(self, p, c, tc, d_tc, dc):
        """dC_t += LN'(g_c * d_tc * (1 - tc^2)); the step's (dg_c, db_c) are kept for d_rec."""
        y, inv = block_norm(c, 1)
        d_pre = d_tc * (1 - tc * tc)  # dL/d(LN(C_t) + b_c)
        self._ln_dc = ((d_pre * y).sum(0), d_pre.sum(0))
        return dc + block_norm_backward(d_pre * p["ln_gain_c"], y, inv, 1)

    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        d_prev, d_rec = super().step_backward(p, saved, state, new_state, d_new_state, d_xw)
        extra, self._ln_dc = self._ln_dc, None
        return d_prev, d_rec + extra

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        k = len(d_rec) - 2
        grads = super().recurrent_grads(p, d_xw, _Head(d_rec, k), prev, new, saved)
        grads["ln_gain_c"] = d_rec[k].sum(0)
        grads["ln_bias_c"] = d_rec[k + 1].sum(0)
        return grads


class _Head:
    """The first ``n`` items of a StepStack (what a wrapped class's recurrent_grads reads)."""

    def __init__(self, stack, n: int):
        self.stack, self.n = stack, n

    def __len__(self):
        return self.n

    def __getitem__(self, k: int):
        if not 0 <= k < self.n:
            raise IndexError(k)
        return self.stack[k]

    def __iter__(self):
        return (self.stack[k] for k in range(self.n))


def with_layer_norm(cell_class: type) -> type:
    """The layer-normalised class of ``cell_class`` (made once per class)."""
    if issubclass(cell_class, LayerNorm):
        return cell_class
    if cell_class not in _CLASSES:
        mixin = LayerNormLSTM if issubclass(cell_class, LSTMCell) else LayerNorm
        _CLASSES[cell_class] = type(f"LayerNorm{cell_class.__name__}", (mixin, cell_class),
                                    {"__doc__": f"{cell_class.__name__} with layer normalisation "
                                                f"(rnnlab.cells.layer_norm)."})
    return _CLASSES[cell_class]


def layer_normed(layer, cell_class: type, cell_options: dict) -> type:
    """The cell class a layer builds for its ``layer_norm`` option (in ``cell_options``): the
    layer-normalised class of ``cell_class`` when it is True, else ``cell_class`` (a False is
    taken out of the options)."""
    from ..errors import ConfigError
    from ..layers.recurrent_layer import RecurrentLayer
    flag = cell_options.get("layer_norm", False)
    if not isinstance(flag, bool):
        raise ConfigError(f"layer_norm must be true or false, got {flag!r}")
    if not flag:
        cell_options.pop("layer_norm", None)
        getattr(layer, "cell_options", {}).pop("layer_norm", None)
        return cell_class
    if type(layer).run_cell is not RecurrentLayer.run_cell:
        raise ConfigError(f"{type(layer).__name__} feeds its cells more than their input; it takes "
                          f"no layer_norm")
    if getattr(layer, "skip_steps", 0):
        raise ConfigError("layer_norm does not combine with skip_steps")
    if issubclass(cell_class, GRUCell) and not cell_options.get("reset_after", True):
        raise ConfigError("layer_norm needs the GRU in torch's form (reset_after=True), got reset_after=False")
    return with_layer_norm(cell_class)
