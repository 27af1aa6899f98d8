"""The deep-transition cell: the state update is a multilayer perceptron, with a skip connection."""
from __future__ import annotations

from typing import Dict, Tuple

import torch

from ..activations import activate, activate_backward, check_activation
from .cell import Product, RecurrentCell, check_size


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
                 dtype=None, layer_norm: bool = False):
        self.depth = check_size("depth", depth)
        self.nonlinearity = check_activation(nonlinearity, ("tanh", "relu", "sigmoid"))
        self.skip = bool(skip)
        super().__init__(input_size, hidden_size, bias, init=init, device=device, dtype=dtype,
                         layer_norm=layer_norm)

    def own_parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        H = self.hidden_size
        shapes = {}
        shapes.update({f"weight_t{j}": (H, H) for j in range(2, self.depth + 1)})
        if self.bias:
            shapes.update({f"bias_t{j}": (H,) for j in range(2, self.depth + 1)})
        return shapes

    def extra_repr(self) -> str:
        s = super().extra_repr() + f", depth={self.depth}"
        if self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s if self.skip else s + ", skip=False"

    @property
    def products(self):
        """W_hh h_{t-1} (normalised under layer norm), then the inner layers' W_j u^(j-1) + b_j."""
        inner = tuple(Product(f"weight_t{j}", f"bias_t{j}" if self.bias else None, inner=True,
                              dropout=False, norm=False) for j in range(2, self.depth + 1))
        return self.hidden_products() + inner

    def core(self, p, z, u, state, mm):
        """u^(1) = phi(z);  u^(j) = phi(W_j u^(j-1) + b_j);  h_t = u^(L) [+ h_{t-1}].
        Saves (u^(1), .., u^(L))."""
        us = [activate(self.nonlinearity, z)]
        for k in range(self.depth - 1):
            us.append(activate(self.nonlinearity, mm(k, us[-1])))
        return (us[-1] + state[0] if self.skip else us[-1],), tuple(us)

    def core_backward(self, p, saved, state, new_state, d_new, mm_grad):
        """du^(L) = dh_t;  dz^(j) = du^(j) phi'(z^(j)), du^(j-1) = dz^(j) W_j (j = L..2);
        dz^(1) = du^(1) phi'(z^(1));  dh_{t-1} = dh_t (the skip; 0 without it)."""
        (dh,) = d_new
        du = dh
        for j in range(self.depth, 1, -1):
            du = mm_grad(j - 2, activate_backward(self.nonlinearity, saved[j - 1], du))
        dz = activate_backward(self.nonlinearity, saved[0], du)
        return dz, (), (dh if self.skip else None,), {}
