"""The purely output-recurrent cell: no hidden-to-hidden term, so teacher forcing trains it in one
pass over all steps."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from ..activations import activate, activate_backward
from ..linalg import addmm, mm, outer_sum
from .cell import Params, State
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

    Shapes: x_t (B, I), s_t (B, H), y_t (B, O). Under ``init="rnnlab"`` U, W and W_hy are
    Glorot-uniform, biases zero.
    """

    fold_bias_hh = False  # there is no bias_hh: b = bias_ih

    def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        H, I, O = self.hidden_size, self.input_size, self.out_features
        shapes = {"weight_ih": (H, I), "weight_yh": (H, O), "weight_hy": (O, H)}
        if self.bias:
            shapes.update(bias_ih=(H,), bias_hy=(O,))
        return shapes

    # ------------------------------------------------------------------ open loop
    def step(self, p: Params, xw: torch.Tensor, state: State) -> Tuple[State, State]:
        """s_t = a(xw_t + W y_{t-1}),  y_t = g(W_hy s_t + b_y); nothing else saved."""
        _, y = state
        s_new = activate(self.nonlinearity, addmm(xw, y, p["weight_yh"].t()))  # (B, H)
        b_y = p.get("bias_hy")
        zy = addmm(b_y, s_new, p["weight_hy"].t()) if b_y is not None else mm(s_new, p["weight_hy"].t())
        return (s_new, activate(self.output_activation, zy)), ()

    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """From dL/ds_t and dL/dy_t:

            dzy = dy_t * g'(zy)                      zy = W_hy s_t + b_y
            dz  = (ds_t + dzy W_hy) * a'(z)          (written into d_xw)
            ds_{t-1} = 0 (not read),   dy_{t-1} = dz W

        Returns d_rec = (dzy,) for dW_hy and db_y.
        """
        s_new, y_new = new_state
        ds, dy = d_new_state
        dzy = activate_backward(self.output_activation, y_new, dy)  # (B, O)
        activate_backward(self.nonlinearity, s_new, addmm(ds, dzy, p["weight_hy"]), out=d_xw)
        return (torch.zeros_like(ds), mm(d_xw, p["weight_yh"])), (dzy,)

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        """dW = sum_t dz_t^T y_{t-1},  dW_hy = sum_t dzy_t^T s_t,  db_y = sum_t sum_b dzy_t."""
        (dzy,) = d_rec
        grads = {"weight_yh": outer_sum(d_xw, prev[1]), "weight_hy": outer_sum(dzy, new[0])}
        grads.update(self.bias_grads(p, d_xw))
        if self.bias:
            grads["bias_hy"] = dzy.sum(0)
        return grads

    # ------------------------------------------------------------------ teacher forcing
    def run_teacher_forced(self, runner, p: Params, x: torch.Tensor, y_prev: torch.Tensor,
                           state0: State, mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """Run the cell over x (T, B, I) with the true previous outputs y_prev (T, B, O) fed back:
        with the ``loop`` engine as ``runner`` the step loop (:meth:`teacher_forced_loop`, the
        reference), with any other the one pass (:meth:`teacher_forced_one_pass`). Returns the
        (s, y) sequences (T, B, H), (T, B, O); past each sequence's end (``mask`` (T, B, 1) False)
        the state at its end is carried, as the engines do."""
        from ..engines.loop import run_loop
        if runner is run_loop:
            return self.teacher_forced_loop(p, x, y_prev, state0, mask)
        return self.teacher_forced_one_pass(p, x, y_prev, mask)

    def teacher_forced_one_pass(self, p: Params, x: torch.Tensor, y_prev: torch.Tensor,
                                mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """All steps at once, no time loop, forward or backward (:class:`TeacherForcedOnePass`)."""
        UW = torch.cat((p["weight_ih"], p["weight_yh"]), 1)                 # [U, W]   (H, I+O)
        xy = torch.cat((x, y_prev.to(x.dtype)), -1)                          # (T, B, I+O)
        s, y = TeacherForcedOnePass.apply(self.nonlinearity, self.output_activation, xy, UW,
                                          p.get("bias_ih"), p["weight_hy"], p.get("bias_hy"))
        if mask is not None:  # padded steps: the state at each sequence's last real step
            last = (mask.long().cumsum(0) - 1).clamp(min=0)                  # (T, B, 1)
            s = s.gather(0, last.expand_as(s))
            y = y.gather(0, last.expand_as(y))
        return s, y

    def teacher_forced_loop(self, p: Params, x: torch.Tensor, y_prev: torch.Tensor, state0: State,
                            mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The step loop: for t = 1..T, (s_t, y_t) = step(x_t, (s_{t-1}, y*_{t-1})) under autograd."""
        b = self.input_bias(p)
        state = state0
        seqs = ([], [])
        for t, x_t in enumerate(x.unbind(0)):
            xw = F.linear(x_t, p["weight_ih"], b)                             # (B, H)
            new, _ = self.step(p, xw, (state[0], y_prev[t]))
            if mask is not None:
                new = tuple(torch.where(mask[t], n, s) for n, s in zip(new, state))
            for seq, s in zip(seqs, new):
                seq.append(s)
            state = new
        return torch.stack(seqs[0]), torch.stack(seqs[1])


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
