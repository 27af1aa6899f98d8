"""The ``native`` engine: torch's own fused recurrent kernels (oneDNN on CPU, cuDNN on GPU).

Only exact configurations run here: the standard LSTM (forget gate, no peepholes), the GRU in
torch's form (``reset_after=True``) and the tanh or relu RNN. Anything else is refused with an
error naming what the kernel lacks.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import _VF
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from .. import compiler

KERNELS = {"lstm": _VF.lstm, "gru": _VF.gru, "rnn_tanh": _VF.rnn_tanh, "rnn_relu": _VF.rnn_relu}


def native_unsupported(layer) -> Optional[str]:
    """Why torch's fused kernel cannot run ``layer``'s configuration, or None if it can."""
    cell = layer.cells[0]
    regularization = getattr(layer, "regularization", None)
    if regularization is not None:
        return f"torch's fused kernel has no {regularization.describe()}"
    if cell.native_mode is None:
        return f"torch has no fused kernel for {cell.__class__.__name__}({cell.extra_repr()})"
    if layer.dtype_of_params() not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        return f"torch's fused kernel does not run dtype {layer.dtype_of_params()}"
    return None


def native_is_fastest(layer, x: torch.Tensor) -> bool:
    """Whether ``auto`` should prefer torch's kernel to ``bptt`` for this input.

    On a GPU, cuDNN's fused kernels beat any time loop driven from Python. On the CPU only the
    LSTM has a fused kernel (oneDNN, float32 and bfloat16); torch's CPU GRU and RNN, and its LSTM
    in float64, run a generic loop of per-step operations that the ``bptt`` engine outruns
    (BENCHMARKS.md has the figures).
    """
    if x.device.type != "cpu":
        return True
    return (layer.cells[0].native_mode == "lstm" and x.dtype in (torch.float32, torch.bfloat16)
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


def run_native(layer, x: torch.Tensor, hx: Tuple[torch.Tensor, ...],
               lengths: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]:
    """Run the whole stack with torch's kernel. x (T, B, I) time-major; hx one (L*D, B, H) tensor
    per state. Returns (output (T, B, D*H), final states).

    Under ``torch.compile`` without gradients (evaluation, generation) one custom operator runs
    it, ``rnnlab::native_forward``, in the graph; with gradients it runs eagerly, one opaque call
    (a graph break; a layer's own call breaks the graph before this, RecurrentLayer's
    ``_outside_graph``): dynamo refuses torch's fused kernels themselves ("Attempted to wrap RNN, GRU,
    or LSTM", torch 2.13), it cannot trace the packing by length (its sizes are data: an
    IndexError in its guards), inductor's lowering of the oneDNN LSTM fails in training
    ("expected Tensor() for op mkldnn_rnn_layer"), and an operator would have no backward but a
    second forward; the fused kernel gains nothing from compilation anyway."""
    mode, weights = layer.cells[0].native_mode, layer.flat_weights()
    dropout = float(layer.dropout) if layer.training and layer.num_layers > 1 else 0.0  # (between layers)
    if torch.compiler.is_compiling() and not torch.is_grad_enabled() and not dropout:
        out, *final = native_forward(mode, x, list(hx), weights, layer.bias, layer.num_layers,
                                     layer.bidirectional, lengths)
        return out, tuple(final)
    return _run_eagerly(mode, x, hx, weights, layer.bias, layer.num_layers, dropout, layer.training,
                        layer.bidirectional, lengths)


@compiler.disable
def _run_eagerly(mode: str, x, hx, weights, bias: bool, num_layers: int, dropout: float, training: bool,
                 bidirectional: bool, lengths):
    kernel = KERNELS[mode]
    args = (weights, bias, num_layers, dropout, training, bidirectional)
    h = hx if mode == "lstm" else hx[0]
    if lengths is None or x.shape[1] == 0:  # (an empty batch has nothing to pack)
        result = kernel(x, h, *args, False)
        out, final = result[0], result[1:]
        return out, tuple(final)
    T = x.shape[0]
    packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
    order, unorder = packed.sorted_indices, packed.unsorted_indices
    h = tuple(s.index_select(1, order) for s in h) if isinstance(h, tuple) else h.index_select(1, order)
    result = kernel(packed.data, packed.batch_sizes, h, *args)
    out_packed = packed._replace(data=result[0])
    out, _ = pad_packed_sequence(out_packed, total_length=T)
    final = tuple(s.index_select(1, unorder) for s in result[1:])
    return out, final


#: the operator's overload name: named anew when this file changes (:func:`compiler.operator_version`)
_VERSION = compiler.operator_version(__file__)
_NAME = f"rnnlab::native_forward.{_VERSION}"
torch.library.define(_NAME, "(str mode, Tensor x, Tensor[] hx, Tensor[] weights, bool bias, "
                     "int num_layers, bool bidirectional, Tensor? lengths) -> Tensor[]")


@torch.library.impl(_NAME, "CompositeExplicitAutograd")
def _native_forward(mode, x, hx, weights, bias, num_layers, bidirectional, lengths):
    """[output (T, B, D*H), final state per state tensor], torch's kernel, no gradients."""
    out, final = _run_eagerly(mode, x, tuple(hx), weights, bias, num_layers, 0.0, False, bidirectional, lengths)
    return [out, *final]


@torch.library.register_fake(_NAME)
def _(mode, x, hx, weights, bias, num_layers, bidirectional, lengths):
    T, B = x.shape[:2]
    return [x.new_empty(T, B, (1 + bidirectional) * hx[0].shape[-1]), *(torch.empty_like(h) for h in hx)]


native_forward = getattr(torch.ops.rnnlab.native_forward, _VERSION)
