"""The ``compiled`` engine: the ``bptt`` engine's time loops compiled to native code.

The same hand-written backpropagation through time as :mod:`rnnlab.engines.bptt`, the forward
and the backward loop each one call into C++ (``csrc/``) per sequence rather than a dozen torch
operations per step from Python:

    xw = X W_ih^T                                   one product for all steps (as bptt)
    forward loop (C++):  z_t = xw_t + b + W_hh h~_{t-1}     one BLAS product per step
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

The call (:func:`run_compiled`): ``mask`` is None, the lengths mask (T, B, 1) bool, or zoneout keep
weights, one (T, B, S_k) tensor per state (lengths folded in); ``p`` holds the parameters by name
(a fixed leak's buffer ``leak`` too) and may hold ``recurrent_mask`` (B, H) (the output-recurrent
cell: (B, O)), m of h~ = m * h_{t-1} where h_{t-1} enters the recurrent product.
"""
from __future__ import annotations

import functools
import logging
import os
from typing import Optional, Tuple

import torch
from torch.autograd.function import once_differentiable

from ..cells.cell import Params, RecurrentCell, State
from ..cells.deep_transition_cell import DeepTransitionCell
from ..cells.gru_cell import GRUCell
from ..cells.leaky_rnn_cell import LeakyRNNCell
from ..cells.lstm_cell import LSTMCell
from ..cells.output_feedback_cell import OutputFeedbackCell
from ..cells.output_recurrent_cell import OutputRecurrentCell
from ..cells.residual_rnn_cell import ResidualRNNCell
from ..cells.rnn_cell import RNNCell
from ..linalg import MIN_MACS, mm, outer_sum
from . import bptt
from .call import Call

#: the key under which the C++ reads the recurrent-dropout mask
RECURRENT_MASK = "recurrent_mask"

log = logging.getLogger("rnnlab")

CSRC = os.path.join(os.path.dirname(__file__), "csrc")
#: the C++ sources, compiled.cpp (the module) first; the build's hash covers these and HEADERS
SOURCES = [os.path.join(CSRC, f) for f in ("compiled.cpp", "lstm.cpp", "gru.cpp", "rnn.cpp")]
HEADERS = [os.path.join(CSRC, f) for f in ("driver.h", "common.h", "blas.h")]

#: instruction-set flags per torch CPU capability: the build is named after the capability, so a
#: cache shared by different machines never loads code built for another processor
ARCH_FLAGS = {"AVX512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma"],
              "AVX2": ["-mavx2", "-mfma"]}

#: why the engine cannot run here (the build failed, say), once known; "" when it can
_broken: Optional[str] = None
#: the operators' module once this process has loaded it (it is loaded once: after a build, from
#: the build folder, never again from the cached copy)
_module = None


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
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        _broken = f"its C++ could not be built or loaded ({first})"
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
    flags = ["-O3", "-fno-trapping-math", "-fopenmp-simd", *ARCH_FLAGS.get(cap, [])]
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
                                            verbose=False, extra_cflags=flags, build_directory=build)
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


def compiled_broken() -> Optional[str]:
    """Why the compiled engine cannot run here, or None if it can."""
    return None if _ops() is not None else _broken


# ------------------------------------------------------------------ the configuration
# One function per cell class: the Config fields of its options (``ops`` the module, for the enums).
def _lstm(cell: LSTMCell, ops) -> dict:
    return {"kind": ops.Kind.lstm, "forget_gate": cell.forget_gate,
            "peephole": ops.Peephole.__members__[cell.peephole or "none"],
            "peephole_candidate": getattr(cell, "peephole_candidate", False)}


def _gru(cell: GRUCell, ops) -> dict:
    return {"kind": ops.Kind.gru, "reset_after": cell.reset_after}


def _rnn(cell: RNNCell, ops) -> dict:
    return {"kind": ops.Kind.rnn, "nonlinearity": ops.Act.__members__[cell.nonlinearity]}


def _leaky(cell: LeakyRNNCell, ops) -> dict:
    return {"kind": ops.Kind.leaky, "nonlinearity": ops.Act.__members__[cell.nonlinearity],
            "learned_leak": cell.leak_mode == "learned"}


def _residual(cell: ResidualRNNCell, ops) -> dict:
    return {"kind": ops.Kind.residual, "nonlinearity": ops.Act.__members__[cell.nonlinearity],
            "gated": cell.gated}


def _deep_transition(cell: DeepTransitionCell, ops) -> dict:
    return {"kind": ops.Kind.deep_transition, "nonlinearity": ops.Act.__members__[cell.nonlinearity],
            "depth": cell.depth, "skip": cell.skip}


def _output_feedback(cell: OutputFeedbackCell, ops) -> dict:
    return {"kind": ops.Kind.output_feedback, "nonlinearity": ops.Act.__members__[cell.nonlinearity],
            "output_activation": ops.Act.__members__[cell.output_activation]}


def _output_recurrent(cell: OutputRecurrentCell, ops) -> dict:
    return {**_output_feedback(cell, ops), "kind": ops.Kind.output_recurrent}


#: the cell classes this engine runs (each exactly, not its subclasses)
_BUILDERS = {LSTMCell: _lstm, GRUCell: _gru, RNNCell: _rnn, LeakyRNNCell: _leaky,
             ResidualRNNCell: _residual, DeepTransitionCell: _deep_transition,
             OutputFeedbackCell: _output_feedback, OutputRecurrentCell: _output_recurrent}


def _configure(cell: RecurrentCell, p: Optional[Params], x: Optional[torch.Tensor]):
    """(the cell's Config, None), or (None, why the engine cannot run it on ``x`` with ``p``)."""
    build = _BUILDERS.get(type(cell))
    if build is None:
        return None, f"the compiled engine does not implement {type(cell).__name__}"
    ops = _ops()
    if ops is None:
        return None, compiled_broken()
    cfg = ops.Config()
    cfg.bias, cfg.layer_norm = cell.bias, bool(getattr(cell, "layer_norm", False))
    for name, value in build(cell, ops).items():
        setattr(cfg, name, value)
    try:
        cfg.check()
    except ValueError as e:
        return None, str(e)
    if p is not None:
        want, got = set(cfg.parameters()), set(p) - {RECURRENT_MASK}
        if got != want:
            return None, (f"the compiled engine does not know the parameters {sorted(got ^ want)} of "
                          f"{type(cell).__name__}({cell.extra_repr()})")
    if x is not None and x.device.type != "cpu":
        return None, f"the compiled engine runs on the CPU only, got device {x.device}"
    if x is not None and x.dtype not in (torch.float32, torch.float64):
        return None, f"the compiled engine runs float32 and float64 only, got {x.dtype}"
    return cfg, None


def compiled_unsupported(cell: RecurrentCell, p: Optional[Params] = None,
                         x: Optional[torch.Tensor] = None) -> Optional[str]:
    """Why the compiled engine cannot run ``cell`` (on ``x``, with parameters ``p``), or None: a
    cell class it does not implement, options it does not run together, parameters other than
    those its configuration reads."""
    return _configure(cell, p, x)[1]


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
def _run(cfg, p: Params, x: torch.Tensor, state0: State, mask):
    """The C++ ``Run`` of one call: the input projection (here, through the fastest kernel, for a
    big one; in the C++ for a short sequence, generation's), the state buffers, the loops."""
    T, B, I = x.shape
    W = p["weight_ih"]
    xw = mm(x.reshape(T * B, I), W.t()).view(T, B, -1) if T * B * W.numel() >= MIN_MACS else None
    zoned = isinstance(mask, tuple)
    return _ops().Run(cfg, p, x, xw, list(state0), None if zoned else mask, list(mask) if zoned else [])


class CompiledFunction(torch.autograd.Function):
    """Autograd function over the whole sequence, as :class:`~rnnlab.engines.bptt.BPTTFunction`:
    inputs (x, *state0, *p.values()), outputs the state sequences (T, B, S_k)."""

    @staticmethod
    def forward(ctx, cfg, names: Tuple[str, ...], mask, unread, x: torch.Tensor, *tensors: torch.Tensor):
        n_state = len(tensors) - len(names)
        run = _run(cfg, dict(zip(names, tensors[n_state:])), x, tensors[:n_state], mask)
        states = run.forward()
        ctx.cfg, ctx.names, ctx.mask, ctx.run, ctx.unread = cfg, names, mask, run, unread
        ctx.set_materialize_grads(False)  # a state sequence nobody used gets no zero gradient
        ctx.save_for_backward(x, *tensors)
        return tuple(s[1:] for s in states)

    @staticmethod
    @once_differentiable
    def backward(ctx, *d_seqs):
        x, *tensors = ctx.saved_tensors
        n_state = len(tensors) - len(ctx.names)
        p = dict(zip(ctx.names, tensors[n_state:]))
        run, ctx.run = ctx.run, None  # this backward overwrites its buffers
        if run is None:  # a second backward through a retained graph: the forward again
            run = _run(ctx.cfg, p, x, tensors[:n_state], ctx.mask)
            run.forward()
        d_xw, d_state0, entries = run.backward(list(d_seqs))
        # every weight's gradient: the C++'s sums as they are, sum_t d_t^T a_t as one product over
        # all steps (dW_ih = sum_t dxw_t^T x_t, dW_hh = sum_t dz_t^T h~_{t-1}, ...); a weight
        # whose row blocks are separate products (the GRU's W_hn) gets them stacked in order
        grads = {"weight_ih": outer_sum(d_xw, x)}
        for name, d, a in entries:
            g = d if a is None else outer_sum(d, a)
            grads[name] = torch.cat((grads[name], g)) if name in grads else g
        T, B, I = x.shape
        dx = mm(d_xw.view(T * B, -1), p["weight_ih"]).view(T, B, I) if ctx.needs_input_grad[4] else None
        d_state0 = (None if k in ctx.unread else d for k, d in enumerate(d_state0))
        return (None, None, None, None, dx, *d_state0, *(grads.get(n) for n in ctx.names))


def run_compiled(call: Call, x: torch.Tensor, state0: State) -> Tuple[torch.Tensor, ...]:
    """Run ``call.cell`` over ``x`` (T, B, I) with the compiled BPTT; same contract as ``run_bptt``.

    Without gradients (generation, evaluation) the forward loop runs alone, one C++ call. Inside
    ``bptt.record_state_gradients`` (which keeps every dL/dstate_t) ``bptt`` runs instead. A
    configuration the engine cannot run raises (the layer checks it first,
    :func:`compiled_layer_unsupported`).
    """
    if bptt._RECORDS:
        return bptt.run_bptt(call, x, state0)
    if call.given:
        raise ValueError("engine='compiled' cannot run this: states given at every step (teacher "
                         "forcing) run on bptt")
    p = dict(call.p)
    if call.masks:
        (p[RECURRENT_MASK],) = call.masks.values()
    cfg, why = _configure(call.cell, p, x)
    if why:
        raise ValueError(f"engine='compiled' cannot run this: {why}")
    mask = call.zoneout if call.zoneout is not None else call.lengths
    if isinstance(mask, torch.Tensor):
        mask = mask.reshape(mask.shape[0], mask.shape[1])
    if not (torch.is_grad_enabled() and (x.requires_grad or any(s.requires_grad for s in state0)
                                         or any(t.requires_grad for t in p.values()))):
        with torch.no_grad():
            return tuple(s[1:] for s in _run(cfg, p, x, state0, mask).forward())
    return CompiledFunction.apply(cfg, tuple(p), mask, call.unread, x, *state0, *p.values())
