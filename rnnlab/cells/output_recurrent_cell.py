"""The purely output-recurrent cell: no hidden-to-hidden term, so teacher forcing trains it in one
pass over all steps."""
from __future__ import annotations

from typing import Dict, Tuple

from .cell import Product
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
    replaces it, and nothing links step t to step t-1 any more (:attr:`core_reads` is empty and the
    one product reads y): the ``bptt`` and ``compiled`` engines then run all T steps as one step
    over T*B rows, O(1) serial steps (the notes' complexity table, "Training BPTT h(x, y*)").
    Recurrent dropout and weight drop act on W y_{t-1}; layer normalisation on U x_t and
    W y_{t-1} (gains ``ln_gain_ih``, ``ln_gain_yh``).

    Shapes: x_t (B, I), s_t (B, H), y_t (B, O). Under ``init="rnnlab"`` U, W and W_hy are
    Glorot-uniform, biases zero.
    """

    def weight_shapes(self) -> Dict[str, Tuple[int, ...]]:
        H, I, O = self.hidden_size, self.input_size, self.out_features
        shapes = {"weight_ih": (H, I), "weight_yh": (H, O), "weight_hy": (O, H)}
        if self.bias:
            shapes.update(bias_ih=(H,), bias_hy=(O,))
        return shapes

    @property
    def products(self):
        """W (m * y_{t-1}) (recurrent dropout and weight drop act on it) and the readout (inner)."""
        return (Product("weight_yh", None, source=1), self.readout_product())
