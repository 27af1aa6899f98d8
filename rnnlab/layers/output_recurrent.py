"""The purely output-recurrent RNN layer: trained in one pass over time under teacher forcing."""
from __future__ import annotations

from ..cells.output_recurrent_cell import OutputRecurrentCell
from .output_feedback import OutputFeedbackRNN


class OutputRecurrentRNN(OutputFeedbackRNN):
    r"""RNN whose only recurrence is its output, s_t = a(U x_t + W y_{t-1} + b), y_t = g(W_hy s_t + b_y).

    Each step is :class:`rnnlab.cells.output_recurrent_cell.OutputRecurrentCell` (the equations
    and the legend); everything else (arguments, ``hx = (s_0, y_0)``, ``teacher``, ``lengths``,
    several layers, bidirectional) is as :class:`rnnlab.OutputFeedbackRNN`, whose cells have the
    hidden-to-hidden term V s_{t-1} this one lacks.

    Engines: open loop, ``compiled`` (``auto`` on the CPU) and ``bptt`` run the hand-written
    backpropagation through time and ``loop`` autograd through the steps. Teacher-forced
    (``teacher`` given), the last layer has no serial dependence left: every engine but ``loop``
    computes all its T steps in one pass (two matrix products over all T*B rows, no time loop
    forward or backward), ``loop`` runs the step loop,
    the reference they are tested against. Lower layers (``num_layers`` > 1) run open loop on
    their own outputs, which have no targets to force them to.

    Regularization, options of the layer as of every rnnlab layer (the cell's docstring has the
    equations): ``weight_drop`` on W (``weight_yh``), ``recurrent_dropout`` on y_{t-1} where it
    enters W y_{t-1} (one mask per sequence), ``zoneout`` on the state units (s, y), and
    ``layer_norm=True`` (U x_t and W y_{t-1} each normalised, gains ``ln_gain_ih``,
    ``ln_gain_yh``), open loop and teacher-forced, under ``bptt`` and ``loop``; masks drawn once
    per call, off (zoneout: its expectation) in ``eval()``. Teacher-forced, weight drop,
    recurrent dropout and layer normalisation keep the one pass; zoneout makes s_t read s_{t-1},
    so the pass keeps its matrix products over all steps but blends s step by step.

    Parameters per layer and direction (``_l{k}``, ``_reverse``): ``weight_ih`` (H, I_k), U;
    ``weight_yh`` (H, O), W; ``weight_hy`` (O, H), W_hy; ``bias_ih`` (H,); ``bias_hy`` (O,).
    """

    cell_class = OutputRecurrentCell
