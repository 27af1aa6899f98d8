"""Drop-in replacements for torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN (and their rnnlab extensions)."""
from __future__ import annotations

from ..cells.gru_cell import GRUCell
from ..cells.lstm_cell import LSTMCell
from ..cells.rnn_cell import RNNCell
from .recurrent_layer import RecurrentLayer


class LSTM(RecurrentLayer):
    """Multi-layer LSTM over a sequence; torch.nn.LSTM's arguments, parameters and return values.

    Each step is :class:`rnnlab.LSTMCell` (its docstring has the equations); the cell options
    ``forget_gate``, ``peephole`` and ``forget_bias`` pass through. ``hx`` is ``(h_0, c_0)``, each
    (D*L, B, H); returns ``output, (h_n, c_n)``. ``proj_size`` is accepted for signature
    compatibility and must be 0.
    """

    cell_class = LSTMCell

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None, **options):
        if proj_size:
            raise ValueError(f"rnnlab.LSTM does not support proj_size (got {proj_size}); use 0")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype, **options)
        self.proj_size = 0


class GRU(RecurrentLayer):
    """Multi-layer GRU over a sequence; torch.nn.GRU's arguments, parameters and return values.

    Each step is :class:`rnnlab.GRUCell` (its docstring has the equations). ``reset_after=True``
    (default) is torch's form, which torch's kernel (``native``) also computes;
    ``reset_after=False`` (the notes' form, reset gate on h_{t-1} before the matrix product) has
    no torch kernel: ``native`` raises. ``auto`` runs ``compiled`` on the CPU for both forms.
    ``hx`` is h_0 (D*L, B, H); returns ``output, h_n``.
    """

    cell_class = GRUCell

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, **options):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype, **options)


class RNN(RecurrentLayer):
    """Multi-layer vanilla RNN; torch.nn.RNN's arguments, parameters and return values.

    Each step is :class:`rnnlab.RNNCell`: H_t = phi(W_ih x_t + b_ih + W_hh H_{t-1} + b_hh), phi
    ``nonlinearity`` = tanh, relu or sigmoid (sigmoid has no torch kernel: ``native`` refuses it).
    """

    cell_class = RNNCell

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None,
                 **options):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype, nonlinearity=nonlinearity,
                         **options)
        self.nonlinearity = nonlinearity
