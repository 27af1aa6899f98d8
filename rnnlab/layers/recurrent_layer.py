"""One way to run any cell over time: multi-layer, bidirectional, variable length.

:class:`RecurrentLayer` stacks cells of one class. Its parameters carry torch.nn's names,
``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` (``_reverse`` for the
backward direction) plus the cell's own extra parameters under the same pattern, so that a
torch.nn.LSTM / GRU / RNN state dict loads unchanged.
"""
from __future__ import annotations

import contextlib

import logging
import time
import weakref
from typing import List, Optional, Tuple

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from .. import compiler
from ..cells.cell import RecurrentCell, check_size
from ..init import init_parameter
from ..engines import (RUNNERS, autotune, check_engine, compiled_layer_unsupported,
                       graph_engine, native_unsupported, run, run_native, triton_unsupported)
from ..engines.regularization import Regularization, dropout, make_call
from ..engines.skip import SkipConnections
from ..sequence import check_lengths, length_mask, repack, reverse_padded, unpack

log = logging.getLogger("rnnlab")


@compiler.disable
def _run_outside_graph(layer, *args):
    """``layer.run(*args)`` eagerly, one graph break (:meth:`RecurrentLayer._outside_graph`)."""
    return layer.run(*args)


def not_scriptable(layer: nn.Module):
    """torch.jit.script's hook (``__prepare_scriptable__``) of a layer: one clear error in place
    of TorchScript's about a line it cannot compile."""
    raise RuntimeError(f"torch.jit.script cannot compile rnnlab's {type(layer).__name__} (it runs Python and "
                       "C++ that TorchScript does not read); torch.export, ONNX export and "
                       "torch.jit.trace take it (docs/export.md)")


class RecurrentLayer(nn.Module):
    r"""A stack of recurrent cells run over a sequence.

    Args:
        input_size: I, features per step of the input.
        hidden_size: H, units per cell.
        num_layers: L, cells stacked; layer k > 0 reads the output of layer k - 1.
        bias: whether the cells have biases.
        batch_first: input and output as (B, T, ...) rather than (T, B, ...).
        dropout: dropout probability on the outputs of every layer but the last.
        bidirectional: each layer runs a forward and a backward cell and concatenates their outputs.
        engine: ``"auto"`` (the fastest of the engines that compute this configuration, measured
            on this machine once per shape class and cached: :mod:`rnnlab.engines.autotune`),
            ``"native"`` (torch's fused kernel), ``"compiled"`` (C++ time loops, CPU),
            ``"triton"`` (fused Triton cores, CUDA; :mod:`rnnlab.engines.triton_engine`),
            ``"bptt"`` (hand-written BPTT), ``"loop"`` (autograd through a loop of the cell) or
            ``"scan"`` (the loop's step inside torch's ``scan``: one graph node for the time loop).
            :attr:`last_engine` says which engine ran. Under ``torch.export`` and ONNX export
            every layer runs ``scan`` (T and B stay symbolic), under
            ``torch.jit.trace`` ``loop`` (:func:`rnnlab.engines.graph_engine`).
        init: ``"rnnlab"`` or ``"torch"``, see :mod:`rnnlab.init`.
        skip_steps: d > 0 adds skip connections through time, every gate also reading h_{t-d}
            through a weight ``weight_skip_l{k}`` (:mod:`rnnlab.engines.skip`; the cells
            then carry one more state, the delay line ``delay`` (D*L, B, d*H)); 0: none.
        **cell_options: passed to every cell (e.g. ``peephole="full"``, ``layer_norm=True``);
            among them the regularizers ``weight_drop``, ``recurrent_dropout``, ``zoneout``
            (:mod:`rnnlab.engines.regularization`, masks drawn per call, off in ``eval()``).

    Forward: ``forward(input, hx=None, lengths=None, return_states=False)``.

    - ``input``: (T, B, I), or (B, T, I) with ``batch_first``, or (T, I) unbatched, or a
      ``PackedSequence``.
    - ``hx``: the initial state, for one-state cells a tensor (D*L, B, H), for cells with several
      state tensors (the LSTM's (h, c)) a tuple of them; zeros if None. Gradients flow into it.
    - ``lengths``: (B,) integer lengths of a padded batch. Each sequence is run only over its own
      steps: final states are taken at its true end, the backward direction starts there, and the
      output past the end is zero.
    - Returns ``(output, h_n)`` as torch.nn: output (T, B, D*H_out) (a PackedSequence for packed
      input), h_n in the form ``hx`` takes. With ``return_states=True`` a third value holds the
      last layer's states at every step, one (T, B, D*S_k) tensor per state (e.g. every C_t).
    """

    cell_class = RecurrentCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, engine: str = "auto", init: str = "rnnlab", device=None, dtype=None,
                 skip_steps: int = 0, **cell_options):
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.num_layers = check_size("num_layers", num_layers)
        dropout = float(dropout)
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1], got {dropout}")
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), dropout
        self.bidirectional = bool(bidirectional)
        self.engine = check_engine(engine)
        self.init = init
        # weight_drop, recurrent_dropout, zoneout: masks drawn per call (engines/regularization.py)
        regularization = Regularization.from_options(cell_options, self.cell_class.state_names)
        if cell_options.get("layer_norm") is False:
            del cell_options["layer_norm"]  # the default
        self.regularization = regularization if regularization.active else None
        self.cell_options = dict(cell_options)
        self.last_engine: Optional[str] = None
        if isinstance(skip_steps, bool) or not isinstance(skip_steps, int) or skip_steps < 0:
            raise ValueError(f"skip_steps must be a whole number >= 0, got {skip_steps!r}")
        self.skip_steps = skip_steps
        D = 2 if self.bidirectional else 1
        cells: List[RecurrentCell] = []
        self._param_names: List[dict] = []
        layer_input = self.input_size
        for k in range(self.num_layers):
            for d in range(D):
                cell = self.cell_class(layer_input, hidden_size, bias=bias, init=init, device=device,
                                       dtype=dtype, **cell_options)
                suffix = f"_l{k}" + ("_reverse" if d else "")
                if skip_steps:  # W_skip (G*H, H_out), initialised as a recurrent weight
                    G = cell.weight_ih.shape[0]
                    cell.register_parameter("weight_skip", nn.Parameter(
                        torch.empty(G, cell.output_size, device=device, dtype=dtype)))
                    with torch.no_grad():
                        init_parameter(cell, "weight_skip", cell.weight_skip, init)
                names = {}
                for name, param in list(cell._parameters.items()):
                    self.register_parameter(name + suffix, param)  # torch.nn's name
                    names[name] = name + suffix
                    del cell._parameters[name]  # the layer owns it; the cell only computes
                for name, buf in list(cell._buffers.items()):  # e.g. a fixed leak: follows .to()
                    persistent = name not in cell._non_persistent_buffers_set
                    self.register_buffer(name + suffix, buf, persistent=persistent)
                    names[name] = name + suffix
                    del cell._buffers[name]
                    cell._non_persistent_buffers_set.discard(name)
                if regularization.active:
                    regularization.check_cell(cell)
                cells.append(SkipConnections(cell, skip_steps) if skip_steps else cell)
                self._param_names.append(names)
            layer_input = D * cells[-1].output_size
        self._cells = tuple(cells)  # a tuple, not a ModuleList: parameters live on the layer

    def __setattr__(self, name: str, value) -> None:
        super().__setattr__(name, value)
        if name != "last_engine":  # any other attribute may change the engine choice (_engine_key)
            self.__dict__["_version"] = self.__dict__.get("_version", 0) + 1

    @property
    def cells(self) -> Tuple[RecurrentCell, ...]:
        """The cells, layer-major: (layer 0 forward, layer 0 backward, layer 1 forward, ...)."""
        return self._cells

    def cell_params(self, index: int) -> dict:
        """Parameters (and buffers) of cell ``index`` under the cell's own names."""
        own = {**self._buffers, **self._parameters}  # (nn.Module's attribute lookup is slow)
        # (one that torch.nn.utils.parametrize computes, an orthogonal W_hh say, is an attribute)
        return {name: own[full] if full in own else getattr(self, full)
                for name, full in self._param_names[index].items()}

    def flat_weights(self) -> List[torch.Tensor]:
        """Weights in torch.nn's flat order (w_ih, w_hh, b_ih, b_hh per layer and direction)."""
        order = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if self.bias else ("weight_ih", "weight_hh")
        return [getattr(self, names[n]) for names in self._param_names for n in order]

    @property
    def all_weights(self) -> List[List[torch.Tensor]]:
        """torch.nn's view of the weights: per layer and direction [w_ih, w_hh, b_ih, b_hh] (the
        cell's own parameters after them), as torch.nn.RNN's ``all_weights``."""
        return [[getattr(self, full) for full in names.values()] for names in self._param_names]

    def flatten_parameters(self) -> None:
        """Nothing to do: torch.nn's call to pack its weights into one block for cuDNN, kept so that
        code written for torch.nn.LSTM runs unchanged (rnnlab's engines read the weights as
        they are)."""

    def __prepare_scriptable__(self):
        return not_scriptable(self)

    def dtype_of_params(self) -> torch.dtype:
        return self.weight_ih_l0.dtype

    def reset_parameters(self) -> None:
        """Initialise every parameter again by ``init`` (see :mod:`rnnlab.init`)."""
        with torch.no_grad():
            for i, cell in enumerate(self.cells):
                for name, param in self.cell_params(i).items():
                    if isinstance(param, nn.Parameter):
                        init_parameter(cell, name, param, self.init)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for flag in ("batch_first", "bidirectional"):
            if getattr(self, flag):
                s += f", {flag}=True"
        if not self.bias:
            s += ", bias=False"
        if self.dropout:
            s += f", dropout={self.dropout}"
        for k, v in self.cell_options.items():
            s += f", {k}={v!r}"
        if self.skip_steps:
            s += f", skip_steps={self.skip_steps}"
        if self.regularization is not None:
            s += ", " + self.regularization.describe()
        return s + f", engine={self.engine!r}"

    # ------------------------------------------------------------------ engine choice
    def resolve_engine(self, return_states: bool = False, x: Optional[torch.Tensor] = None,
                       lengths: Optional[torch.Tensor] = None, given: bool = False) -> str:
        """The engine a forward call on ``x`` (time-major (T, B, I)) with ``lengths`` (``given``:
        states given at every step, teacher forcing) will use; ``native`` and ``compiled`` refuse
        what they cannot run, ``auto`` runs the fastest engine that computes this configuration
        on this machine, measured once per shape class and cached (:mod:`rnnlab.engines.autotune`;
        ``RNNLAB_AUTOTUNE=0``: its documented rules; given states: ``bptt``, the one engine
        besides ``loop`` that takes them)."""
        graph = graph_engine()
        if graph is not None:
            return graph
        if torch.compiler.is_compiling():
            # ``auto``: the engine an eager call of these sizes runs, asked once per trace (a
            # constant: dynamo guards on no T bucket); ``scan`` as ``loop`` (inductor refuses
            # scan's body: torch 2.13, docs/export.md)
            if self.engine == "scan":
                return "loop"
            if self.engine == "auto" and not given:
                return autotune.traced_choice(self, x, lengths is not None, torch.is_grad_enabled(),
                                              x.requires_grad, self.training, return_states)
            return self._choose_engine(return_states, x, lengths, given)
        key = _engine_key(self, return_states, x, lengths, given)
        known = _ENGINE_VERDICTS.get(self)
        if known is not None and known[0] == key and (known[2] is None or time.monotonic() < known[2]):
            return known[1]
        until = None
        if self.engine == "auto" and not given:   # a provisional choice is asked again when it expires
            engine, until = autotune.verdict(self, x, lengths, return_states)
        else:
            engine = self._choose_engine(return_states, x, lengths, given)
        _ENGINE_VERDICTS[self] = (key, engine, until)
        return engine

    def _choose_engine(self, return_states: bool, x: Optional[torch.Tensor],
                       lengths: Optional[torch.Tensor] = None, given: bool = False) -> str:
        if self.engine == "auto":
            return "bptt" if given else autotune.choose_engine(self, x, lengths, return_states)
        if self.engine == "native":
            why = native_unsupported(self)
            if return_states:
                why = why or "torch's fused kernel does not return the state of every step"
            if why:
                raise ValueError(f"engine='native' cannot run this layer: {why}; "
                                 f"use engine='bptt' or 'auto'")
        if self.engine == "compiled":
            why_compiled = compiled_layer_unsupported(self, x, given)
            if why_compiled:
                raise ValueError(f"engine='compiled' cannot run this layer: {why_compiled}; "
                                 f"use engine='bptt' or 'auto'")
            autotune.note_compiled_runs()  # it has loaded: auto may measure it at once
        if self.engine == "triton":
            why_triton = triton_unsupported(x)
            if why_triton:
                raise ValueError(f"engine='triton' cannot run this layer: {why_triton}; use engine='auto'")
        return self.engine

    # ------------------------------------------------------------------ forward
    def forward(self, input, hx=None, lengths=None, return_states: bool = False):
        if torch.compiler.is_compiling() and self._outside_graph(input, lengths, return_states):
            return _run_outside_graph(self, input, hx, lengths, return_states)
        return self.run(input, hx, lengths, return_states)

    def _outside_graph(self, input, lengths, return_states: bool) -> bool:
        """Whether a traced call runs the whole layer eagerly (one graph break here, not deeper
        in the engine: docs/benchmarks/compile.md): a training call on torch's fused kernel, which
        dynamo cannot trace (``native``, or ``auto``'s verdict for the graph)."""
        if not (torch.is_grad_enabled() and self.engine in ("native", "auto") and torch.is_tensor(input)
                and input.dim() in (2, 3) and input.shape[-1] == self.input_size):
            return False  # (anything else, PackedSequence included, goes the usual way)
        x = input.unsqueeze(1) if input.dim() == 2 else input.transpose(0, 1) if self.batch_first else input
        return x.shape[0] > 0 and self.resolve_engine(return_states, x, lengths) == "native"

    def run(self, input, hx=None, lengths=None, return_states: bool = False, extras=None):
        """The forward pass; ``extras`` carries per-call inputs of a subclass (a teacher's
        outputs, say) to :meth:`given_states`."""
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError("give lengths or a PackedSequence, not both")
            x, lengths = unpack(input)
            batch_first, unbatched = False, False
        else:
            x, batch_first = input, self.batch_first
            if x.dim() not in (2, 3) or x.shape[-1] != self.input_size:
                want = "(B, T, I)" if batch_first else "(T, B, I)"
                raise ValueError(f"{type(self).__name__} expected input of shape {want} or (T, I) "
                                 f"with I = {self.input_size}, got {tuple(x.shape)}")
            unbatched = x.dim() == 2
            if unbatched:
                x = x.unsqueeze(1)
            elif batch_first:
                x = x.transpose(0, 1)
        T, B = x.shape[:2]
        if T == 0:
            raise ValueError("input has no time steps (T = 0)")
        lengths = check_lengths(lengths, T, B, x.device)
        hx = self._check_hx(hx, B, x, unbatched)
        engine = self.resolve_engine(return_states, x, lengths, given=bool(extras))
        # (a trace reads no last_engine: dynamo would guard on it, and every eager call of the
        # same module that set it anew would compile the model again)
        if not torch.compiler.is_compiling() and graph_engine() is None and engine != self.last_engine:
            log.info("%s: engine %r", type(self).__name__, engine)
            self.last_engine = engine
        if engine == "native" and extras:
            raise ValueError(f"engine='native' cannot take {', '.join(extras)}; use engine='bptt' or 'auto'")
        mixed = torch.is_autocast_enabled(x.device.type)
        if mixed:  # mixed precision: the time loop (torch's kernel too) in the parameters' float32
            dtype = self.dtype_of_params()
            x, hx = x.to(dtype), tuple(h.to(dtype) for h in hx)
        with torch.autocast(x.device.type, enabled=False) if mixed else contextlib.nullcontext():
            if engine == "native":
                out, final = run_native(self, x, hx, lengths)
                states = None
            else:
                out, final, states = self._run_stack(RUNNERS[engine], x, hx, lengths, extras or {})
        return self._format(out, final, states, packed, input, batch_first, unbatched, return_states)

    def given_states(self, index: int, lengths, extras) -> dict:
        """States given at every step of cell ``index`` (layer-major, see :attr:`cells`), in its
        own time: {state: (T, B, S)}; none here (teacher forcing: OutputFeedbackRNN)."""
        return {}

    def _run_stack(self, runner, x, hx, lengths, extras):
        """Every layer and direction with a runner (``compiled``, ``bptt`` or ``loop``)."""
        T, B = x.shape[:2]
        mask = None if lengths is None else length_mask(lengths, T)  # (T, B, 1)
        D = 2 if self.bidirectional else 1
        finals = [[] for _ in hx]
        layer_in = x
        for k in range(self.num_layers):
            outs, seqs_k = [], []
            for d in range(D):
                i = k * D + d
                cell = self.cells[i]
                state0 = tuple(h[i] for h in hx)
                xin = layer_in if d == 0 else reverse_padded(layer_in, lengths)
                call = make_call(cell, self.cell_params(i), xin, mask, self.regularization,
                                 self.training, self.given_states(i, lengths, extras))
                seqs = run(runner, call, xin, state0)  # each (T, B, S)
                for f, s in zip(finals, seqs):
                    f.append(s[-1:])  # (1, B, S): the state at each true end, carried through the padding
                if d == 1:
                    seqs = tuple(reverse_padded(s, lengths) for s in seqs)
                outs.append(seqs[cell.output_state])
                seqs_k.append(seqs)
            out = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (T, B, D*H)
            if mask is not None:
                out = out * mask
            if self.dropout and self.training and k < self.num_layers - 1:
                out = dropout(out, self.dropout)
            layer_in = out
        states = tuple(torch.cat([seqs[j] for seqs in seqs_k], dim=-1) if D == 2 else seqs_k[0][j]
                       for j in range(len(hx)))
        if mask is not None:
            states = tuple(s * mask for s in states)
        return out, tuple(f[0] if len(f) == 1 else torch.cat(f) for f in finals), states

    def _check_hx(self, hx, B: int, x: torch.Tensor, unbatched: bool):
        cell = self.cells[0]
        D = 2 if self.bidirectional else 1
        n = len(cell.state_names)
        shapes = [(self.num_layers * D, B, s) for s in cell.state_sizes]
        if hx is None:
            return tuple(x.new_zeros(s) for s in shapes)
        hx = (hx,) if torch.is_tensor(hx) else tuple(hx)
        if len(hx) != n:
            raise ValueError(f"{type(self).__name__} expected hx as {n} tensor(s) {cell.state_names}, "
                             f"got {len(hx)}")
        out = []
        for name, want, h in zip(cell.state_names, shapes, hx):
            got = tuple(h.shape)
            h = h.unsqueeze(1) if unbatched and h.dim() == 2 else h
            if tuple(h.shape) != want:
                w = (want[0], want[2]) if unbatched else want
                raise ValueError(f"{type(self).__name__} expected hx {name!r} of shape {w}, got {got}")
            out.append(h)
        return tuple(out)

    def _format(self, out, final, states, packed, input, batch_first, unbatched, return_states):
        one = len(final) == 1
        if packed:
            out = repack(out, input)
        elif unbatched:
            out = out.squeeze(1)
            final = tuple(f.squeeze(1) for f in final)
            states = None if states is None else tuple(s.squeeze(1) for s in states)
        elif batch_first:
            out = out.transpose(0, 1)
            states = None if states is None else tuple(s.transpose(0, 1) for s in states)
        h_n = final[0] if one else final
        if return_states:
            return out, h_n, states
        return out, h_n


#: layer -> (the key of its last engine choice, the engine chosen, when a provisional choice
#: expires (:func:`rnnlab.engines.autotune.verdict`) or None): reading the layer's and its
#: cells' options for the choice costs more than a generation step, the key far less
_ENGINE_VERDICTS: "weakref.WeakKeyDictionary[RecurrentLayer, tuple]" = weakref.WeakKeyDictionary()


def _engine_key(layer: RecurrentLayer, return_states: bool, x: Optional[torch.Tensor],
                lengths: Optional[torch.Tensor] = None, given: bool = False) -> tuple:
    """What the engine choice depends on, spelled out: the layer's options (the version of its
    attributes, counted by :meth:`RecurrentLayer.__setattr__`: an option set, ``engine``
    changed), its training flag, each cell's class and options (``extra_repr``), and the call:
    ``return_states``, states given (teacher forcing), the input's dtype and device and its shape
    class (:func:`rnnlab.engines.autotune.shape_class`: T's bucket, B, lengths or not, gradients
    or not, threads, deterministic mode)."""
    cells = tuple((type(c), c.extra_repr()) for c in layer._cells)
    call = None if x is None else (x.dtype, x.device, autotune.shape_class(layer, x, lengths))
    return layer.__dict__.get("_version", 0), layer.training, cells, return_states, given, call
