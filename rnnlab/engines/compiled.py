"""The ``compiled`` engine: the ``bptt`` engine's time loops compiled to native code.

The same hand-written backpropagation through time as :mod:`rnnlab.engines.bptt`, the forward
and the backward loop each one call into C++ (``csrc/``) per sequence rather than a dozen torch
operations per step from Python:

    xw = X W_ih^T                                   one product for all steps (as bptt)
    forward loop (C++):  z_t = xw_t + b + W_hh h~_{t-1}     one product per step (the fastest of
                                                            the BLAS, oneDNN and rnnlab's packed
                                                            kernel: csrc/onednn.h, csrc/panels.h)
                         gates, state_t             the cell's row kernel, over batch and units
    backward loop (C++): dz_t, dL/dstate_{t-1}      the row kernel's derivative, the products'
    dL/dX = dL/dxw W_ih, dL/dW = sum_t dout_t^T in_t     one product per weight, all steps at once

One driver (``csrc/driver.h``) holds what every cell shares: the input side (biases, layer
normalisation of W_ih x_t), every per-step matrix product (``Product``: recurrent dropout on its
input, layer normalisation of its blocks, its bias, and the sequences its weight's gradient
needs), the lengths mask, zoneout's blend, the loss's gradient at each step. Each cell family
adds its row kernel and derivative (``lstm.cpp``, ``gru.cpp``, ``rnn.cpp``), the equations of the
cells' Python cores (rnnlab/cells/*.py), which tests/engines/test_compiled_*.py hold equal to ``bptt``
(float64, relative 1e-7).

The C++ is told what to run by a typed description, ``Config`` (the enums ``Kind``, ``Act``,
``Peephole`` and the options), built here from the cell's class and option attributes by one
function per cell class (:data:`_BUILDERS`) and checked in C++ (a bad combination, a missing,
unknown or misshapen tensor: one ValueError naming it). This module reads only the cell's class,
those attributes and the parameter tensors by name; it never calls the cell's methods.

The C++ is built with torch.utils.cpp_extension on first use (about a minute, once; cached in
``$RNNLAB_CACHE`` or ~/.cache/rnnlab, see :func:`_build`) and loaded once per process.
If it cannot be built or loaded, rnnlab logs one warning, ``auto`` runs ``bptt`` and
``engine="compiled"`` raises an error saying why. ``RNNLAB_COMPILED=0`` turns the engine off.

Supported: LSTMCell (forget gate on/off; peephole none / diagonal / full, with or without the
candidate's peephole ``peephole_candidate``), GRUCell (``reset_after`` True/False), RNNCell,
LeakyRNNCell (leak fixed or learned, scalar or per unit), ResidualRNNCell (plain or gated),
DeepTransitionCell (any depth, skip on/off), OutputFeedbackCell and OutputRecurrentCell in open
loop (output activation identity, tanh, sigmoid; under teacher forcing they keep their own
paths); nonlinearity tanh, relu, sigmoid; with or without biases; layer normalisation
(``layer_norm=True``) of all but the output cells; with every regularizer of
:mod:`rnnlab.engines.regularization` (weight drop, recurrent dropout, zoneout); float32 and
float64 on the CPU. Skip connections and given states (teacher forcing) run on ``bptt``.

Under ``torch.compile`` the engine is two custom operators (``rnnlab::compiled_forward`` and
``rnnlab::compiled_backward``), which dynamo keeps in its graph: no graph break
(``fullgraph=True`` holds); the C++ run lists the sequences its backward reads (``Run.saved()``)
and is rebuilt from them for the backward.

The call (:func:`run_compiled`): ``mask`` is None, the lengths mask (T, B, 1) bool, or zoneout keep
weights, one (T, B, S_k) tensor per state (lengths folded in); ``p`` holds the parameters by name
(a fixed leak's buffer ``leak`` too) and may hold ``recurrent_mask`` (B, H) (the output-recurrent
cell: (B, O)), m of h~ = m * h_{t-1} where h_{t-1} enters the recurrent product.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import re
from typing import List, Optional, Tuple

import torch

from .. import compiler
from ..cells.cell import Params, RecurrentCell, State
from ..cells.deep_transition_cell import DeepTransitionCell
from ..cells.gru_cell import GRUCell
from ..cells.leaky_rnn_cell import LeakyRNNCell
from ..cells.lstm_cell import LSTMCell
from ..cells.output_feedback_cell import OutputFeedbackCell
from ..cells.output_recurrent_cell import OutputRecurrentCell
from ..cells.residual_rnn_cell import ResidualRNNCell
from ..cells.rnn_cell import RNNCell
from ..linalg import MIN_MACS, mm, onednn_allowed, outer_sum
from . import bptt
from .call import Call
from .loop import second_order

#: the key under which the C++ reads the recurrent-dropout mask
RECURRENT_MASK = "recurrent_mask"

log = logging.getLogger("rnnlab")

CSRC = os.path.join(os.path.dirname(__file__), "csrc")
#: the C++ sources, compiled.cpp (the module) first; the build's hash covers these and HEADERS
SOURCES = [os.path.join(CSRC, f) for f in ("compiled.cpp", "lstm.cpp", "gru.cpp", "rnn.cpp")]
HEADERS = [os.path.join(CSRC, f) for f in ("driver.h", "common.h", "blas.h", "onednn.h", "panels.h", "pool.h")]

#: instruction-set flags per torch CPU capability: the build is named after the capability, so a
#: cache shared by different machines never loads code built for another processor
ARCH_FLAGS = {"AVX512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma"],
              "AVX2": ["-mavx2", "-mfma"]}

#: why the engine cannot run here (the build failed, say), once known; "" when it can
_broken: Optional[str] = None
#: the operators' module once this process has loaded it (it is loaded once: after a build, from
#: the build folder, never again from the cached copy)
_module = None


def _first_error(report: str) -> str:
    """The line of a build's report that says what went wrong (the compiler's first error, "not
    found", ...), else its last line."""
    lines = [line.strip() for line in report.split("\n") if line.strip()]
    telling = [line for line in lines if re.search(r"error|not found|no such|cannot", line, re.IGNORECASE)
               and not line.startswith(("Error building extension", "FAILED", "ninja:"))]
    return (telling[0] if telling else lines[-1] if lines else "")[:300]


@functools.lru_cache(maxsize=None)
def _ops():
    """The compiled module (``Config``, its enums, ``Run``), built and loaded on first call; None
    (after one warning) when that fails."""
    global _broken
    if os.environ.get("RNNLAB_COMPILED", "1") == "0":
        _broken = "it is turned off (RNNLAB_COMPILED=0)"
        return None
    try:
        ops = _build()
    except Exception as e:  # no compiler, no ninja, a failed build or load: bptt serves
        _broken = f"its C++ could not be built or loaded ({_first_error(str(e)) or type(e).__name__})"
        log.warning("rnnlab: the compiled engine is unavailable, %s; using the bptt engine", _broken)
        return None
    _broken = ""
    return ops


def _build():
    """Build (once per machine) and load the C++ module.

    The library is cached as ``<cache>/<name>.so``, where the name carries the CPU capability and
    a hash of the source, the flags and the torch and Python versions (a changed source or
    another torch builds anew). The cache is ``$RNNLAB_CACHE`` or ``~/.cache/rnnlab``. One process
    builds while the others wait on an ``flock`` of ``<name>.lock``, a lock the kernel releases
    when its holder exits, however it exits; the build happens in a folder of the builder's own
    and the finished library is moved into place in one rename, so a build killed half-way
    leaves nothing that a later process would wait on or load. A process loads the library once;
    later calls return the module it loaded.
    """
    global _module
    if _module is not None:
        return _module
    import fcntl
    import glob
    import hashlib
    import shutil
    import sys
    import tempfile
    from torch.utils import cpp_extension
    cap = torch.backends.cpu.get_cpu_capability()
    flags = ["-O3", "-fno-trapping-math", "-fopenmp", *ARCH_FLAGS.get(cap, [])]
    digest = hashlib.sha256(repr((flags, torch.__version__, sys.version_info[:2])).encode())
    for path in SOURCES + HEADERS:
        with open(path, "rb") as f:
            digest.update(os.path.basename(path).encode() + b"\0" + f.read())
    name = f"rnnlab_compiled_{cap.lower()}_{digest.hexdigest()[:12]}"
    cache = os.path.join(os.environ.get("RNNLAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "rnnlab"),
                         "compiled")
    os.makedirs(cache, exist_ok=True)
    library = os.path.join(cache, name + ".so")
    with open(os.path.join(cache, name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        if not os.path.exists(library):
            log.warning("rnnlab: building the compiled engine (once per machine, about a minute)")
            for stale in glob.glob(os.path.join(cache, f"build-{name}-*")):  # left by a killed builder
                shutil.rmtree(stale, ignore_errors=True)
            build = tempfile.mkdtemp(prefix=f"build-{name}-", dir=cache)
            try:
                module = cpp_extension.load(name=name, sources=SOURCES, is_python_module=True,
                                            verbose=False, extra_cflags=flags, extra_ldflags=["-fopenmp"],
                                            build_directory=build)
                shutil.copyfile(module.__file__, library + ".tmp")
                os.replace(library + ".tmp", library)
            finally:
                shutil.rmtree(build, ignore_errors=True)
        else:
            import importlib.util
            spec = importlib.util.spec_from_file_location(name, library)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        _module = module
    return module


def compiled_available() -> bool:
    """Whether the compiled engine runs here (builds it on the first call)."""
    return _ops() is not None


def loaded():
    """The C++ module if this process has loaded it, else None (nothing is built)."""
    return _module


def empty_cache() -> int:
    """Hand back to the system the memory the compiled engine keeps for its next calls (the
    blocks of its freed sequences: ``csrc/pool.h``); the bytes handed back, 0 where the engine is
    not loaded. As ``torch.cuda.empty_cache``: for another program's sake, never needed for
    rnnlab's."""
    return _module.empty_cache() if _module is not None else 0


@compiler.assume_constant_result  # (under torch.compile: asked once while tracing)
def compiled_broken() -> Optional[str]:
    """Why the compiled engine cannot run here, or None if it can."""
    return None if _ops() is not None else _broken


# ------------------------------------------------------------------ the configuration
# One function per cell class: the Config fields of its options, enums by name. Plain Python
# that dynamo traces: under torch.compile the configuration travels as a string, ``spec``.
def _lstm(cell: LSTMCell) -> dict:
    return {"kind": "lstm", "forget_gate": cell.forget_gate, "peephole": cell.peephole or "none",
            "peephole_candidate": getattr(cell, "peephole_candidate", False)}


def _gru(cell: GRUCell) -> dict:
    return {"kind": "gru", "reset_after": cell.reset_after}


def _rnn(cell: RNNCell) -> dict:
    return {"kind": "rnn", "nonlinearity": cell.nonlinearity}


def _leaky(cell: LeakyRNNCell) -> dict:
    return {"kind": "leaky", "nonlinearity": cell.nonlinearity, "learned_leak": cell.leak_mode == "learned"}


def _residual(cell: ResidualRNNCell) -> dict:
    return {"kind": "residual", "nonlinearity": cell.nonlinearity, "gated": cell.gated}


def _deep_transition(cell: DeepTransitionCell) -> dict:
    return {"kind": "deep_transition", "nonlinearity": cell.nonlinearity, "depth": cell.depth,
            "skip": cell.skip}


def _output_feedback(cell: OutputFeedbackCell) -> dict:
    return {"kind": "output_feedback", "nonlinearity": cell.nonlinearity,
            "output_activation": cell.output_activation}


def _output_recurrent(cell: OutputRecurrentCell) -> dict:
    return {**_output_feedback(cell), "kind": "output_recurrent"}


#: the cell classes this engine runs (each exactly, not its subclasses)
_BUILDERS = {LSTMCell: _lstm, GRUCell: _gru, RNNCell: _rnn, LeakyRNNCell: _leaky,
             ResidualRNNCell: _residual, DeepTransitionCell: _deep_transition,
             OutputFeedbackCell: _output_feedback, OutputRecurrentCell: _output_recurrent}
#: the Config fields that hold an enum, and its type's name in the module
_ENUMS = {"kind": "Kind", "nonlinearity": "Act", "output_activation": "Act", "peephole": "Peephole"}


def _spec(cell: RecurrentCell) -> str:
    """The cell's configuration as ``field=value`` items joined by ";" (the key of :func:`_config`)."""
    fields = {"bias": bool(cell.bias), "layer_norm": bool(getattr(cell, "layer_norm", False)),
              **_BUILDERS[type(cell)](cell)}
    return ";".join(f"{name}={value}" for name, value in fields.items())


@functools.lru_cache(maxsize=None)
def _config(spec: str):
    """The C++ ``Config`` of a :func:`_spec`, checked (a bad combination: ValueError)."""
    ops = _ops()
    cfg = ops.Config()
    for item in spec.split(";"):
        name, value = item.split("=")
        if name in _ENUMS:
            value = getattr(ops, _ENUMS[name]).__members__[value]
        else:
            value = value == "True" if value in ("True", "False") else int(value)
        setattr(cfg, name, value)
    cfg.check()
    return cfg


@compiler.assume_constant_result
def _why_not(spec: str, names: Optional[Tuple[str, ...]], cls: str) -> Optional[str]:
    """Why the engine cannot run the configuration ``spec`` of a cell of class ``cls`` with the
    tensors ``names`` (None: unknown), or None. Under torch.compile: called once while tracing,
    its answer a constant there."""
    if _ops() is None:
        return compiled_broken()
    try:
        cfg = _config(spec)
    except ValueError as e:
        return str(e)
    if names is not None:
        want, got = set(cfg.parameters()), set(names) - {RECURRENT_MASK}
        if got != want:
            return f"the compiled engine does not know the parameters {sorted(got ^ want)} of {cls}({spec})"
    return None


def _configure(cell: RecurrentCell, p: Optional[Params], x: Optional[torch.Tensor]) -> Optional[str]:
    """Why the engine cannot run ``cell`` on ``x`` with ``p``, or None."""
    if type(cell) not in _BUILDERS:
        return f"the compiled engine does not implement {type(cell).__name__}"
    why = _why_not(_spec(cell), None if p is None else tuple(p), type(cell).__name__)
    if why:
        return why
    if x is not None and x.device.type != "cpu":
        return f"the compiled engine runs on the CPU only, got device {x.device}"
    if x is not None and x.dtype not in (torch.float32, torch.float64):
        return f"the compiled engine runs float32 and float64 only, got {x.dtype}"
    return None


def compiled_unsupported(cell: RecurrentCell, p: Optional[Params] = None,
                         x: Optional[torch.Tensor] = None) -> Optional[str]:
    """Why the compiled engine cannot run ``cell`` (on ``x``, with parameters ``p``), or None: a
    cell class it does not implement, options it does not run together, parameters other than
    those its configuration reads."""
    return _configure(cell, p, x)


def compiled_layer_unsupported(layer, x: Optional[torch.Tensor] = None,
                               given: bool = False) -> Optional[str]:
    """Why the compiled engine cannot run ``layer`` (on ``x``; ``given``: with states given at
    every step, teacher forcing), or None if it can: the engine is unavailable here, or a cell is
    one it cannot run (:func:`compiled_unsupported`)."""
    why = compiled_broken()
    if why:
        return why
    if given:
        return "the compiled engine takes no states given at every step (teacher forcing)"
    for i, cell in enumerate(layer.cells):
        why = compiled_unsupported(cell, layer.cell_params(i), x)
        if why:
            return why
    return None


# ------------------------------------------------------------------ one cell over time
def _run(cfg, p: Params, x: torch.Tensor, state0: State, mask, saved=()):
    """The C++ ``Run`` of one call: the input projection (here, through the fastest kernel, for a
    big one; in the C++ for a short sequence, generation's), the state buffers, the loops.
    ``saved``: a forward's ``Run.saved()`` of this call, for a run of its backward alone."""
    T, B, I = x.shape
    W = p["weight_ih"]
    big = not saved and T * B * W.numel() >= MIN_MACS
    xw = mm(x.reshape(T * B, I), W.t()).view(T, B, W.shape[0]) if big else None
    zoned = isinstance(mask, tuple)
    return _ops().Run(cfg, p, x, xw, list(state0), None if zoned else mask, list(mask) if zoned else [],
                      list(saved), onednn_allowed(x.dtype))


def _gradients(run, d_seqs, x: torch.Tensor, p: Params, need_dx: bool, contiguous: bool = False):
    """The backward loop of ``run`` from dL/d(state sequences) ``d_seqs`` (None: unused):
    (dL/dx or None, [dL/dstate_0], {name: dL/dname}); ``contiguous``: every weight's gradient
    row-major (:func:`~rnnlab.linalg.outer_sum`)."""
    d_xw, d_state0, entries = run.backward(list(d_seqs))
    # every weight's gradient: the C++'s sums as they are, sum_t d_t^T a_t as one product over
    # all steps (dW_ih = sum_t dxw_t^T x_t, dW_hh = sum_t dz_t^T h~_{t-1}, ...); a weight
    # whose row blocks are separate products (the GRU's W_hn) gets them stacked in order
    grads = {"weight_ih": outer_sum(d_xw, x, contiguous)}
    for name, d, a in entries:
        g = d if a is None else outer_sum(d, a, contiguous)
        grads[name] = torch.cat((grads[name], g)) if name in grads else g
    T, B, I = x.shape
    dx = mm(d_xw.view(T * B, d_xw.shape[-1]), p["weight_ih"]).view(T, B, I) if need_dx else None
    return dx, d_state0, grads


class CompiledFunction(torch.autograd.Function):
    """Autograd function over the whole sequence, as :class:`~rnnlab.engines.bptt.BPTTFunction`:
    inputs (x, *state0, *p.values()), outputs the state sequences (T, B, S_k). Eager calls; under
    torch.compile the custom operators below."""

    @staticmethod
    def forward(ctx, cfg, names: Tuple[str, ...], mask, call: Call, x: torch.Tensor, *tensors: torch.Tensor):
        n_state = len(tensors) - len(names)
        run = _run(cfg, dict(zip(names, tensors[n_state:])), x, tensors[:n_state], mask)
        states = run.forward()
        ctx.cfg, ctx.names, ctx.mask, ctx.run, ctx.call = cfg, names, mask, run, call
        ctx.set_materialize_grads(False)  # a state sequence nobody used gets no zero gradient
        ctx.save_for_backward(x, *tensors)
        return tuple(s[1:] for s in states)

    @staticmethod
    def backward(ctx, *d_seqs):
        x, *tensors = ctx.saved_tensors
        n_state = len(tensors) - len(ctx.names)
        run, ctx.run = ctx.run, None  # this backward overwrites its buffers
        if torch.is_grad_enabled():  # create_graph: gradients with graphs of their own, loop's
            dx, d_state0, _, d_p = second_order(ctx.call, x, tensors[:n_state], d_seqs)
            return (None, None, None, None, dx, *d_state0, *(d_p.get(n) for n in ctx.names))
        p = dict(zip(ctx.names, tensors[n_state:]))
        if run is None:  # a second backward through a retained graph: the forward again
            run = _run(ctx.cfg, p, x, tensors[:n_state], ctx.mask)
            run.forward()
        dx, d_state0, grads = _gradients(run, d_seqs, x, p, ctx.needs_input_grad[4])
        unread = ctx.call.unread
        d_state0 = (None if k in unread else d for k, d in enumerate(d_state0))
        return (None, None, None, None, dx, *d_state0, *(grads.get(n) for n in ctx.names))


# ------------------------------------------------------------------ as torch operators
# Under torch.compile the engine is two custom operators, which dynamo records in its graph as
# they are (no graph break): the forward returns every sequence its backward reads (the C++
# Run's saved(), the states first) and a one-element flag, the backward takes them back and
# runs the backward loop alone (a Run rebuilt from them). A state sequence is returned as the
# layer's output, steps 1..T, a view that leaves out the initial state's row of its buffer; the
# backward takes the whole buffer back from it (:func:`_with_initial_row`). So dL/d(output)
# reaches the backward as it is, where a slice of the buffer's T + 1 rows would cost a pass over
# a zero-padded copy of it per training step (the slice's derivative, which inductor does not
# fold away): 1 ms of a 64 ms step at the main job's size. The configuration travels as the
# string ``spec``, the parameters' names as one string joined by ","; ``mask`` is the lengths
# mask (T, B) or None, ``keep`` zoneout's keep weights (or []). Each returns one flat list of
# tensors: inductor's C++ wrapper (``options={"cpp_wrapper": True}``) calls no operator whose
# results nest.
#
# The backward loop overwrites some of the sequences it reads (the gates become dL/dz_t), as
# the eager engine's does. Copying them first would cost a pass over fresh memory per training
# step; instead the backward uses them in place and sets the flag, "spent". Only a second
# backward through the same graph (retain_graph) finds it set, and runs the forward loop again
# for sequences of its own (as :class:`CompiledFunction` does). The sequences and the flag are
# read by this backward alone: nothing else in a graph sees them change.
#
# The operators are declared with torch.library's define / impl / register_fake /
# register_autograd rather than ``torch.library.custom_op``, whose wrappers (dynamo's disable,
# the aliasing checks of every output) cost about 0.1 ms per call.
_FORWARD_SCHEMA = ("(str spec, str names, Tensor x, Tensor[] state0, Tensor[] params, Tensor? mask, "
                   "Tensor[] keep) -> Tensor[]")
_BACKWARD_SCHEMA = ("(str spec, str names, Tensor x, Tensor[] state0, Tensor[] params, Tensor? mask, "
                    "Tensor[] keep, Tensor[] saved, Tensor?[] d_seqs, bool need_dx) -> Tensor[]")
#: the operators' overload name: they are named anew when this file or the C++ changes
_VERSION = compiler.operator_version(__file__, *SOURCES, *HEADERS)
_FORWARD = f"rnnlab::compiled_forward.{_VERSION}"
_BACKWARD = f"rnnlab::compiled_backward.{_VERSION}"
torch.library.define(_FORWARD, _FORWARD_SCHEMA)
torch.library.define(_BACKWARD, _BACKWARD_SCHEMA)


def _forward_op(spec: str, names: str, x: torch.Tensor, state0: List[torch.Tensor],
                params: List[torch.Tensor], mask: Optional[torch.Tensor],
                keep: List[torch.Tensor]) -> List[torch.Tensor]:
    """The forward loop: Run.saved(), the states first, each its steps 1..T (T, B, S_k) (a view
    of its buffer of T + 1 rows), then the flag "spent" (one bool, False)."""
    p = dict(zip(names.split(","), params))
    run = _run(_config(spec), p, x, state0, tuple(keep) if keep else mask)
    run.forward()
    seqs, n = run.saved(), len(state0)
    return [*(s[1:] for s in seqs[:n]), *seqs[n:], torch.zeros(1, dtype=torch.bool)]


def _with_initial_row(s: torch.Tensor) -> Optional[torch.Tensor]:
    """The buffer (T+1, B, S) of which ``s`` (T, B, S) is rows 1..T (as :func:`_forward_op`
    returns a state sequence), or None where ``s`` does not lie in one (a copy of it)."""
    if s.storage_offset() < s.stride(0) or not s.is_contiguous():
        return None
    return s.as_strided((s.shape[0] + 1, *s.shape[1:]), s.stride(), s.storage_offset() - s.stride(0))


@functools.lru_cache(maxsize=None)
def _layout(spec: str, names: str, shapes: Tuple[Tuple[int, ...], ...], I: int,
            sizes: Tuple[int, ...], dtype: torch.dtype, masked: bool, zoned: bool):
    """(steps - T, width) of each sequence of the C++ Run's saved(), read from the C++ itself: a
    run of one step and one sequence (zeros) of the same configuration and widths."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily
    with unset_fake_temporarily(), torch.no_grad():
        z = functools.partial(torch.zeros, dtype=dtype)
        p = {n: z(s) for n, s in zip(names.split(","), shapes)}
        state0 = [z(1, S) for S in sizes]
        mask = tuple(z(1, 1, S) for S in sizes) if zoned else torch.ones(1, 1, dtype=torch.bool) if masked else None
        return tuple((s.shape[0] - 1, s.shape[2]) for s in _run(_config(spec), p, z(1, 1, I), state0, mask).saved())


@torch.library.register_fake(_FORWARD)
def _(spec, names, x, state0, params, mask, keep):
    why = _why_not(spec, tuple(names.split(",")), "cell")
    if why:
        raise ValueError(f"engine='compiled' cannot run this: {why}")
    T, B, I = x.shape
    shapes = tuple((1, int(t.shape[1])) if n == RECURRENT_MASK else tuple(map(int, t.shape))
                   for n, t in zip(names.split(","), params))  # (the mask's B: not a size of the layout)
    layout = _layout(spec, names, shapes, int(I),
                     tuple(int(s.shape[1]) for s in state0), x.dtype, mask is not None, bool(keep))
    n = len(state0)  # (the states: steps 1..T of their buffers, views of T + 1 rows, as the real)
    return [*(x.new_empty((T + extra, B, width))[int(k < n):] for k, (extra, width) in enumerate(layout)),
            x.new_empty(1, dtype=torch.bool)]


def _backward_op(spec: str, names: str, x: torch.Tensor, state0: List[torch.Tensor],
                 params: List[torch.Tensor], mask: Optional[torch.Tensor], keep: List[torch.Tensor],
                 saved: List[torch.Tensor], d_seqs: List[Optional[torch.Tensor]],
                 need_dx: bool) -> List[torch.Tensor]:
    """The backward loop over the forward's outputs ``saved`` (its sequences, then the flag
    "spent") from dL/d(state sequence) ``d_seqs`` (T, B, S_k) (None: unused): [dL/dx, or an
    empty tensor without ``need_dx``, *dL/dstate_0, *dL/dparameter but the recurrent dropout
    mask's, zero for a fixed leak]. The loop runs in place on the sequences and sets the flag;
    a flag already set (a second backward, retain_graph), or state sequences that are not views
    of their buffers, run the forward loop again first."""
    p = dict(zip(names.split(","), params))
    cfg, mask = _config(spec), tuple(keep) if keep else mask
    *seqs, spent = saved
    buffers = [_with_initial_row(s) for s in seqs[:len(state0)]]
    if spent.item() or any(b is None for b in buffers):
        run = _run(cfg, p, x, state0, mask)
        run.forward()
    else:
        spent.data.fill_(True)  # (through .data: the saved flag's version stays, as a second backward needs)
        run = _run(cfg, p, x, state0, mask, [*buffers, *seqs[len(state0):]])
    # (the weights' gradients row-major, as the fake kernel's: oneDNN's is a transposed view where
    # it is the faster, which inductor's checks of the outputs' strides would refuse)
    dx, d_state0, grads = _gradients(run, d_seqs, x, p, need_dx, contiguous=True)
    out = [x.new_empty(0) if dx is None else dx, *d_state0,
           *(grads[n].contiguous() if n in grads else torch.zeros_like(t) for n, t in p.items() if n != RECURRENT_MASK)]
    seen = set()  # an operator's outputs share no memory: a bias's gradient that is a slice of
    for k, t in enumerate(out):  # another's (the C++'s sum of dL/dz_t) is copied
        base = t.data_ptr() - t.storage_offset() * t.element_size()  # (its storage's start)
        if base in seen:
            out[k] = t.clone()
        seen.add(base)
    return out


@torch.library.register_fake(_BACKWARD)
def _(spec, names, x, state0, params, mask, keep, saved, d_seqs, need_dx):
    return [torch.empty_like(x) if need_dx else x.new_empty(0), *(torch.empty_like(s) for s in state0),
            *(torch.empty_like(t) for n, t in zip(names.split(","), params) if n != RECURRENT_MASK)]


def _setup(ctx, inputs, output):
    spec, names, x, state0, params, mask, keep = inputs
    ctx.spec, ctx.names, ctx.n = spec, names, (len(state0), len(params), len(keep))
    ctx.need_dx = x.requires_grad
    ctx.mark_non_differentiable(*output[len(state0):])  # (no zero gradients made for them)
    ctx.set_materialize_grads(False)  # a state sequence nobody used: None, not a zero tensor
    ctx.save_for_backward(x, mask, *state0, *params, *keep, *output)


def _backward(ctx, d_saved):
    x, mask, *rest = ctx.saved_tensors
    n_state, n_params, n_keep = ctx.n
    state0, params = rest[:n_state], rest[n_state:n_state + n_params]
    keep, saved = rest[n_state + n_params:n_state + n_params + n_keep], rest[n_state + n_params + n_keep:]
    d_seqs = list(d_saved[:n_state])
    dx, *grads = compiled_backward(ctx.spec, ctx.names, x, state0, params, mask, keep, saved, d_seqs,
                                   ctx.need_dx)
    d_state0, d_params = grads[:n_state], iter(grads[n_state:])
    return (None, None, dx if ctx.need_dx else None, d_state0,
            [None if n == RECURRENT_MASK else next(d_params) for n in ctx.names.split(",")], None,
            [None] * n_keep)


def _no_double_backward(ctx, *grads):
    raise RuntimeError("rnnlab::compiled_backward has no derivative (no double backward through the "
                       "compiled engine under torch.compile)")


torch.library.impl(_FORWARD, "CompositeExplicitAutograd", _forward_op)
torch.library.impl(_BACKWARD, "CompositeExplicitAutograd", _backward_op)
compiler.register_autograd(_FORWARD, _forward_op, _backward, _setup)
compiler.register_autograd(_BACKWARD, _backward_op, _no_double_backward, None)
#: the operators as dynamo records them, and as the tests check them
compiled_forward = getattr(torch.ops.rnnlab.compiled_forward, _VERSION)
compiled_backward = getattr(torch.ops.rnnlab.compiled_backward, _VERSION)


#: set inside :func:`as_operators`: eager calls run the custom operators, as a compiled graph does
_OPERATORS = contextvars.ContextVar("rnnlab_compiled_operators", default=False)


@contextlib.contextmanager
def as_operators():
    """Eager calls of the compiled engine inside the block run its custom operators, the path a
    graph of torch.compile runs (``auto`` times the engine so for a model being compiled)."""
    token = _OPERATORS.set(True)
    try:
        yield
    finally:
        _OPERATORS.reset(token)


def run_compiled(call: Call, x: torch.Tensor, state0: State) -> Tuple[torch.Tensor, ...]:
    """Run ``call.cell`` over ``x`` (T, B, I) with the compiled BPTT; same contract as ``run_bptt``.

    Without gradients (generation, evaluation) the forward loop runs alone, one C++ call. Inside
    ``bptt.record_state_gradients`` (which keeps every dL/dstate_t) ``bptt`` runs instead. Under
    torch.compile the custom operators run it (:func:`compiled_forward`). A configuration the
    engine cannot run raises (the layer checks it first, :func:`compiled_layer_unsupported`).
    """
    if bptt._RECORDS:
        return bptt.run_bptt(call, x, state0)
    if call.given:
        raise ValueError("engine='compiled' cannot run this: states given at every step (teacher "
                         "forcing) run on bptt")
    p = dict(call.p)
    if call.masks:
        (p[RECURRENT_MASK],) = call.masks.values()
    why = _configure(call.cell, p, x)
    if why:
        raise ValueError(f"engine='compiled' cannot run this: {why}")
    mask = call.zoneout if call.zoneout is not None else call.lengths
    if isinstance(mask, torch.Tensor):
        mask = mask.reshape(mask.shape[0], mask.shape[1])
    spec = _spec(call.cell)
    if torch.compiler.is_compiling() or _OPERATORS.get():
        zoned = isinstance(mask, tuple)
        saved = compiled_forward(spec, ",".join(p), x, list(state0), list(p.values()),
                                 None if zoned else mask, list(mask) if zoned else [])
        return tuple(saved[:len(state0)])
    cfg = _config(spec)
    if not (torch.is_grad_enabled() and (x.requires_grad or any(s.requires_grad for s in state0)
                                         or any(t.requires_grad for t in p.values()))):
        with torch.no_grad():
            return tuple(s[1:] for s in _run(cfg, p, x, state0, mask).forward())
    return CompiledFunction.apply(cfg, tuple(p), mask, call, x, *state0, *p.values())
