"""The vanilla (Elman) recurrent cell."""
from __future__ import annotations

from ..activations import activate, activate_backward, check_activation
from ..linalg import outer_sum
from .cell import RecurrentCell, recurrent_input


class RNNCell(RecurrentCell):
    r"""One step of the vanilla RNN:

    .. math::
        H_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} H_{t-1} + b_{hh})

    with phi = tanh (default), relu or sigmoid (``nonlinearity``). The output of the step is H_t; a
    readout ``y_t = g(W_hy H_t + b_y)`` belongs to the model on top.

    Shapes: x_t (B, I), H_t (B, H). Parameters as torch.nn.RNNCell: ``weight_ih`` (H, I),
    ``weight_hh`` (H, H), ``bias_ih``, ``bias_hh`` (H,).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", *, init: str = "rnnlab", device=None, dtype=None):
        self.nonlinearity = check_activation(nonlinearity, ("tanh", "relu", "sigmoid"))
        self.native_mode = {"tanh": "rnn_tanh", "relu": "rnn_relu"}.get(nonlinearity)
        super().__init__(input_size, hidden_size, bias, init=init, device=device, dtype=dtype)

    def extra_repr(self):
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"

    writes_out = True
    grad_in_xw = True

    def step(self, p, xw, state, out=None):
        """H_t = phi(xw_t + W_hh H_{t-1}); nothing to save beyond the states.

        With ``out`` (bptt, no autograd) the pre-activation is built in ``xw``'s storage and
        H_t written into ``out``.
        """
        if out is None:
            return (activate(self.nonlinearity, self.recurrent_product(p, xw, state[0])),), ()
        z = self.recurrent_product(p, xw, state[0], inplace=True)  # (B, H)
        return (activate(self.nonlinearity, z, out=out[0]),), ()

    def step_backward(self, p, saved, state, new_state, d_new_state, d_xw):
        """dz = dH_t * phi'(z) (from H_t);  dH_{t-1} = dz W_hh."""
        activate_backward(self.nonlinearity, new_state[0], d_new_state[0], out=d_xw)
        return (self.recurrent_product_grad(p, None, d_xw),), ()

    def recurrent_grads(self, p, d_xw, d_rec, prev, new, saved):
        """dW_hh = sum_t dz_t^T H_{t-1}: one (H, T*B) x (T*B, H) product."""
        T, B, H = d_xw.shape
        grads = {"weight_hh": outer_sum(d_xw, recurrent_input(p, prev[0]))}
        grads.update(self.bias_grads(p, d_xw))
        return grads
