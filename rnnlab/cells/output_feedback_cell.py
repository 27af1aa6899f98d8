"""The output-recurrence cell: the previous output feeds the next state; teacher forcing."""
from __future__ import annotations

from typing import Dict, Tuple

from ..activations import activate, activate_backward, check_activation
from .cell import Product, RecurrentCell, check_size, glorot_bound

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
    replaces it, as a state the engines are given at every step (stepping the cell by hand with
    the state (s_{t-1}, y*_{t-1}) is the same teacher forcing).

    Layer normalisation (``layer_norm=True``) normalises U x_t, V s_{t-1} and W y_{t-1}, each
    over its H units with a gain of its own (``ln_gain_ih``, ``ln_gain_hh``, ``ln_gain_yh``).

    Shapes: x_t (B, I), s_t (B, H), y_t (B, O). Under ``init="rnnlab"`` V starts orthogonal, U, W
    and W_hy Glorot-uniform, biases zero.
    """

    state_names = ("s", "y")
    output_state = 1
    core_reads = ()

    def __init__(self, input_size: int, hidden_size: int, output_size: int, bias: bool = True, *,
                 nonlinearity: str = "tanh", output_activation: str = "identity",
                 init: str = "rnnlab", device=None, dtype=None, layer_norm: bool = False):
        # O; ``output_size`` itself is the base class's property, state_sizes[output_state]
        self.out_features = check_size("output_size", output_size)
        self.nonlinearity = check_activation(nonlinearity, ("tanh", "relu", "sigmoid"))
        self.output_activation = check_activation(output_activation, OUTPUT_ACTIVATIONS,
                                                  "output_activation")
        super().__init__(input_size, hidden_size, bias, init=init, device=device, dtype=dtype,
                         layer_norm=layer_norm)

    def weight_shapes(self) -> Dict[str, Tuple[int, ...]]:
        H, I, O = self.hidden_size, self.input_size, self.out_features
        shapes = {"weight_ih": (H, I), "weight_hh": (H, H), "weight_yh": (H, O),
                  "weight_hy": (O, H)}
        if self.bias:
            shapes.update(bias_ih=(H,), bias_hh=(H,), bias_hy=(O,))
        return shapes

    @property
    def products(self):
        """V s_{t-1} (recurrent dropout and weight drop act on it), W y_{t-1}, and the readout
        W_hy s_t + b_y (inner)."""
        return (Product(bias="bias_hh" if self.bias else None),
                Product("weight_yh", None, source=1, dropout=False),
                self.readout_product())

    def readout_product(self) -> Product:
        """The readout W_hy s_t + b_y (inner): shared with the subclasses' :attr:`products`
        through this method (torch.compile reads ``super().products`` as the property)."""
        return Product("weight_hy", "bias_hy" if self.bias else None, inner=True, dropout=False, norm=False)

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
        return s + (", layer_norm=True" if self.layer_norm else "")

    def core(self, p, z, u, state, mm):
        """s_t = a(z_t),  y_t = g(W_hy s_t + b_y); nothing else saved."""
        s = activate(self.nonlinearity, z)
        return (s, activate(self.output_activation, mm(0, s))), ()

    def core_backward(self, p, saved, state, new_state, d_new, mm_grad):
        """dzy = dy_t g'(zy);  dz = (ds_t + dzy W_hy) a'(z) (derivatives from the saved s_t, y_t);
        the previous state reaches the step through the products alone."""
        (s, y), (ds, dy) = new_state, d_new
        dzy = activate_backward(self.output_activation, y, dy)  # (B, O)
        return activate_backward(self.nonlinearity, s, ds + mm_grad(0, dzy)), (), (None, None), {}
