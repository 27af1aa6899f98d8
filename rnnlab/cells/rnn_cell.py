"""The vanilla (Elman) recurrent cell."""
from __future__ import annotations

from ..activations import activate, activate_backward, check_activation
from .cell import RecurrentCell


class RNNCell(RecurrentCell):
    r"""One step of the vanilla RNN:

    .. math::
        H_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} H_{t-1} + b_{hh})

    with phi = tanh (default), relu or sigmoid (``nonlinearity``). The output of the step is H_t; a
    readout ``y_t = g(W_hy H_t + b_y)`` belongs to the model on top.

    Core: H_t = phi(z_t), z_t = W_ih x_t + W_hh H_{t-1} + b; derivative dz = dH_t phi'(z_t).

    Shapes: x_t (B, I), H_t (B, H). Parameters as torch.nn.RNNCell: ``weight_ih`` (H, I),
    ``weight_hh`` (H, H), ``bias_ih``, ``bias_hh`` (H,).
    """

    core_reads = ()

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", *, init: str = "rnnlab", device=None, dtype=None,
                 layer_norm: bool = False):
        self.nonlinearity = check_activation(nonlinearity, ("tanh", "relu", "sigmoid"))
        self.native_mode = {"tanh": "rnn_tanh", "relu": "rnn_relu"}.get(nonlinearity)
        super().__init__(input_size, hidden_size, bias, init=init, device=device, dtype=dtype,
                         layer_norm=layer_norm)

    def extra_repr(self):
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"

    def core(self, p, z, u, state, mm):
        return (activate(self.nonlinearity, z),), ()

    def core_backward(self, p, saved, state, new_state, d_new, mm_grad):
        dz = activate_backward(self.nonlinearity, new_state[0], d_new[0])
        return dz, (), (None,), {}
