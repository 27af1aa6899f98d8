r"""The information-flow regularizer of Pascanu, Mikolov and Bengio (2013), the notes'
"regularizing to encourage the information flow" (optimization for long-term dependencies).

Backpropagation through time carries the error back one step by the Jacobian of the step,

    dL/dh_k = dL/dh_{k+1} dh_{k+1}/dh_k          (the part through the recurrence),

and the gradient vanishes when these products shrink it step after step. The regularizer asks
each step to keep the norm of the back-propagated error in the direction it actually has:

.. math::
    \Omega = \sum_k \Omega_k = \sum_k \left( \frac{\| \delta_{k+1}\, \partial h_{k+1} / \partial h_k \|}
                                                 {\| \delta_{k+1} \|} - 1 \right)^2,
    \qquad \delta_{k+1} = \frac{\partial L}{\partial h_{k+1}}

summed over the steps k = 0 .. n-1 of each sequence (n its length; h_0 the initial state),
averaged over the sequences of the batch, and added to the loss as ``L + lambda * Omega``
(``--information-flow lambda``). For the vanilla RNN, h_{k+1} = phi(a_{k+1}),
a_{k+1} = W_ih x_{k+1} + W_hh h_k + b:

    delta_{k+1} dh_{k+1}/dh_k = (delta_{k+1} * phi'(a_{k+1})) W_hh

What is held constant, as in the paper: Omega is differentiated only through the recurrent
weights where they appear explicitly in the Jacobian. delta_{k+1} (the total derivative of the
loss, every later step's contribution included) is computed first, by a backward pass of the
loss, and is a constant; so are the states h_k, h_{k+1} and with them phi'(a_{k+1}). Hence

    dOmega/dW_hh = sum_k 2 (r_k - 1) u_k^T v_k / (||v_k|| ||delta_{k+1}||),
    u_k = delta_{k+1} * phi'(a_{k+1}),  v_k = u_k W_hh,  r_k = ||v_k|| / ||delta_{k+1}||

and no gradient reaches W_ih, the biases or the output layer from Omega.

With skip connections through time (:mod:`rnnlab.engines.skip`, h_{k+1} also reads
h_{k+1-d} through W_skip), the recurrence is first order in the stacked state
s_k = [h_k, h_{k-1}, ..., h_{k-d+1}] (d slots), and Omega is taken over s with
delta_{k+1} = dL/ds_{k+1}:

    (delta dS_{k+1}/ds_k)[0]   = dz W_hh + delta[1]                         (d > 1)
    (delta dS_{k+1}/ds_k)[j]   = delta[j + 1]                               0 < j < d - 1
    (delta dS_{k+1}/ds_k)[d-1] = dz W_skip                                  (d > 1)
    dz = delta[0] * phi'(a_{k+1});   for d = 1 the one slot is dz (W_hh + W_skip)

(W_skip as explicit as W_hh: both live, everything else constant).

A step whose delta_{k+1} is zero (no loss depends on it) has no direction to preserve and is left
out. Defined here for the vanilla RNN cell (tanh, relu or sigmoid), with or without skip
connections, in a one-layer, one-direction layer run by the ``bptt`` engine, whose backward
records every delta (:func:`rnnlab.engines.bptt.record_state_gradients`).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Optional, Tuple

import torch

from ..activations import activate_backward
from ..cells.rnn_cell import RNNCell
from ..engines.skip import SkipConnections
from ..engines.bptt import record_state_gradients
from ..errors import ConfigError

#: ||delta_{k+1}||^2 at or below this counts as zero: the step is left out
ZERO = 1e-30


def check_layer(layer) -> RNNCell:
    """The cell of a layer the regularizer is defined for (module docstring), or a ConfigError."""
    cell = layer.cells[0]
    if not isinstance(cell.cell if isinstance(cell, SkipConnections) else cell, RNNCell):
        raise ConfigError(f"information_flow is defined for the vanilla RNN (--cell rnn), "
                          f"got a layer of {type(cell).__name__}")
    if layer.num_layers != 1 or layer.bidirectional:
        raise ConfigError(f"information_flow needs one layer in one direction, got "
                          f"{layer.num_layers} layer(s){', bidirectional' if layer.bidirectional else ''}")
    return cell


def stacked_delta(cell: RNNCell, deltas: Tuple[torch.Tensor, ...]) -> torch.Tensor:
    """dL/ds_t of the stacked state s_t (module docstring) from the recorded dL/dstate_t of the
    cell's own states: (T, B, d, H); d = 1 without skip connections. The delay line's first slot
    is h_t itself, so its gradient joins dL/dh_t."""
    if not isinstance(cell, SkipConnections):
        return deltas[0].unsqueeze(2)                                        # (T, B, 1, H)
    d_h, d_delay = deltas
    T, B, H = d_h.shape
    d_s = d_delay.reshape(T, B, cell.steps, H).clone()                  # (T, B, d, H)
    d_s[:, :, 0] += d_h
    return d_s


def back_propagated(cell: RNNCell, p, h: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """v_k = delta_{k+1} ds_{k+1}/ds_k for every step at once: h (T, B, H) = h_{k+1} (constant),
    delta (T, B, d, H) (constant) -> (T, B, d, H), a function of W_hh (and W_skip) only."""
    dz = activate_backward(cell.nonlinearity, h, delta[:, :, 0])             # (T, B, H) delta * phi'
    into_h = dz @ p["weight_hh"]                                             # (T, B, H)
    if not isinstance(cell, SkipConnections):
        return into_h.unsqueeze(2)
    into_back = dz @ p["weight_skip"]                                        # (T, B, H) to h_{k+1-d}
    if cell.steps == 1:
        return (into_h + into_back).unsqueeze(2)
    shifted = delta[:, :, 1:]                                                # slot j <- delta[j + 1]
    first = into_h + shifted[:, :, 0]
    middle = shifted[:, :, 1:]
    return torch.cat((first.unsqueeze(2), middle, into_back.unsqueeze(2)), dim=2)


def information_flow(cell: RNNCell, p, h: torch.Tensor, deltas: Tuple[torch.Tensor, ...],
                     lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Omega of the module docstring, averaged over the batch.

    ``h`` (T, B, H): h_1 .. h_T; ``deltas``: the recorded dL/dstate_1..T, one (T, B, S) per state
    of the cell; ``lengths`` (B,): pairs past a sequence's end are left out. Both are detached:
    the result is a function of ``p["weight_hh"]`` (and ``p["weight_skip"]``) alone.
    """
    delta = stacked_delta(cell, tuple(d.detach() for d in deltas))           # (T, B, d, H)
    v = back_propagated(cell, p, h.detach(), delta)                          # (T, B, d, H)
    den2 = delta.pow(2).sum((2, 3))                                          # (T, B)
    num2 = v.pow(2).sum((2, 3))
    keep = den2 > ZERO
    if lengths is not None:
        T = h.shape[0]
        keep &= torch.arange(T, device=h.device).unsqueeze(1) < lengths.to(h.device).view(1, -1)
    ratio = (num2.clamp_min(ZERO) / den2.clamp_min(ZERO)).sqrt()             # ||v|| / ||delta||
    omega_k = torch.where(keep, (ratio - 1) ** 2, torch.zeros_like(ratio))   # (T, B)
    return omega_k.sum(0).mean()


@contextmanager
def bptt_engine(layer):
    """Run ``layer`` under the ``bptt`` engine inside the block (its backward records deltas)."""
    engine = layer.engine
    layer.engine = "bptt"
    try:
        yield layer
    finally:
        layer.engine = engine


def information_flow_of_loss(layer, loss: torch.Tensor, states: Tuple[torch.Tensor, ...],
                             lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Omega for ``loss``, computed through ``layer`` (its forward run under ``bptt``, see
    :func:`bptt_engine`), whose states at every step are ``states`` (the layer's
    ``return_states``). One backward pass of the loss, kept for the trainer's own backward,
    records the deltas."""
    cell = check_layer(layer)
    if layer.last_engine != "bptt":
        raise ConfigError(f"information_flow reads the deltas of the bptt engine's backward; the "
                          f"layer ran {layer.last_engine!r}")
    p = layer.cell_params(0)
    with record_state_gradients() as record:
        torch.autograd.grad(loss, [p["weight_hh"]], retain_graph=True)
    found = [grads for c, grads in record if c is cell]
    if not found:
        raise ConfigError("information_flow: the loss does not reach the recurrent layer's states")
    return information_flow(cell, p, states[cell.output_state], found[-1], lengths)


def check_task(recipe, train, source: str) -> None:
    """A non-zero ``information_flow`` only for a task whose objective adds it (one line)."""
    if train.information_flow and not getattr(recipe, "applies_information_flow", False):
        raise ConfigError(f"{source}: information_flow (the regularizer of Pascanu et al.) is "
                          f"added to the objective of --task adding and copy only, not --task {recipe.name}")
