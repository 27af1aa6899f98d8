"""The output-recurrence cell: the previous output feeds the next state; teacher forcing."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch.nn import functional as F

from ..activations import activate, activate_backward, check_activation
from ..linalg import addmm, mm, outer_sum
from .cell import (RECURRENT_MASK, Params, RecurrentCell, State, check_size,
                   glorot_bound, recurrent_input)
from .rnn_cell import RNNCell

OUTPUT_ACTIVATIONS = ("identity", "tanh", "sigmoid")


class OutputFeedbackCell(RecurrentCell):
    r"""One step of the notes' RNN with output recurrence, s_t = h(x_t, s_{t-1}, y_{t-1}):

    .. math::
        s_t &= a(U x_t + V s_{t-1} + W y_{t-1} + b) \\
        y_t &= g(W_{hy} s_t + b_y)

    - x_t (I): the input; s_{t-1}, s_t (H): the hidden state; y_{t-1}, y_t (O): the output, which
      is fed back into the next step (equivalently a(M [x, s, y] + b) with M = [U, V, W]);
    - U = ``weight_ih`` (H, I), V = ``weight_hh`` (H, H), W = ``weight_yh`` (H, O),
      b = ``bias_ih`` + ``bias_hh`` (H,) (two vectors, as torch.nn.RNNCell, so they load from it);
    - W_hy = ``weight_hy`` (O, H), b_y = ``bias_hy`` (O,): the readout;
    - a: ``nonlinearity``, tanh (default), relu or sigmoid; g: ``output_activation``, identity
      (default, for regression), tanh or sigmoid.

    The state is the pair (s, y), of widths (H, O); the output of the step is y_t.

    Open loop (generation, and training without teacher forcing): y_{t-1} is the cell's own
    previous output, part of the state. Teacher forcing: the true previous output y*_{t-1}
    replaces it; then the recurrence over s alone is a vanilla RNN whose input is [x_t, y*_{t-1}]
    with input weight [U, W], and every y_t can be computed after the loop in one product
    (:meth:`run_teacher_forced`). Stepping the cell by hand with the state (s_{t-1}, y*_{t-1}) is
    the same teacher forcing.

    Shapes: x_t (B, I), s_t (B, H), y_t (B, O). Under ``init="rnnlab"`` V starts orthogonal, U, W
    and W_hy Glorot-uniform, biases zero.
    """

    state_names = ("s", "y")
    output_state = 1

    def __init__(self, input_size: int, hidden_size: int, output_size: int, bias: bool = True, *,
                 nonlinearity: str = "tanh", output_activation: str = "identity",
                 init: str = "rnnlab", device=None, dtype=None):
        # O; ``output_size`` itself is the base class's property, state_sizes[output_state]
        self.out_features = check_size("output_size", output_size)
        self.nonlinearity = check_activation(nonlinearity, ("tanh", "relu", "sigmoid"))
        self.output_activation = check_activation(output_activation, OUTPUT_ACTIVATIONS,
                                                  "output_activation")
        super().__init__(input_size, hidden_size, bias, init=init, device=device, dtype=dtype)
        # The teacher-forced recurrence over s: a vanilla RNN cell of input [x, y*] that only
        # computes (its parameters are built from U, W, V, b at each call); kept out of the
        # module tree so that it adds no parameters or state-dict entries.
        s_cell = RNNCell(input_size + output_size, hidden_size, bias, self.nonlinearity,
                         init="torch", device="meta")
        for name in list(s_cell._parameters):
            del s_cell._parameters[name]
        self._s_cell = (s_cell,)

    def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        H, I, O = self.hidden_size, self.input_size, self.out_features
        shapes = {"weight_ih": (H, I), "weight_hh": (H, H), "weight_yh": (H, O),
                  "weight_hy": (O, H)}
        if self.bias:
            shapes.update(bias_ih=(H,), bias_hh=(H,), bias_hy=(O,))
        return shapes

    def init_extra(self, name, param):
        """Under ``rnnlab``, W and W_hy Glorot-uniform whatever O is relative to H (the default
        rules would make them orthogonal when O is a multiple of H); under ``torch``, torch's."""
        if self.init == "rnnlab" and name in ("weight_yh", "weight_hy"):
            a = glorot_bound(param.shape[1], param.shape[0])
            param.uniform_(-a, a)
            return True
        return False

    @property
    def state_sizes(self) -> Tuple[int, ...]:
        return (self.hidden_size, self.out_features)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, {self.out_features}"
        s += "" if self.bias else ", bias=False"
        if self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        if self.output_activation != "identity":
            s += f", output_activation={self.output_activation!r}"
        return s

    def readout(self, p: Params, s: torch.Tensor) -> torch.Tensor:
        """y = g(W_hy s + b_y) for s of any leading shape (B, H) or (T, B, H)."""
        return activate(self.output_activation, F.linear(s, p["weight_hy"], p.get("bias_hy")))

    # ------------------------------------------------------------------ open loop
    def step(self, p: Params, xw: torch.Tensor, state: State) -> Tuple[State, State]:
        """s_t = a(xw_t + V s_{t-1} + W y_{t-1}),  y_t = g(W_hy s_t + b_y); nothing else saved."""
        s, y = state
        z = self.feedback_product(p, self.recurrent_product(p, xw, s), y)  # (B, H)
        s_new = activate(self.nonlinearity, z)
        b_y = p.get("bias_hy")
        zy = addmm(b_y, s_new, p["weight_hy"].t()) if b_y is not None else mm(s_new, p["weight_hy"].t())
        return (s_new, activate(self.output_activation, zy)), ()

    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """From dL/ds_t and dL/dy_t (derivatives from the saved outputs s_t, y_t):

            dzy = dy_t * g'(zy)                      zy = W_hy s_t + b_y
            dz  = (ds_t + dzy W_hy) * a'(z)          (written into d_xw)
            ds_{t-1} = dz V,   dy_{t-1} = dz W

        Returns d_rec = (dzy,) for dW_hy and db_y.
        """
        s_new, y_new = new_state
        ds, dy = d_new_state
        dzy = activate_backward(self.output_activation, y_new, dy)  # (B, O)
        activate_backward(self.nonlinearity, s_new, addmm(ds, dzy, p["weight_hy"]), out=d_xw)
        return (self.recurrent_product_grad(p, None, d_xw), self.feedback_product_grad(p, d_xw)), (dzy,)

    def feedback_product(self, p: Params, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z + W y_{t-1} (B, H), the feedback term; a wrapper that changes that term (layer
        normalisation) overrides this and :meth:`feedback_product_grad`."""
        return addmm(z, y, p["weight_yh"].t())

    def feedback_product_grad(self, p: Params, dz: torch.Tensor) -> torch.Tensor:
        """dL/dy_{t-1} = dz W (B, O), the derivative of :meth:`feedback_product`."""
        return mm(dz, p["weight_yh"])

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        """One product each over all T*B rows:

            dV = sum_t dz_t^T s_{t-1},  dW = sum_t dz_t^T y_{t-1},  dW_hy = sum_t dzy_t^T s_t,
            db_y = sum_t sum_b dzy_t.
        """
        (dzy,) = d_rec
        grads = {"weight_hh": outer_sum(d_xw, recurrent_input(p, prev[0])),
                 "weight_yh": outer_sum(d_xw, prev[1]),
                 "weight_hy": outer_sum(dzy, new[0])}
        grads.update(self.bias_grads(p, d_xw))
        if self.bias:
            grads["bias_hy"] = dzy.sum(0)
        return grads

    # ------------------------------------------------------------------ teacher forcing
    def run_teacher_forced(self, runner, p: Params, x: torch.Tensor, y_prev: torch.Tensor,
                           state0: State, mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """Run the cell over x (T, B, I) with the true previous outputs y_prev (T, B, O) fed back.

        The recurrence over s is a vanilla RNN (:meth:`teacher_forced_recurrence`) run by
        ``runner`` (an engine, ``run_loop`` or ``run_bptt``) on the input [x_t, y*_{t-1}]
        (T, B, I+O) with input weight [U, W] (H, I+O): the engine's one input projection covers
        W y*_{t-1} too, and dL/dW comes back through it. Then y_t = g(W_hy s_t + b_y) for all
        steps at once. ``state0[1]`` (y_0) is not read: y_prev[0] takes its place. Returns (s, y)
        sequences (T, B, H), (T, B, O), as the engines do; past each sequence's end (``mask``
        (T, B, 1) False) the state at its end.

        A regularized layer's runner (:class:`rnnlab.regularization.MaskedRunner`) has this
        call's masks drawn here, for this cell, the same draws as an open-loop call: weight drop
        on V, recurrent dropout m on s_{t-1}, zoneout keep weights (k^s, k^y) (k = 1 - d, the
        lengths folded in: k = 0 at padded steps; 1 - z at evaluation). The state fed to step t
        is (s_{t-1}, y*_{t-1}), so under zoneout (:meth:`teacher_forced_zoneout`)

            s~_t = a(U x_t + V (m *) s_{t-1} + W y*_{t-1} + b),   s_t = s_{t-1} + k^s_t (s~_t - s_{t-1})
            y~_t = g(W_hy s~_t + b_y),                          y_t = y*_{t-1} + k^y_t (y~_t - y*_{t-1})

        the engine runs the s recurrence with the keeps k^s alone, and y~_t reads the step's own
        (unblended) s~_t, as in the open-loop step: teacher-forced with the open loop's own
        previous outputs, the layer gives exactly the open-loop run.
        """
        from ..regularization import MaskedRunner
        lengths, keeps, zoned_s = mask, None, False
        if isinstance(runner, MaskedRunner):
            p, mask = runner.regularization.apply(self, p, x, mask, runner.training)
            zoned_s = bool(runner.regularization.zoneout[0])
            runner = runner.runner
            if isinstance(mask, tuple):  # zoneout: (k_s, k_y), the lengths folded in
                keeps, mask = mask, mask[:1]
        cell, s_p = self.teacher_forced_recurrence(p)
        xy = torch.cat((x, y_prev), -1)  # (T, B, I+O)
        (s,) = runner(cell, s_p, xy, state0[:1], mask)  # (T, B, H)
        if keeps is None:
            return s, self.readout(p, s)
        return s, self.teacher_forced_zoneout(p, cell, s_p, xy, y_prev, state0[0], s, keeps[1],
                                              lengths, zoned_s)

    def teacher_forced_recurrence(self, p: Params) -> Tuple[RecurrentCell, Params]:
        """The teacher-forced s recurrence as a cell and its parameters: a vanilla RNN of input
        [x_t, y*_{t-1}] with input weight [U, W] (H, I+O), recurrent weight V (m under recurrent
        dropout) and bias b; a wrapper that changes the products (layer normalisation) overrides it."""
        s_p = {"weight_ih": torch.cat((p["weight_ih"], p["weight_yh"]), 1),  # [U, W]   (H, I+O)
               "weight_hh": p["weight_hh"]}
        if RECURRENT_MASK in p:  # recurrent dropout on s_{t-1}: the inner RNN cell applies it
            s_p[RECURRENT_MASK] = p[RECURRENT_MASK]
        if self.bias:
            s_p.update(bias_ih=p["bias_ih"], bias_hh=p["bias_hh"])
        return self._s_cell[0], s_p

    def teacher_forced_zoneout(self, p: Params, cell: RecurrentCell, s_p: Params, xy: torch.Tensor,
                               y_prev: torch.Tensor, s0: torch.Tensor, s: torch.Tensor,
                               k_y: torch.Tensor, lengths: Optional[torch.Tensor],
                               zoned_s: bool = True) -> torch.Tensor:
        """The outputs y (T, B, O) under zoneout, from the blended s (T, B, H) the engine ran:

            s~_t = step(xw_t, s_{t-1})                    all T*B rows at once, s_{t-1} blended
            y_t  = y*_{t-1} + k^y_t (g(W_hy s~_t + b_y) - y*_{t-1})

        s~ is recomputed by the recurrence cell's own ``step`` (so layer normalisation is covered),
        under autograd; with no zoneout on s (``zoned_s`` False: k^s = 1 at every real step)
        s~ = s and nothing is recomputed. Past each sequence's end (``lengths`` (T, B, 1) False)
        the y at its end is carried, as the engines carry the state."""
        from .output_recurrent_cell import carry_past_the_end
        if zoned_s:
            T, B = xy.shape[:2]
            q = dict(s_p)
            if RECURRENT_MASK in q:  # one m (B, H) per sequence: the same for each of the T steps
                q[RECURRENT_MASK] = q[RECURRENT_MASK].expand(T, B, -1).reshape(T * B, -1)
            s_prev = torch.cat((s0[None], s[:-1]))                            # (T, B, H)
            xw = F.linear(xy.reshape(T * B, -1), q["weight_ih"], cell.input_bias(q))
            (s_new,), _ = cell.step(q, xw, (s_prev.reshape(T * B, -1),))    # (T*B, H)
            s = s_new.view(T, B, -1)                                          # s~ (T, B, H)
        y_new = self.readout(p, s)                                            # (T, B, O)
        y = torch.lerp(y_prev.to(y_new.dtype), y_new, k_y)
        if lengths is not None:
            (y,) = carry_past_the_end((y,), lengths)
        return y
