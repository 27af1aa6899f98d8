"""The deep-transition RNN layer: every step's state update is an MLP, with a skip connection."""
from __future__ import annotations

from ..cells.deep_transition_cell import DeepTransitionCell
from .recurrent_layer import RecurrentLayer


class DeepTransitionRNN(RecurrentLayer):
    """Multi-layer deep-transition RNN; torch.nn.RNN's arguments and return values.

    Each step is :class:`rnnlab.DeepTransitionCell` (its docstring has the equations): the state
    update is an MLP of ``depth`` layers with nonlinearity ``nonlinearity``, plus the skip
    connection h_t = u_t + h_{t-1} unless ``skip=False``. ``num_layers`` stacks such cells (depth
    between steps and depth within a step are separate choices). ``hx`` is h_0 (D*L, B, H);
    returns ``output (T, B, D*H), h_n``. Parameters per layer and direction: torch.nn.RNN's
    ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` and the deeper
    layers' ``weight_t{j}_l{k}``, ``bias_t{j}_l{k}`` (``_reverse`` for the backward direction).
    No fused torch kernel exists: ``auto`` runs ``compiled`` on the CPU (``bptt`` where it cannot).
    """

    cell_class = DeepTransitionCell

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, *, depth=2,
                 nonlinearity="tanh", skip=True, **options):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype, depth=depth,
                         nonlinearity=nonlinearity, skip=skip, **options)
        self.depth, self.nonlinearity, self.skip = depth, nonlinearity, skip
