"""The deep-transition cell: the state update is a multilayer perceptron, with a skip connection."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from ..activations import activate, activate_backward, check_activation
from ..linalg import addmm, mm, outer_sum
from .cell import Params, RecurrentCell, State, check_size, recurrent_input


class DeepTransitionCell(RecurrentCell):
    r"""One step of the deep-transition RNN (the notes' "let h be a multilayer perceptron"):

    .. math::
        u^{(1)}_t &= \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}) \\
        u^{(j)}_t &= \phi(W_j u^{(j-1)}_t + b_j), \quad j = 2, \dots, L \\
        h_t &= u^{(L)}_t + h_{t-1}

    (h_t = u^(L)_t with ``skip=False``), where

    - x_t (I): the input at step t; h_{t-1}, h_t (H): the state before and after the step;
    - u^(j)_t (H): the output of layer j of the transition MLP; L = ``depth`` layers, so the error
      path from h_t to h_{t-1} is L nonlinearities deep (the notes: "if l layers, error propagation
      path will increase by factor l"); the skip connection keeps an identity path beside it, the
      residual state update s_t = s_{t-1} + r_t of the notes with r_t an MLP;
    - phi: ``nonlinearity``, tanh (default), relu or sigmoid;
    - W_ih (H, I), W_hh (H, H), b_ih, b_hh (H): the first layer, as torch.nn.RNNCell; W_j (H, H),
      b_j (H): the layers 2..L, parameters ``weight_t{j}`` and ``bias_t{j}``.

    ``depth=1, skip=False`` is the vanilla RNN cell. The output of the step is h_t.

    Shapes: x_t (B, I), h_t (B, H). Parameters: ``weight_ih`` (H, I), ``weight_hh`` (H, H),
    ``weight_t2`` .. ``weight_t{L}`` (H, H); with ``bias``: ``bias_ih``, ``bias_hh``, ``bias_t2`` ..
    ``bias_t{L}`` (H,). Under ``init="rnnlab"`` every (H, H) matrix starts orthogonal, biases zero.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, depth: int = 2,
                 nonlinearity: str = "tanh", skip: bool = True, init: str = "rnnlab", device=None,
                 dtype=None):
        self.depth = check_size("depth", depth)
        self.nonlinearity = check_activation(nonlinearity, ("tanh", "relu", "sigmoid"))
        self.skip = bool(skip)
        super().__init__(input_size, hidden_size, bias, init=init, device=device, dtype=dtype)

    def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        shapes = super().parameter_shapes()
        H = self.hidden_size
        shapes.update({f"weight_t{j}": (H, H) for j in range(2, self.depth + 1)})
        if self.bias:
            shapes.update({f"bias_t{j}": (H,) for j in range(2, self.depth + 1)})
        return shapes

    def extra_repr(self) -> str:
        s = super().extra_repr() + f", depth={self.depth}"
        if self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s if self.skip else s + ", skip=False"

    # ------------------------------------------------------------------ forward
    writes_out = True

    def step(self, p: Params, xw: torch.Tensor, state: State,
             out: Optional[State] = None) -> Tuple[State, State]:
        """Returns ((h_t,), saved = (u^(1), .., u^(L))); without skip u^(L) = h_t is not saved.

        With ``out`` (the bptt engine, no autograd) z^(1) is built in ``xw``'s storage, each
        nonlinearity applied in place and h_t written into ``out``.
        """
        (h,) = state
        act, L = self.nonlinearity, self.depth
        fast = out is not None
        z = self.recurrent_product(p, xw, h, inplace=fast)
        u = activate(act, z, out=(out[0] if L == 1 and not self.skip else z) if fast else None)
        us = [u]  # u^(1)   (B, H)
        for j in range(2, L + 1):
            b = p.get(f"bias_t{j}")
            z = addmm(b, u, p[f"weight_t{j}"].t()) if b is not None else mm(u, p[f"weight_t{j}"].t())
            u = activate(act, z, out=(out[0] if j == L and not self.skip else z) if fast else None)
            us.append(u)  # u^(j)
        if self.skip:
            return (torch.add(u, h, out=out[0] if fast else None),), tuple(us)
        return (u,), tuple(us[:-1])

    # ------------------------------------------------------------------ backward
    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """From dL/dh_t, down the MLP and back to h_{t-1}:

            du^(L) = dh_t
            dz^(j) = du^(j) * phi'(z^(j)),  du^(j-1) = dz^(j) W_j        j = L..2
            dz^(1) = du^(1) * phi'(z^(1))                                 (written into d_xw)
            dh_{t-1} = dz^(1) W_hh + dh_t                                 (+ dh_t: the skip)

        Returns d_rec = (dz^(2), .., dz^(L)) for the weight gradients of layers 2..L.
        """
        (dh,) = d_new_state
        us = saved if self.skip else saved + new_state  # u^(1) .. u^(L)
        act = self.nonlinearity
        du = dh
        dzs = []
        for j in range(self.depth, 1, -1):
            dz = activate_backward(act, us[j - 1], du)  # dz^(j)   (B, H)
            dzs.append(dz)
            du = mm(dz, p[f"weight_t{j}"])  # du^(j-1)
        activate_backward(act, us[0], du, out=d_xw)  # dz^(1)
        dh_prev = self.recurrent_product_grad(p, dh if self.skip else None, d_xw)
        return (dh_prev,), tuple(reversed(dzs))

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        """Each weight gradient is one product over all T*B rows:

            dW_hh = sum_t dz^(1)_t^T h_{t-1},   dW_j = sum_t dz^(j)_t^T u^(j-1)_t,
            db_j = sum_t sum_b dz^(j)_t.
        """
        T, B, H = d_xw.shape
        grads = {"weight_hh": outer_sum(d_xw, recurrent_input(p, prev[0]))}
        grads.update(self.bias_grads(p, d_xw))
        for j, dz in zip(range(2, self.depth + 1), d_rec):  # dz^(j)   (T, B, H)
            grads[f"weight_t{j}"] = outer_sum(dz, saved[j - 2])  # u^(j-1)
            if self.bias:
                grads[f"bias_t{j}"] = dz.sum((0, 1))
        return grads
