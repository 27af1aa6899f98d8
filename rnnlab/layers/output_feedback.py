"""The output-feedback RNN layer, run open loop or under teacher forcing."""
from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence

from ..cells.output_feedback_cell import OutputFeedbackCell
from ..sequence import reverse_padded, unpack
from .recurrent_layer import RecurrentLayer


class OutputFeedbackRNN(RecurrentLayer):
    r"""RNN with output recurrence, s_t = a(U x_t + V s_{t-1} + W y_{t-1} + b), y_t = g(W_hy s_t + b_y).

    Each step is :class:`rnnlab.OutputFeedbackCell` (its docstring has the equations and the
    legend). Arguments as torch.nn.RNN plus ``output_size`` O; cell options ``nonlinearity`` (a)
    and ``output_activation`` (g).

    Forward: ``forward(input, hx=None, lengths=None, return_states=False, teacher=None)``.

    - ``hx``: ``(s_0, y_0)``, (D*L, B, H) and (D*L, B, O); zeros if None.
    - ``teacher``: None runs open loop, each step fed its own previous output y_{t-1}. A tensor
      in the layout of ``output`` ((T, B, D*O), (B, T, D*O) with ``batch_first``, (T, D*O)
      unbatched, or a PackedSequence like ``input``) runs under teacher forcing: ``teacher[t]``
      is the true previous output y*_{t-1} that replaces y_{t-1} at step t; the caller shifts the
      targets (``teacher[0]`` is y*_0, e.g. a start value, and y_0 of ``hx`` is then not read).
      Teacher-forced, the engines are given y*_{t-1} as the state y each step reads (under
      zoneout y_t = lerp(y*_{t-1}, y~_t, k_t), the blend with what the step read).
      Bidirectional: the last O features drive the
      backward direction, whose previous output in its own time is the one at t+1, so its part of
      ``teacher[t]`` is y*_{t+1} (each direction's outputs shifted by one step in its own time).
    - Returns ``(output, (s_n, y_n))``: output (T, B, D*O), the y_t of the last layer; with
      ``return_states=True`` also every (s_t, y_t) of the last layer.

    Several layers (``num_layers`` L > 1): layer k > 0 reads the outputs y of layer k - 1
    (D*O features). The outputs of the lower layers are internal, with no targets to force them
    to, so under teacher forcing only the last layer, whose y is the model's output, is
    teacher-forced; the lower layers always run open loop on their own outputs.

    Parameters per layer and direction (``_l{k}``, ``_reverse``): ``weight_ih`` (H, I_k), U;
    ``weight_hh`` (H, H), V; ``weight_yh`` (H, O), W; ``weight_hy`` (O, H), W_hy; ``bias_ih``,
    ``bias_hh`` (H,); ``bias_hy`` (O,). No fused torch kernel exists: ``auto`` runs
    ``compiled`` on the CPU in open loop (``bptt`` where it cannot).
    """

    cell_class = OutputFeedbackCell

    def __init__(self, input_size, hidden_size, output_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None, *,
                 nonlinearity="tanh", output_activation="identity", **options):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype, output_size=output_size,
                         nonlinearity=nonlinearity, output_activation=output_activation, **options)
        self.output_size = output_size
        self.nonlinearity, self.output_activation = nonlinearity, output_activation

    def forward(self, input, hx=None, lengths=None, return_states: bool = False, teacher=None):
        if teacher is None:
            return self.run(input, hx, lengths, return_states)
        extras = {"teacher": self._teacher_time_major(teacher, input)}  # (T, B, D*O)
        return self.run(input, hx, lengths, return_states, extras)

    def _teacher_time_major(self, teacher, input) -> torch.Tensor:
        """``teacher`` in the layout of the output, checked and made (T, B, D*O)."""
        DO = (2 if self.bidirectional else 1) * self.output_size
        name = type(self).__name__
        if isinstance(input, PackedSequence):
            if (not isinstance(teacher, PackedSequence) or teacher.data.shape[-1:] != (DO,)
                    or not torch.equal(teacher.batch_sizes, input.batch_sizes)
                    or not _same_indices(teacher.sorted_indices, input.sorted_indices)):
                raise ValueError(f"{name} with a PackedSequence input expects teacher as a "
                                 f"PackedSequence of the same sequences with {DO} features")
            return unpack(teacher)[0]
        if isinstance(teacher, PackedSequence) or not torch.is_tensor(teacher):
            raise ValueError(f"{name} expects teacher as a tensor in the layout of the input, "
                             f"got {type(teacher).__name__}")
        if torch.is_tensor(input) and input.dim() in (2, 3):
            want = tuple(input.shape[:-1]) + (DO,)
            if tuple(teacher.shape) != want:
                raise ValueError(f"{name} expected teacher (the true previous outputs) of shape "
                                 f"{want}, got {tuple(teacher.shape)}")
        if teacher.dim() == 2:
            return teacher.unsqueeze(1)  # (T, 1, D*O)
        return teacher.transpose(0, 1) if self.batch_first else teacher

    def given_states(self, index, lengths, extras):
        """Teacher-forced, the last layer's cells read y*_{t-1} in place of their own y_{t-1}
        (state 1); the lower layers, whose outputs have no targets, run open loop."""
        teacher = extras.get("teacher")
        D = 2 if self.bidirectional else 1
        layer, d = divmod(index, D)
        if teacher is None or layer < self.num_layers - 1:
            return {}
        O = self.output_size
        y_prev = teacher[..., d * O:(d + 1) * O]  # (T, B, O)
        if d == 1:  # the backward direction runs on the sequences reversed in their lengths
            y_prev = reverse_padded(y_prev, lengths)
        return {1: y_prev}


def _same_indices(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return torch.equal(a, b)
