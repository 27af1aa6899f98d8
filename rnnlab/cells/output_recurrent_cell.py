"""The purely output-recurrent cell: no hidden-to-hidden term, so teacher forcing trains it in one
pass over all steps; its regularizers (on W y_{t-1} and the state (s, y)) and layer normalisation."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from ..activations import activate, activate_backward
from ..linalg import addmm, mm, outer_sum
from .cell import Params, State, add_recurrent_grad, recurrent_input
from .layer_norm import EPS, LayerNorm, _Head, block_norm, block_norm_backward
from .output_feedback_cell import OutputFeedbackCell


class OutputRecurrentCell(OutputFeedbackCell):
    r"""One step of the notes' RNN whose only recurrence runs through its output,
    s_t = h(x_t, y_{t-1}) (no hidden-to-hidden connection):

    .. math::
        s_t &= a(U x_t + W y_{t-1} + b) \\
        y_t &= g(W_{hy} s_t + b_y)

    - x_t (I): the input; s_t (H): the hidden units; y_{t-1}, y_t (O): the output, fed back;
    - U = ``weight_ih`` (H, I), W = ``weight_yh`` (H, O), b = ``bias_ih`` (H,);
    - W_hy = ``weight_hy`` (O, H), b_y = ``bias_hy`` (O,): the readout;
    - a: ``nonlinearity``, tanh (default), relu or sigmoid; g: ``output_activation``, identity
      (default), tanh or sigmoid.

    It is :class:`OutputFeedbackCell` with V = 0 removed: the state is still the pair (s, y) of
    widths (H, O), so the two take the same ``hx``, but s_{t-1} is never read.

    Open loop (generation, free-running training): y_{t-1} is the cell's own previous output and
    the steps are serial, O(T) of them. Teacher forcing: y*_{t-1}, the true previous output,
    replaces it, and nothing links step t to step t-1 any more: every s_t and y_t comes from the
    inputs alone, so training needs O(1) serial steps (the notes' complexity table, "Training
    BPTT h(x, y*)"). :meth:`run_teacher_forced` computes all T steps in one pass,

        S = a([X, Y*_prev] [U, W]^T + b)      one (T*B, I+O) x (I+O, H) product
        Y = g(S W_hy^T + b_y)                 one (T*B, H) x (H, O) product

    and its backward is the same three operations reversed, with no time loop either; the
    ``loop`` engine keeps the step-by-step form as the reference.

    Regularization (options of the layer, :mod:`rnnlab.regularization`; masks drawn once per
    forward call, all off in ``eval()``). The only recurrence is W y_{t-1}, so:

    - ``weight_drop`` q: W~ = W * M / (1 - q), one mask M over the entries of W = ``weight_yh``;
    - ``recurrent_dropout`` q: one mask m (B, O) per sequence on the fed-back output where it
      enters W:  s_t = a(U x_t + W (m * y_{t-1}) + b),  m ~ Bernoulli(1 - q) / (1 - q), the same
      at every step (under teacher forcing on y*_{t-1});
    - ``zoneout`` z (one rate, or (z_s, z_y)): each unit of the state (s, y) keeps the previous
      step's value with probability z,

          s_t = d_t * s_{t-1} + (1 - d_t) * s~_t,    y_t = e_t * y_{t-1} + (1 - e_t) * y~_t,

      s~_t = a(U x_t + W y_{t-1} + b) and y~_t = g(W_hy s~_t + b_y) the step's own equations,
      d_t, e_t ~ Bernoulli(z) per unit and step; at evaluation the expectation (d -> z). Under
      teacher forcing the state fed to step t is (s_{t-1}, y*_{t-1}), so the output keeps
      y*_{t-1}: y_t = e_t * y*_{t-1} + (1 - e_t) * y~_t (teacher-forced with the open loop's
      own outputs, the layer gives exactly the open-loop run). s_t now reads s_{t-1}, so the
      teacher-forced layer is no longer one pass: see :meth:`teacher_forced_zoneout`;
    - ``layer_norm=True``: :class:`LayerNormOutputRecurrent`.

    Shapes: x_t (B, I), s_t (B, H), y_t (B, O). Under ``init="rnnlab"`` U, W and W_hy are
    Glorot-uniform, biases zero.
    """

    fold_bias_hh = False  # there is no bias_hh: b = bias_ih
    recurrent_weight = "weight_yh"  # what weight drop masks (rnnlab.regularization)

    @property
    def recurrent_input_size(self) -> int:
        """O: the width of y_{t-1}, which recurrent dropout masks."""
        return self.out_features

    def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        H, I, O = self.hidden_size, self.input_size, self.out_features
        shapes = {"weight_ih": (H, I), "weight_yh": (H, O), "weight_hy": (O, H)}
        if self.bias:
            shapes.update(bias_ih=(H,), bias_hy=(O,))
        return shapes

    # ------------------------------------------------------------------ open loop
    def step(self, p: Params, xw: torch.Tensor, state: State) -> Tuple[State, State]:
        """s_t = a(xw_t + W y~_{t-1}),  y_t = g(W_hy s_t + b_y), y~ = m * y_{t-1} under recurrent
        dropout; nothing else saved."""
        _, y = state
        s_new = activate(self.nonlinearity, self.feedback_product(p, xw, y))  # (B, H)
        b_y = p.get("bias_hy")
        zy = addmm(b_y, s_new, p["weight_hy"].t()) if b_y is not None else mm(s_new, p["weight_hy"].t())
        return (s_new, activate(self.output_activation, zy)), ()

    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """From dL/ds_t and dL/dy_t:

            dzy = dy_t * g'(zy)                      zy = W_hy s_t + b_y
            dz  = (ds_t + dzy W_hy) * a'(z)          (written into d_xw)
            ds_{t-1} = 0 (not read),   dy_{t-1} = m * (dz W)

        Returns d_rec = (dzy,) for dW_hy and db_y.
        """
        s_new, y_new = new_state
        ds, dy = d_new_state
        dzy = activate_backward(self.output_activation, y_new, dy)  # (B, O)
        activate_backward(self.nonlinearity, s_new, addmm(ds, dzy, p["weight_hy"]), out=d_xw)
        return (torch.zeros_like(ds), self.feedback_product_grad(p, d_xw)), (dzy,)

    def feedback_product(self, p: Params, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z + W (m * y_{t-1}) (B, H): the only recurrent product, masked by recurrent dropout."""
        return addmm(z, recurrent_input(p, y), p["weight_yh"].t())

    def feedback_product_grad(self, p: Params, dz: torch.Tensor) -> torch.Tensor:
        """dL/dy_{t-1} = m * (dz W) (B, O)."""
        return add_recurrent_grad(p, None, dz, p["weight_yh"])

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        """dW = sum_t dz_t^T (m * y_{t-1}),  dW_hy = sum_t dzy_t^T s_t,  db_y = sum_t sum_b dzy_t."""
        (dzy,) = d_rec
        grads = {"weight_yh": outer_sum(d_xw, recurrent_input(p, prev[1])),
                 "weight_hy": outer_sum(dzy, new[0])}
        grads.update(self.bias_grads(p, d_xw))
        if self.bias:
            grads["bias_hy"] = dzy.sum(0)
        return grads

    # ------------------------------------------------------------------ teacher forcing
    def run_teacher_forced(self, runner, p: Params, x: torch.Tensor, y_prev: torch.Tensor,
                           state0: State, mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """Run the cell over x (T, B, I) with the true previous outputs y_prev (T, B, O) fed back.
        A regularized layer's runner (:class:`rnnlab.regularization.MaskedRunner`) has this
        call's masks drawn here first, the same draws as an open-loop call. Then with the
        ``loop`` engine as ``runner`` the step loop (:meth:`teacher_forced_loop`, the reference);
        with any other the one pass (:meth:`teacher_forced_one_pass`), or under zoneout
        :meth:`teacher_forced_zoneout`. Returns the (s, y) sequences (T, B, H), (T, B, O); past
        each sequence's end (``mask`` (T, B, 1) False) the state at its end is carried, as the
        engines do."""
        from ..engines.loop import run_loop
        from ..regularization import MaskedRunner
        lengths = mask
        if isinstance(runner, MaskedRunner):
            p, mask = runner.regularization.apply(self, p, x, mask, runner.training)
            runner = runner.runner
        keeps = mask if isinstance(mask, tuple) else None  # zoneout: (k_s, k_y), lengths folded in
        if runner is run_loop:
            return self.teacher_forced_loop(p, x, y_prev, state0, lengths, keeps)
        if keeps is not None:
            return self.teacher_forced_zoneout(p, x, y_prev, state0, lengths, keeps)
        return self.teacher_forced_one_pass(p, x, y_prev, lengths)

    def teacher_forced_one_pass(self, p: Params, x: torch.Tensor, y_prev: torch.Tensor,
                                mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """All steps at once, no time loop, forward or backward (:meth:`one_pass`), on the
        teacher's outputs as W reads them, m * y* under recurrent dropout."""
        s, y = self.one_pass(p, x, recurrent_input(p, y_prev.to(x.dtype)))
        if mask is not None:
            s, y = carry_past_the_end((s, y), mask)
        return s, y

    def one_pass(self, p: Params, x: torch.Tensor, y_in: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(S, Y) of all steps from the inputs x (T, B, I) and y_in (T, B, O), the fed-back
        outputs as W reads them (:class:`TeacherForcedOnePass`, hand-written backward)."""
        UW = torch.cat((p["weight_ih"], p["weight_yh"]), 1)                 # [U, W]   (H, I+O)
        xy = torch.cat((x, y_in), -1)                                        # (T, B, I+O)
        return TeacherForcedOnePass.apply(self.nonlinearity, self.output_activation, xy, UW,
                                          p.get("bias_ih"), p["weight_hy"], p.get("bias_hy"))

    def teacher_forced_zoneout(self, p: Params, x: torch.Tensor, y_prev: torch.Tensor,
                               state0: State, mask: Optional[torch.Tensor],
                               keeps: Tuple[torch.Tensor, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing under zoneout. s_t = d_t * s_{t-1} + (1 - d_t) * s~_t reads s_{t-1}, so
        the layer no longer runs in one pass: the step's own (s~_t, y~_t) still read only x_t and
        y*_{t-1} and come for all steps from the one pass (:meth:`one_pass`, its hand-written
        backward), but the blend of s is a loop over time, element-wise (keep weights k = 1 - d,
        the lengths mask folded in):

            S~, Y~ = one pass                           all steps at once   (T, B, H), (T, B, O)
            s_t = s_{t-1} + k^s_t * (s~_t - s_{t-1})    t = 1..T, element-wise
            y_t = y*_{t-1} + k^y_t * (y~_t - y*_{t-1})  all steps at once

        (y~_t = g(W_hy s~_t + b_y) reads the step's own s~_t, as in the open-loop step, so y has
        no time loop either.) The loop over time is :class:`ZoneoutBlend`, forward and backward
        by hand; the blend of y is autograd's."""
        y_prev = y_prev.to(x.dtype)
        s_new, y_new = self.one_pass(p, x, recurrent_input(p, y_prev))
        k_s, k_y = keeps
        s = ZoneoutBlend.apply(s_new, k_s, state0[0])                        # (T, B, H)
        y = torch.lerp(y_prev, y_new, k_y)                                   # (T, B, O)
        if mask is not None:  # y_t at a padded step: the y at the sequence's end, not y*_{t-1}
            s, y = carry_past_the_end((s, y), mask)
        return s, y

    def teacher_forced_loop(self, p: Params, x: torch.Tensor, y_prev: torch.Tensor, state0: State,
                            mask: Optional[torch.Tensor], keeps=None) -> Tuple[torch.Tensor, torch.Tensor]:
        """The step loop: for t = 1..T, (s_t, y_t) = step(x_t, (s_{t-1}, y*_{t-1})) under autograd;
        under zoneout (``keeps`` (k_s, k_y)) each unit blended with the state fed to the step."""
        b = self.input_bias(p)
        state = state0
        seqs = ([], [])
        for t, x_t in enumerate(x.unbind(0)):
            xw = F.linear(x_t, p["weight_ih"], b)                             # (B, H)
            fed = (state[0], y_prev[t])
            new, _ = self.step(p, xw, fed)
            if keeps is not None:
                new = tuple(torch.lerp(f, n, k[t]) for f, n, k in zip(fed, new, keeps))
            if mask is not None:
                new = tuple(torch.where(mask[t], n, s) for n, s in zip(new, state))
            for seq, s in zip(seqs, new):
                seq.append(s)
            state = new
        return torch.stack(seqs[0]), torch.stack(seqs[1])


def carry_past_the_end(seqs: Tuple[torch.Tensor, ...], mask: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Each sequence (T, B, S) with its padded steps (``mask`` (T, B, 1) False) replaced by the
    value at the sequence's last real step, as the engines carry the state."""
    last = (mask.long().cumsum(0) - 1).clamp(min=0)                          # (T, B, 1)
    return tuple(s.gather(0, last.expand_as(s)) for s in seqs)


class LayerNormOutputRecurrent(LayerNorm):
    r"""Layer normalisation (:mod:`rnnlab.cells.layer_norm`) for the output-recurrent cell: its
    two products, the input U x_t and the feedback W y~_{t-1}, each normalised over its H units
    with a gain of its own (``ln_gain_ih``, ``ln_gain_yh``, (H,), 1 at initialisation), the bias
    b (the normalisation's shift) added after:

    .. math::
        s_t &= a(\mathrm{LN}(U x_t; g_{ih}) + \mathrm{LN}(W \tilde y_{t-1}; g_{yh}) + b) \\
        y_t &= g(W_{hy} s_t + b_y)

    (y~ = m * y_{t-1} under recurrent dropout.) Each normalisation reads one step of one
    sequence, so under teacher forcing the layer still runs in one pass: both products of all
    T steps at once, normalised row by row (:class:`TeacherForcedLayerNormOnePass`, hand-written
    backward).
    Open loop, the ``bptt`` step: ``saved`` gains (y_ih, 1/s_ih, y_yh, 1/s_yh); ``d_rec`` gains
    (dz, df, dg_ih, dg_yh), df = dL/d(W y~_{t-1}), and

        dL/dxw_t = LN'(g_ih * dz_t),   dL/dy_{t-1} = m * (LN'(g_yh * dz_t) W),
        dW = sum_t df_t^T y~_{t-1},    dg = sum_t sum_b dz * y (per gain),  db = sum_t sum_b dz.
    """

    n_saved = 4
    _ln_f = None  # the step's (y_yh, 1/s_yh) in the forward; (df, dg_yh) in the backward

    def parameter_shapes(self):
        shapes = OutputRecurrentCell.parameter_shapes(self)
        shapes.update(ln_gain_ih=(self.hidden_size,), ln_gain_yh=(self.hidden_size,))
        return shapes

    def step(self, p, xw, state, out=None):
        """z_t = LN(xw_t; g_ih) + b + LN(W y~_{t-1}; g_yh), then the cell's step."""
        y_ih, inv_ih = block_norm(xw, 1)                                     # (B, H), (B, 1, 1)
        b = OutputRecurrentCell.input_bias(self, p)
        a = y_ih * p["ln_gain_ih"] if b is None else torch.addcmul(b, y_ih, p["ln_gain_ih"])
        try:
            new, saved = OutputRecurrentCell.step(self, p, a, state)
            y_yh, inv_yh = self._ln_f
        finally:
            self._ln_f = None
        return new, tuple(saved) + (y_ih, inv_ih, y_yh, inv_yh)

    def feedback_product(self, p, z, y):
        """z + LN(W y~_{t-1}; g_yh); the step's (y_yh, 1/s_yh) are kept for :meth:`step`."""
        y_yh, inv_yh = block_norm(mm(recurrent_input(p, y), p["weight_yh"].t()), 1)
        self._ln_f = (y_yh, inv_yh)
        return torch.addcmul(z, y_yh, p["ln_gain_yh"])

    def feedback_product_grad(self, p, dz):
        """dL/dy_{t-1} = m * (df W), df = LN'(g_yh dz); keeps df and the step's dg_yh."""
        y_yh, inv_yh = self._ln_f
        df = block_norm_backward(dz * p["ln_gain_yh"], y_yh, inv_yh, 1)     # dL/d(W y~)  (B, H)
        self._ln_f = (df, (dz * y_yh).sum(0))
        return add_recurrent_grad(p, None, df, p["weight_yh"])

    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """The cell's backward gives dz_t (in d_xw) and, through :meth:`feedback_product_grad`,
        dL/dy_{t-1}; then dL/dxw_t = LN'(g_ih dz_t)."""
        inner, (y_ih, inv_ih, y_yh, inv_yh) = saved[:-self.n_saved], saved[-self.n_saved:]
        self._ln_f = (y_yh, inv_yh)
        try:
            d_prev, d_rec = OutputRecurrentCell.step_backward(self, p, inner, state, new_state,
                                                              d_new_state, d_xw)
            df, dg_yh = self._ln_f
        finally:
            self._ln_f = None
        dz = d_xw.clone()
        d_xw.copy_(block_norm_backward(dz * p["ln_gain_ih"], y_ih, inv_ih, 1))  # dL/dxw_t
        return d_prev, tuple(d_rec) + (dz, df, (dz * y_ih).sum(0), dg_yh)

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        """The cell's gradients from dz (b, W_hy, b_y); dW from df; the gains summed over steps."""
        k = len(d_rec) - self.n_saved
        dz, df = d_rec[k], d_rec[k + 1]                                      # (T, B, H)
        grads = OutputRecurrentCell.recurrent_grads(self, p, dz, _Head(d_rec, k), prev, new, saved)
        grads["weight_yh"] = outer_sum(df, recurrent_input(p, prev[1]))
        grads["ln_gain_ih"] = d_rec[k + 2].sum(0)
        grads["ln_gain_yh"] = d_rec[k + 3].sum(0)
        return grads

    # ------------------------------------------------------------------ teacher forcing
    def one_pass(self, p, x, y_in):
        """(S, Y) of all steps at once (:class:`TeacherForcedLayerNormOnePass`)."""
        return TeacherForcedLayerNormOnePass.apply(
            self.nonlinearity, self.output_activation, x, y_in, p["weight_ih"], p["weight_yh"],
            p["ln_gain_ih"], p["ln_gain_yh"], OutputRecurrentCell.input_bias(self, p),
            p["weight_hy"], p.get("bias_hy"))


class TeacherForcedOnePass(torch.autograd.Function):
    r"""The teacher-forced output-recurrent network over all T steps at once, N = T*B rows:

    Forward:
        Z = XY [U, W]^T + b,   S = a(Z)          (N, H), a written over Z in place
        Y = g(S W_hy^T + b_y)                    (N, O)
    saving XY, S and Y (no pre-activations).

    Backward, from dL/dS (the states are outputs too) and dL/dY, either None when unused:
        dZy = dY * g'                            g' from Y
        dZ  = (dS + dZy W_hy) * a'               a' from S, written over its buffer in place
        dXY = dZ [U, W],   d[U, W] = dZ^T XY,   db = sum_n dZ
        dW_hy = dZy^T S,   db_y = sum_n dZy
    Two (N, H) buffers in all, S and dZ: the element-wise work a whole sequence needs and no more.
    """

    @staticmethod
    def forward(ctx, nonlinearity, output_activation, xy, UW, b, W_hy, b_y):
        T, B, IO = xy.shape
        xy2 = xy.reshape(T * B, IO)                                          # (N, I+O)
        z = addmm(b, xy2, UW.t()) if b is not None else mm(xy2, UW.t())      # (N, H)
        s = activate(nonlinearity, z, out=z)                                 # (N, H), over Z
        zy = addmm(b_y, s, W_hy.t()) if b_y is not None else mm(s, W_hy.t())  # (N, O)
        y = activate(output_activation, zy, out=zy)                          # (N, O)
        ctx.set_materialize_grads(False)   # an unused output's gradient stays None, not (T, B, .) zeros
        ctx.acts = (nonlinearity, output_activation)
        ctx.steps = (T, B)
        ctx.has_bias = (b is not None, b_y is not None)
        ctx.save_for_backward(xy2, UW, W_hy, s, y)
        return s.view(T, B, -1), y.view(T, B, -1)

    @staticmethod
    @once_differentiable
    def backward(ctx, ds, dy):
        xy2, UW, W_hy, s, y = ctx.saved_tensors
        if ds is None and dy is None:
            return (None,) * 7
        a, g = ctx.acts
        T, B = ctx.steps
        N = T * B
        dy = torch.zeros_like(y) if dy is None else dy.reshape(N, -1)
        dzy = activate_backward(g, y, dy)                                    # (N, O)
        d = mm(dzy, W_hy) if ds is None else addmm(ds.reshape(N, -1), dzy, W_hy)   # (N, H)
        dz = activate_backward(a, s, d, out=d)                               # (N, H), over d
        d_xy = mm(dz, UW).view(T, B, -1) if ctx.needs_input_grad[2] else None
        d_UW = mm(dz.t(), xy2)                                               # (H, I+O)
        db = dz.sum(0) if ctx.has_bias[0] else None
        d_W_hy = mm(dzy.t(), s)                                              # (O, H)
        db_y = dzy.sum(0) if ctx.has_bias[1] else None
        return None, None, d_xy, d_UW, db, d_W_hy, db_y


class TeacherForcedLayerNormOnePass(torch.autograd.Function):
    r"""The teacher-forced layer-normalised output-recurrent network (:class:`LayerNormOutputRecurrent`)
    over all T steps at once, N = T*B rows, each row normalised over its H units:

    Forward:
        A_x = X U^T,  A_y = Y~ W^T                         (N, H) each
        Z = LN(A_x) g_ih + LN(A_y) g_yh + b,   S = a(Z)     LN(A) = (A - mu) / s per row
        Y = g(S W_hy^T + b_y)                              (N, O)

    Backward, from dL/dS and dL/dY (either None when unused):
        dZy = dY * g',   dZ = (dS + dZy W_hy) * a'
        dg_ih = sum_n dZ * LN(A_x),   dg_yh = sum_n dZ * LN(A_y),   db = sum_n dZ
        dA_x = LN'(g_ih dZ),  dA_y = LN'(g_yh dZ)          LN'(d) = (d - mean(d) - LN mean(d LN)) / s
        dX = dA_x U,  dU = dA_x^T X,  dY~ = dA_y W,  dW = dA_y^T Y~
        dW_hy = dZy^T S,  db_y = sum_n dZy

    Each normalisation with its gain (and b) is one call of torch's fused layer-norm kernel,
    forward and backward (``native_layer_norm`` and its backward: the formulas above, in one pass
    over the rows each; over T*B rows, these element-wise passes are the cost).
    """

    @staticmethod
    def forward(ctx, nonlinearity, output_activation, x, y_in, U, W, g_ih, g_yh, b, W_hy, b_y):
        T, B, I = x.shape
        H = U.shape[0]
        x2, y2 = x.reshape(T * B, I), y_in.reshape(T * B, -1)               # (N, I), (N, O)
        a_x, a_y = mm(x2, U.t()), mm(y2, W.t())                              # (N, H) each
        z, mu_x, inv_x = torch.native_layer_norm(a_x, (H,), g_ih, None, EPS)  # LN(A_x) g_ih
        n_y, mu_y, inv_y = torch.native_layer_norm(a_y, (H,), g_yh, b, EPS)   # LN(A_y) g_yh + b
        s = activate(nonlinearity, z.add_(n_y), out=z)                       # (N, H), over Z
        zy = addmm(b_y, s, W_hy.t()) if b_y is not None else mm(s, W_hy.t())  # (N, O)
        y = activate(output_activation, zy, out=zy)
        ctx.set_materialize_grads(False)
        ctx.acts = (nonlinearity, output_activation)
        ctx.steps = (T, B)
        ctx.has_bias = (b is not None, b_y is not None)
        ctx.save_for_backward(x2, y2, U, W, g_ih, g_yh, b, W_hy, a_x, mu_x, inv_x, a_y, mu_y, inv_y, s, y)
        return s.view(T, B, -1), y.view(T, B, -1)

    @staticmethod
    @once_differentiable
    def backward(ctx, ds, dy):
        x2, y2, U, W, g_ih, g_yh, b, W_hy, a_x, mu_x, inv_x, a_y, mu_y, inv_y, s, y = ctx.saved_tensors
        if ds is None and dy is None:
            return (None,) * 11
        a, g = ctx.acts
        T, B = ctx.steps
        N, H = T * B, U.shape[0]
        dy = torch.zeros_like(y) if dy is None else dy.reshape(N, -1)
        dzy = activate_backward(g, y, dy)                                    # (N, O)
        d = mm(dzy, W_hy) if ds is None else addmm(ds.reshape(N, -1), dzy, W_hy)   # (N, H)
        dz = activate_backward(a, s, d, out=d)                               # (N, H), over d
        layer_norm_backward = torch.ops.aten.native_layer_norm_backward
        da_x, dg_ih, _ = layer_norm_backward(dz, a_x, [H], mu_x, inv_x, g_ih, None, [True, True, False])
        da_y, dg_yh, db = layer_norm_backward(dz, a_y, [H], mu_y, inv_y, g_yh, b,
                                              [True, True, ctx.has_bias[0]])
        need = ctx.needs_input_grad
        dx = mm(da_x, U).view(T, B, -1) if need[2] else None
        d_yin = mm(da_y, W).view(T, B, -1) if need[3] else None
        return (None, None, dx, d_yin, mm(da_x.t(), x2), mm(da_y.t(), y2), dg_ih, dg_yh,
                db if ctx.has_bias[0] else None, mm(dzy.t(), s), dzy.sum(0) if ctx.has_bias[1] else None)


class ZoneoutBlend(torch.autograd.Function):
    r"""The zoneout blend over time of states computed apart, s~ (T, B, H), from s_0 (B, H) with
    keep weights k (T, B, H):

    Forward, t = 1..T:    s_t = s_{t-1} + k_t * (s~_t - s_{t-1})
    Backward, t = T..1:   g_t = dL/ds_t + (1 - k_{t+1}) * g_{t+1}     (g_{T+1} = 0)
                          dL/ds~_t = k_t * g_t,   dL/ds_0 = (1 - k_1) * g_1
    Element-wise work only, three operations a step; no gradient for k.
    """

    @staticmethod
    def forward(ctx, s_new, keep, s0):
        s = torch.empty_like(s_new)                                          # (T, B, H)
        prev = s0
        for t in range(s_new.shape[0]):
            torch.lerp(prev, s_new[t], keep[t], out=s[t])
            prev = s[t]
        ctx.save_for_backward(keep)
        return s

    @staticmethod
    @once_differentiable
    def backward(ctx, ds):
        (keep,) = ctx.saved_tensors
        d_new = torch.empty_like(ds)                                         # (T, B, H)
        carry = 1 - keep                                                     # (T, B, H)
        g = torch.zeros_like(ds[0])
        for t in range(ds.shape[0] - 1, -1, -1):
            g.add_(ds[t])                                                    # g_t
            torch.mul(keep[t], g, out=d_new[t])
            g.mul_(carry[t])                                                 # (1 - k_t) g_t
        return d_new, None, g
