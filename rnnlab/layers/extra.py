"""Layers of the lecture notes' other recurrent cells, beyond torch.nn's LSTM, GRU and RNN.

Each is a :class:`RecurrentLayer` over one cell class, with torch.nn.RNN's constructor
``(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
bidirectional=False, device=None, dtype=None, **cell_options)``, its forward and return values.
None of these cells has a torch fused kernel: ``engine="auto"`` runs ``compiled`` on the CPU
(``bptt`` where it cannot be built, or for an option it does not know).
"""
from __future__ import annotations

from ..cells.leaky_rnn_cell import LeakyRNNCell
from ..cells.residual_rnn_cell import ResidualRNNCell
from .recurrent_layer import RecurrentLayer


class LeakyRNN(RecurrentLayer):
    """Multi-layer RNN of leaky units (the notes' 10.9.2): h_t = a h_{t-1} + (1 - a) phi(...).

    Each step is :class:`rnnlab.LeakyRNNCell` (its docstring has the equations); the cell options
    ``leak``, ``leak_mode`` (``"fixed"`` or ``"learned"``), ``leak_shape`` and ``nonlinearity``
    pass through. A learned leak adds the parameters ``leak_logit_l{k}[_reverse]``.
    """

    cell_class = LeakyRNNCell


class ResidualRNN(RecurrentLayer):
    """Multi-layer residual RNN: s_t = s_{t-1} + [i_t *] phi(W_ir x_t + W_hr s_{t-1} + b).

    Each step is :class:`rnnlab.ResidualRNNCell` (its docstring has the equations); the cell
    options ``gated`` and ``nonlinearity`` pass through.
    """

    cell_class = ResidualRNNCell
