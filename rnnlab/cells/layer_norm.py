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
The GRU in the notes' form normalises its candidate's product W_hn (r_t * h_{t-1}) as read
(:class:`LayerNormGRU`). The output-feedback cell normalises its feedback product W y_{t-1} too
(:class:`LayerNormOutputFeedback`, and :class:`TeacherForcedLayerNorm` under teacher forcing);
the output-recurrent cell its W y_{t-1} (:class:`rnnlab.cells.output_recurrent_cell.LayerNormOutputRecurrent`).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from ..linalg import mm, outer_sum
from .cell import RECURRENT_MASK, Params, RecurrentCell, recurrent_input
from .gru_cell import GRUCell
from .lstm_cell import LSTMCell
from .output_feedback_cell import OutputFeedbackCell
from .rnn_cell import RNNCell

#: the epsilon under the square root of the normalisation
EPS = 1e-5

_CLASSES: Dict[type, type] = {}


def block_norm(a: torch.Tensor, blocks: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """y = (a - mu) / s over each of ``blocks`` equal blocks of the last dimension, and 1/s.
    a (B, G*H) -> y (B, G*H), 1/s (B, G, 1)."""
    B = a.shape[0]
    v = a.view(B, blocks, -1)
    mu = v.mean(-1, keepdim=True)
    c = v - mu
    inv = torch.rsqrt((c * c).mean(-1, keepdim=True) + EPS)  # two passes: torch.var is far slower here
    return (c * inv).view(B, -1), inv


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


class LayerNormGRU(LayerNorm):
    r""":class:`LayerNorm` for the GRU. In torch's form (``reset_after=True``) it is
    :class:`LayerNorm` itself. In the notes' form (``reset_after=False``) the candidate's product
    reads r_t * h~_{t-1}, and that product is the one normalised, block by block:

    .. math::
        a_t &= \mathrm{LN}(W_{ih} x_t; g_{ih}) + b_{ih} + b_{hh} \qquad (3H,\ \text{blocks } r, z, n) \\
        r_t &= \sigma(a_{r,t} + \mathrm{LN}(W_{hr} h_{t-1}; g_{hr})) \\
        z_t &= \sigma(a_{z,t} + \mathrm{LN}(W_{hz} h_{t-1}; g_{hz})) \\
        n_t &= \tanh(a_{n,t} + \mathrm{LN}(W_{hn} (r_t \odot h_{t-1}); g_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    (h~ = m * h_{t-1} under recurrent dropout.) ``saved``'s y_hh, 1/s_hh and ``d_rec``'s du
    hold the r, z blocks of W_hh h~ and then the n block of W_hn (r h~): du_n is the gradient of
    the un-normalised W_hn (r h~), so dW_hn = sum_t du_n^T (r h~), and dL/d(r h~) = du_n W_hn."""

    _ln_n = None  # the step's (y_n, 1/s_n) in the forward; (du_n, dg_hn) in the backward

    def step(self, p, xw, state, out=None):
        if self.reset_after:
            return super().step(p, xw, state, out)
        H = self.hidden_size
        y_ih, inv_ih = block_norm(xw, 3)
        u = RecurrentCell.recurrent_product(self, p, None, state[0], slice(0, 2 * H))  # W_h{r,z} h~
        y_rz, inv_rz = block_norm(u, 2)
        b = GRUCell.input_bias(self, p)  # b_ih + b_hh, folded
        a = y_ih * p["ln_gain_ih"] if b is None else torch.addcmul(b, y_ih, p["ln_gain_ih"])
        self._ln_u = y_rz * p["ln_gain_hh"][:2 * H]
        try:
            new, saved = GRUCell.step(self, p, a, state)
            y_n, inv_n = self._ln_n
        finally:
            self._ln_u = self._ln_n = None
        return new, tuple(saved) + (y_ih, inv_ih, torch.cat((y_rz, y_n), 1), torch.cat((inv_rz, inv_n), 1))

    def reset_product(self, p, a_n, rh, inplace=False):
        """a_n + LN(W_hn (r h~); g_hn); the step's (y_n, 1/s_n) are kept for :meth:`step`."""
        H = self.hidden_size
        y_n, inv_n = block_norm(mm(rh, p["weight_hh"][2 * H:].t()), 1)  # (B, H), (B, 1, 1)
        self._ln_n = (y_n, inv_n)
        g_n = p["ln_gain_hh"][2 * H:]
        return a_n.addcmul_(y_n, g_n) if inplace else torch.addcmul(a_n, y_n, g_n)

    def reset_product_grad(self, p, da_n):
        """dL/d(r h~) = LN'(g_hn da_n) W_hn, with this step's (y_n, 1/s_n) (set by
        :meth:`step_backward`); keeps du_n and the step's dg_hn for d_rec."""
        H = self.hidden_size
        y_n, inv_n = self._ln_n
        du_n = block_norm_backward(da_n * p["ln_gain_hh"][2 * H:], y_n, inv_n, 1)  # (B, H)
        self._ln_n = (du_n, (da_n * y_n).sum(0))
        return mm(du_n, p["weight_hh"][2 * H:])

    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """The GRU's backward gives dz_t (in d_xw), dL/dLN for r, z (by
        :meth:`recurrent_product_grad`) and, through :meth:`reset_product_grad`, the n block's
        du_n; then dL/dxw_t = LN'(g_ih dz_t) and dL/dh_{t-1} += m * (LN'(g_h{r,z} dL/dLN) W_h{r,z})."""
        if self.reset_after:
            return super().step_backward(p, saved, state, new_state, d_new_state, d_xw)
        H = self.hidden_size
        inner, (y_ih, inv_ih, y_hh, inv_hh) = saved[:-self.n_saved], saved[-self.n_saved:]
        self._ln_du = None
        self._ln_n = (y_hh[:, 2 * H:], inv_hh[:, 2:])
        try:
            d_prev, d_rec = GRUCell.step_backward(self, p, inner, state, new_state, d_new_state, d_xw)
            d_ln, (du_n, dg_n) = self._ln_du[:, :2 * H], self._ln_n
        finally:
            self._ln_du = self._ln_n = None
        y_rz = y_hh[:, :2 * H]
        du_rz = block_norm_backward(d_ln * p["ln_gain_hh"][:2 * H], y_rz, inv_hh[:, :2], 2)
        dg_hh = torch.cat(((d_ln * y_rz).sum(0), dg_n))
        dz = d_xw.clone()
        d_xw.copy_(block_norm_backward(dz * p["ln_gain_ih"], y_ih, inv_ih, 3))  # dL/dxw_t
        dh = RecurrentCell.recurrent_product_grad(self, p, d_prev[0], du_rz, slice(0, 2 * H))
        return (dh,), tuple(d_rec) + (dz, torch.cat((du_rz, du_n), 1), (dz * y_ih).sum(0), dg_hh)

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        """reset_after=False: the biases from dz; dW_h{r,z} = sum_t du_{r,z}^T h~_{t-1},
        dW_hn = sum_t du_n^T (r h~_{t-1}); the gains' dg summed over steps."""
        if self.reset_after:
            return super().recurrent_grads(p, d_xw, d_rec, prev, new, saved)
        H = self.hidden_size
        k = len(d_rec) - 4
        dz, du = d_rec[k], d_rec[k + 1]  # (T, B, 3H)
        grads = self.bias_grads(p, dz)
        rh = saved[2]  # r_t h~_{t-1}   (T, B, H)
        grads["weight_hh"] = torch.cat((outer_sum(du[..., :2 * H], recurrent_input(p, prev[0])),
                                        outer_sum(du[..., 2 * H:], rh)))
        grads["ln_gain_ih"] = d_rec[k + 2].sum(0)
        grads["ln_gain_hh"] = d_rec[k + 3].sum(0)
        return grads


class LayerNormOutputFeedback(LayerNorm):
    r""":class:`LayerNorm` for the output-feedback cell: its three products, the input U x_t, the
    recurrent V s~_{t-1} and the feedback W y_{t-1}, each normalised over its H units with a gain
    of its own (``ln_gain_ih``, ``ln_gain_hh``, ``ln_gain_yh``, (H,), 1 at initialisation):

    .. math::
        s_t &= a(\mathrm{LN}(U x_t; g_{ih}) + \mathrm{LN}(V \tilde s_{t-1}; g_{hh})
                 + \mathrm{LN}(W y_{t-1}; g_{yh}) + b) \\
        y_t &= g(W_{hy} s_t + b_y)

    (s~ = m * s_{t-1} under recurrent dropout.) Under teacher forcing y*_{t-1} takes y_{t-1}'s
    place and the s recurrence runs as :class:`TeacherForcedLayerNorm` (:meth:`teacher_forced_recurrence`).
    ``saved`` gains (y_ih, 1/s_ih, y_hh, 1/s_hh, y_yh, 1/s_yh); ``d_rec`` gains
    (dz, du, df, dg_ih, dg_hh, dg_yh), du and df the gradients of the un-normalised V s~ and W y."""

    n_saved = 6
    _ln_f = None  # the step's (y_yh, 1/s_yh) in the forward; (df, dg_yh) in the backward

    def parameter_shapes(self):
        shapes = super().parameter_shapes()
        shapes.update(ln_gain_yh=(self.hidden_size,))
        return shapes

    def step(self, p, xw, state, out=None):
        """z_t = LN(xw_t; g_ih) + b + LN(V s~_{t-1}; g_hh) + LN(W y_{t-1}; g_yh), then the cell's step."""
        y_ih, inv_ih = block_norm(xw, 1)
        y_hh, inv_hh = block_norm(self.recurrent_product_raw(p, state[0]), 1)
        b = OutputFeedbackCell.input_bias(self, p)
        a = y_ih * p["ln_gain_ih"] if b is None else torch.addcmul(b, y_ih, p["ln_gain_ih"])
        self._ln_u = y_hh * p["ln_gain_hh"]
        try:
            new, saved = OutputFeedbackCell.step(self, p, a, state)
            y_yh, inv_yh = self._ln_f
        finally:
            self._ln_u = self._ln_f = None
        return new, tuple(saved) + (y_ih, inv_ih, y_hh, inv_hh, y_yh, inv_yh)

    def feedback_product(self, p, z, y):
        """z + LN(W y_{t-1}; g_yh); the step's (y_yh, 1/s_yh) are kept for :meth:`step`."""
        y_yh, inv_yh = block_norm(mm(y, p["weight_yh"].t()), 1)  # (B, H), (B, 1, 1)
        self._ln_f = (y_yh, inv_yh)
        return torch.addcmul(z, y_yh, p["ln_gain_yh"])

    def feedback_product_grad(self, p, dz):
        """dL/dy_{t-1} = LN'(g_yh dz) W; keeps df = LN'(g_yh dz) and the step's dg_yh."""
        y_yh, inv_yh = self._ln_f
        df = block_norm_backward(dz * p["ln_gain_yh"], y_yh, inv_yh, 1)  # dL/d(W y_{t-1})  (B, H)
        self._ln_f = (df, (dz * y_yh).sum(0))
        return mm(df, p["weight_yh"])

    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """The cell's backward gives dz_t (in d_xw, also dL/dLN of V s~) and, through
        :meth:`feedback_product_grad`, dL/dy_{t-1}; then dL/dxw_t = LN'(g_ih dz_t) and
        dL/ds_{t-1} = m * (LN'(g_hh dz_t) V)."""
        inner = saved[:-self.n_saved]
        y_ih, inv_ih, y_hh, inv_hh, y_yh, inv_yh = saved[-self.n_saved:]
        self._ln_du = None
        self._ln_f = (y_yh, inv_yh)
        try:
            d_prev, d_rec = OutputFeedbackCell.step_backward(self, p, inner, state, new_state,
                                                             d_new_state, d_xw)
            d_ln, (df, dg_yh) = self._ln_du, self._ln_f  # d_ln is d_xw's storage: used first
        finally:
            self._ln_du = self._ln_f = None
        du = block_norm_backward(d_ln * p["ln_gain_hh"], y_hh, inv_hh, 1)  # dL/d(V s~)
        dg_hh = (d_ln * y_hh).sum(0)
        dz = d_xw.clone()
        d_xw.copy_(block_norm_backward(dz * p["ln_gain_ih"], y_ih, inv_ih, 1))  # dL/dxw_t
        ds = RecurrentCell.recurrent_product_grad(self, p, None, du)
        return (ds, d_prev[1]), tuple(d_rec) + (dz, du, df, (dz * y_ih).sum(0), dg_hh, dg_yh)

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        """The cell's gradients from dz (biases, W_hy, b_y); then dV = sum_t du_t^T s~_{t-1},
        dW = sum_t df_t^T y_{t-1} and the gains' dg summed over steps."""
        k = len(d_rec) - self.n_saved
        dz, du, df = d_rec[k], d_rec[k + 1], d_rec[k + 2]  # (T, B, H)
        grads = OutputFeedbackCell.recurrent_grads(self, p, dz, _Head(d_rec, k), prev, new, saved)
        grads["weight_hh"] = outer_sum(du, recurrent_input(p, prev[0]))
        grads["weight_yh"] = outer_sum(df, prev[1])
        grads["ln_gain_ih"] = d_rec[k + 3].sum(0)
        grads["ln_gain_hh"] = d_rec[k + 4].sum(0)
        grads["ln_gain_yh"] = d_rec[k + 5].sum(0)
        return grads

    def teacher_forced_recurrence(self, p):
        """Teacher forcing: the s recurrence is :class:`TeacherForcedLayerNorm` on [x_t, y*_{t-1}]
        with input weight diag(U, W) (2H, I+O), so that U x_t and W y*_{t-1} come from one input
        product as two blocks normalised apart (the cell's ``run_teacher_forced`` runs it, then
        y_t = g(W_hy s_t + b_y) for all steps)."""
        if not hasattr(self, "_tf_cell"):
            cell = TeacherForcedLayerNorm(self.input_size + self.out_features, self.hidden_size,
                                          self.bias, self.nonlinearity, init="torch", device="meta")
            for name in list(cell._parameters):
                del cell._parameters[name]
            self._tf_cell = (cell,)  # kept out of the module tree: no parameters of its own
        s_p = {"weight_ih": torch.block_diag(p["weight_ih"], p["weight_yh"]),  # (2H, I+O)
               "weight_hh": p["weight_hh"],
               "ln_gain_in": torch.cat((p["ln_gain_ih"], p["ln_gain_yh"])), "ln_gain_hh": p["ln_gain_hh"]}
        if RECURRENT_MASK in p:
            s_p[RECURRENT_MASK] = p[RECURRENT_MASK]
        if self.bias:
            s_p.update(bias_ih=p["bias_ih"], bias_hh=p["bias_hh"])
        return self._tf_cell[0], s_p


class TeacherForcedLayerNorm(LayerNorm, RNNCell):
    r"""The teacher-forced s recurrence of :class:`LayerNormOutputFeedback`: input [x_t, y*_{t-1}],
    input weight diag(U, W), so xw_t = [U x_t, W y*_{t-1}] (2H), two blocks normalised apart:

    .. math::
        s_t = a(\mathrm{LN}(U x_t; g_{ih}) + \mathrm{LN}(W y^*_{t-1}; g_{yh})
                + \mathrm{LN}(V \tilde s_{t-1}; g_{hh}) + b)

    Parameters (handed in by the output-feedback cell): ``ln_gain_in`` = (g_ih, g_yh) (2H,),
    ``ln_gain_hh`` (H,). ``d_rec`` per step: (dz, du, dg_in, dg_hh)."""

    def parameter_shapes(self):
        H = self.hidden_size
        return {"weight_ih": (2 * H, self.input_size), "weight_hh": (H, H), "ln_gain_in": (2 * H,),
                "ln_gain_hh": (H,), **({"bias_ih": (H,), "bias_hh": (H,)} if self.bias else {})}

    def step(self, p, xw, state, out=None):
        H = self.hidden_size
        y_in, inv_in = block_norm(xw, 2)  # (B, 2H), (B, 2, 1)
        y_hh, inv_hh = block_norm(self.recurrent_product_raw(p, state[0]), 1)
        t = y_in * p["ln_gain_in"]
        a = t[:, :H] + t[:, H:]
        b = RNNCell.input_bias(self, p)
        if b is not None:
            a = a + b
        self._ln_u = y_hh * p["ln_gain_hh"]
        try:
            new, saved = RNNCell.step(self, p, a, state)
        finally:
            self._ln_u = None
        return new, tuple(saved) + (y_in, inv_in, y_hh, inv_hh)

    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """dz from the RNN's backward (also dL/dLN(V s~)); dL/dxw_t = LN'(g_in [dz, dz]) over the
        two blocks; dL/ds_{t-1} = m * (LN'(g_hh dz) V)."""
        inner, (y_in, inv_in, y_hh, inv_hh) = saved[:-4], saved[-4:]
        dz = d_xw.new_empty(d_xw.shape[0], self.hidden_size)
        self._ln_du = None
        try:
            _, d_rec = RNNCell.step_backward(self, p, inner, state, new_state, d_new_state, dz)
        finally:
            self._ln_du = None
        du = block_norm_backward(dz * p["ln_gain_hh"], y_hh, inv_hh, 1)  # dL/d(V s~)
        dzz = torch.cat((dz, dz), 1)
        d_xw.copy_(block_norm_backward(dzz * p["ln_gain_in"], y_in, inv_in, 2))
        ds = RecurrentCell.recurrent_product_grad(self, p, None, du)
        return (ds,), tuple(d_rec) + (dz, du, (dzz * y_in).sum(0), (dz * y_hh).sum(0))

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        k = len(d_rec) - 4
        dz, du = d_rec[k], d_rec[k + 1]
        grads = self.bias_grads(p, dz)
        grads["weight_hh"] = outer_sum(du, recurrent_input(p, prev[0]))
        grads["ln_gain_in"] = d_rec[k + 2].sum(0)
        grads["ln_gain_hh"] = d_rec[k + 3].sum(0)
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
        from .output_recurrent_cell import LayerNormOutputRecurrent, OutputRecurrentCell
        mixin = (LayerNormLSTM if issubclass(cell_class, LSTMCell)
                 else LayerNormOutputRecurrent if issubclass(cell_class, OutputRecurrentCell)
                 else LayerNormGRU if issubclass(cell_class, GRUCell)
                 else LayerNormOutputFeedback if issubclass(cell_class, OutputFeedbackCell) else LayerNorm)
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
    if type(layer).run_cell is not RecurrentLayer.run_cell and not issubclass(cell_class, OutputFeedbackCell):
        raise ConfigError(f"{type(layer).__name__} feeds its cells more than their input; it takes "
                          f"no layer_norm")
    if getattr(layer, "skip_steps", 0):
        raise ConfigError("layer_norm does not combine with skip_steps")
    return with_layer_norm(cell_class)
