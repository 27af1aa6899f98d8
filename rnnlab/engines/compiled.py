"""The ``compiled`` engine: the ``bptt`` engine's time loops compiled to native code.

The same hand-written backpropagation through time as :mod:`rnnlab.engines.bptt`, with the
forward and the backward loop each one call into C++ (``csrc/``: ``compiled.cpp`` the LSTM, GRU
and vanilla RNN and the operators' registration, one file per other cell family, ``common.h``
their shared helpers) per sequence rather than a dozen torch operations per step from Python:

    xw = X W_ih^T + b                               one product for all steps (as bptt)
    forward loop (C++):  z_t = xw_t + W_hh h_{t-1}  one BLAS product per step, into xw_t's storage
                         gates, state_t             one fused loop over batch and units
    backward loop (C++): dz_t, dL/dstate_{t-1}      the cell's step_backward, fused the same way
    dL/dX, dL/dW_ih, cell.recurrent_grads           one product each after the loop (as bptt)

The step equations and their derivatives are the cells' own (rnnlab/cells/*.py), written out
term by term in the C++ source; tests/test_compiled_engine.py holds the two equal (float64,
relative 1e-7) for every supported cell and option. The weight gradients are the cell's own
``recurrent_grads``, so only the per-step equations exist twice.

The C++ is built with torch.utils.cpp_extension on first use (about a minute, once; cached in
``$RNNLAB_CACHE`` or ~/.cache/rnnlab, see :func:`_build`) and loaded once per process.
If it cannot be built or loaded, rnnlab logs one warning, ``auto`` runs ``bptt`` and
``engine="compiled"`` raises an error saying why. ``RNNLAB_COMPILED=0`` turns the engine off.

Supported (an explicit whitelist: anything else, including any cell option this module does not
know, runs on ``bptt`` under ``auto``): LSTMCell (forget gate on/off, peephole none / diagonal /
full), GRUCell (``reset_after`` True/False), RNNCell (tanh, relu, sigmoid), LeakyRNNCell (leak
fixed or learned, scalar or per unit; tanh, relu, sigmoid), ResidualRNNCell (plain or gated;
tanh, relu, sigmoid), DeepTransitionCell (any depth, skip on/off; tanh, relu, sigmoid; the
products of layers 2..L per step through BLAS too), OutputFeedbackCell and OutputRecurrentCell
in open loop (nonlinearity tanh, relu, sigmoid; output activation identity, tanh, sigmoid; under
teacher forcing they keep their own paths, ``run_teacher_forced``); with or without biases;
float32 and float64 on the CPU.

What the C++ hands back beyond dL/dxw and dL/dstate_0 is what each cell's ``recurrent_grads``
reads: the GRU's per-step hn and d(hn), the deep-transition cell's u^(j) and dz^(j), the output
cells' dzy; for a learned leak, dL/d(leak_logit) whole (:func:`_learned_leak_grads`).
"""
from __future__ import annotations

import functools
import logging
import os
import weakref
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
from ..linalg import MIN_MACS, addmm, mm, outer_sum
from . import bptt

log = logging.getLogger("rnnlab")

CSRC = os.path.join(os.path.dirname(__file__), "csrc")
#: the C++ sources, compiled.cpp (the operators) first; the build's hash covers these and HEADERS
SOURCES = [os.path.join(CSRC, f) for f in ("compiled.cpp", "leaky_rnn.cpp", "residual_rnn.cpp",
                                           "deep_transition.cpp", "output_feedback.cpp")]
HEADERS = [os.path.join(CSRC, f) for f in ("common.h", "blas.h")]

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
    """The compiled operators (a Python module of ``forward``, ``run``, ``backward``), built and
    loaded on first call; None (after one warning) when that fails."""
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
    """Build (once per machine) and load the C++ operators.

    The library is cached as ``<cache>/<name>.so``, where the name carries the CPU capability and
    a hash of the source, the flags and the torch and Python versions (a changed source or
    another torch builds anew). The cache is ``$RNNLAB_CACHE`` or ``~/.cache/rnnlab``. One process
    builds while the others wait on an ``flock`` of ``<name>.lock``, a lock the kernel releases
    when its holder exits, however it exits; the build happens in a folder of the builder's own
    and the finished library is moved into place in one rename, so a build killed half-way
    leaves nothing that a later process would wait on or load. A process loads the library once;
    later calls return the operators it loaded.
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


# ------------------------------------------------------------------ the whitelist
#: attributes every supported cell may carry (nn.Module's own are private, "_..." or training)
_BASE = {"input_size", "hidden_size", "bias", "init", "gate_count", "native_mode", "fold_bias_hh",
         "training"}
#: the C++ codes of the nonlinearities and of the output cells' output activation g
_PHI = ("tanh", "relu", "sigmoid")
_OUTPUT_ACT = {"tanh": 0, "sigmoid": 2, "identity": 3}
#: cell class -> {attribute: allowed values (None: any)} of the options the C++ knows
_KNOWN = {
    LSTMCell: {"forget_gate": (True, False), "peephole": (None, "diagonal", "full"),
               "forget_bias": None},
    GRUCell: {"reset_after": (True, False)},
    RNNCell: {"nonlinearity": ("tanh", "relu", "sigmoid")},
    LeakyRNNCell: {"nonlinearity": _PHI, "leak_mode": ("fixed", "learned")},
    ResidualRNNCell: {"nonlinearity": _PHI, "gated": (True, False)},
    DeepTransitionCell: {"nonlinearity": _PHI, "depth": None, "skip": (True, False)},
    OutputFeedbackCell: {"nonlinearity": _PHI, "output_activation": _OUTPUT_ACT, "out_features": None},
    OutputRecurrentCell: {"nonlinearity": _PHI, "output_activation": _OUTPUT_ACT, "out_features": None},
}


#: cells that passed the attribute whitelist -> their number of attributes then (a cell given a
#: new attribute since is checked again)
_checked: "weakref.WeakKeyDictionary[RecurrentCell, int]" = weakref.WeakKeyDictionary()


#: cell -> (its number of attributes, the names :func:`_expected_params` found then)
_names: "weakref.WeakKeyDictionary[RecurrentCell, tuple]" = weakref.WeakKeyDictionary()


def _expected_params(cell: RecurrentCell) -> frozenset:
    """The names the C++ reads from ``p``: the cell's parameters (and a fixed leak's buffer);
    found once per cell (again if the cell gains an attribute), as every call asks."""
    known = _names.get(cell)
    if known is None or known[0] != len(vars(cell)):
        known = _names[cell] = (len(vars(cell)), frozenset(_parameter_names(cell)))
    return known[1]


def _parameter_names(cell: RecurrentCell) -> set:
    if type(cell) in _OTHER_KINDS:
        names = set(cell.parameter_shapes())
        return names | {"leak"} if isinstance(cell, LeakyRNNCell) and cell.leak_mode == "fixed" else names
    names = {"weight_ih", "weight_hh"} | ({"bias_ih", "bias_hh"} if cell.bias else set())
    if isinstance(cell, LSTMCell) and cell.peephole:
        names |= {"weight_ci", "weight_co"} | ({"weight_cf"} if cell.forget_gate else set())
    return names


def compiled_unsupported(cell: RecurrentCell, p: Optional[Params] = None,
                         x: Optional[torch.Tensor] = None) -> Optional[str]:
    """Why the compiled engine cannot run ``cell`` (on ``x``, with parameters ``p``), or None.

    A whitelist: the exact cell classes above with the options listed; any other attribute the
    cell carries (an option added after this engine, a layer normalisation, a dropout) makes the
    configuration unsupported, as do parameters or buffers other than the cell's usual ones.
    """
    known = _KNOWN.get(type(cell))
    if known is None:
        return f"the compiled engine does not implement {type(cell).__name__}"
    attrs = vars(cell)
    if _checked.get(cell) != len(attrs):  # checked before, and no attribute added since
        what = f"{type(cell).__name__}({cell.extra_repr()})"
        for k, v in attrs.items():
            if k[0] == "_" or k in _BASE:
                continue
            if k not in known:
                return f"the compiled engine does not know the option {k}={v!r} of {what}"
            if known[k] is not None and v not in known[k]:
                return f"the compiled engine does not implement {k}={v!r} of {what}"
        for name in ("step", "step_backward", "recurrent_grads", "input_bias"):
            if name in attrs:
                return f"{what} has its own {name}, which the compiled engine does not follow"
        _checked[cell] = len(attrs)
    if p is not None:
        want = _expected_params(cell)
        if len(p) != len(want) or not want.issuperset(p):
            return (f"the compiled engine does not know the parameters {sorted(set(p) ^ want)} of "
                    f"{type(cell).__name__}({cell.extra_repr()})")
    if x is not None:
        if x.device.type != "cpu":
            return f"the compiled engine runs on the CPU only, got device {x.device}"
        if x.dtype not in (torch.float32, torch.float64):
            return f"the compiled engine runs float32 and float64 only, got {x.dtype}"
    return None


#: layer attributes whose every value the compiled engine handles (the layer runs them around it)
_LAYER_KNOWN = {"input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
                "bidirectional", "engine", "init", "cell_options", "last_engine", "proj_size",
                "skip_steps", "training", "nonlinearity",  # nonlinearity: the RNN cells check it
                # the cells' own options, which the layer stores too and the cells check
                "depth", "skip", "output_size", "output_activation"}


def _layer_feeds_only_input(layer) -> bool:
    """Whether every call of ``layer`` the compiled engine may see feeds its cells their input
    alone: the generic ``run_cell``, or the output-feedback layers' (open loop: the generic one;
    teacher-forced: the cell's ``run_teacher_forced``, which hands the engine a vanilla RNN cell
    or computes all steps in one pass)."""


    return False


def compiled_layer_unsupported(layer, x: Optional[torch.Tensor] = None) -> Optional[str]:
    """Why the compiled engine cannot run ``layer`` (on ``x``), or None if it can: the engine is
    unavailable here, a cell is not on the whitelist (:func:`compiled_unsupported`), or the layer
    carries an option this engine does not know (an unknown attribute set to anything but
    None / False / 0), or feeds its cells more than their input."""
    for k, v in vars(layer).items():
        off = v is None or v is False or (type(v) in (int, float) and v == 0)
        if k[0] != "_" and k not in _LAYER_KNOWN and not off:
            return f"the compiled engine does not know the layer option {k}={v!r}"
    if not _layer_feeds_only_input(layer):
        return f"{type(layer).__name__} feeds its cells more than their input"
    for i, cell in enumerate(layer.cells):
        why = compiled_unsupported(cell, layer.cell_params(i), x)
        if why:
            return why
    return compiled_broken()


# ------------------------------------------------------------------ one cell over time
#: the C++ kind of each cell outside compiled.cpp (whose own are LSTM 0, GRU 1, RNN 2)
_OTHER_KINDS = {LeakyRNNCell: 3, ResidualRNNCell: 4, DeepTransitionCell: 5, OutputFeedbackCell: 6,
                OutputRecurrentCell: 7}


def _spec(cell: RecurrentCell, p: Params):
    """(kind, option code, extra tensors) that tell the C++ which cell and options to run (the
    codes are documented at the top of each C++ file)."""
    kind = _OTHER_KINDS.get(type(cell))
    if kind is not None:
        return kind, *_other_spec(kind, cell, p)
    if isinstance(cell, LSTMCell):
        pk = {None: 0, "diagonal": 1, "full": 2}[cell.peephole]
        extra = [] if not pk else [p["weight_ci"]] + ([p["weight_cf"]] if cell.forget_gate else []) + [p["weight_co"]]
        return 0, int(cell.forget_gate) + 2 * pk, extra
    if isinstance(cell, GRUCell):
        H = cell.hidden_size
        extra = [p["bias_hh"][2 * H:]] if (cell.reset_after and "bias_hh" in p) else []
        return 1, int(cell.reset_after), extra
    return 2, ("tanh", "relu", "sigmoid").index(cell.nonlinearity), []


def _other_spec(kind: int, cell: RecurrentCell, p: Params):
    """(option code, extra tensors) of the cells in their own C++ files (the C++ makes the
    extra tensors contiguous, at no cost for those that are)."""
    phi = _PHI.index(cell.nonlinearity)
    if kind == 3:  # the fixed leak a or leak_logit, () or (H,) (the C++ takes the sigmoid)
        learned = cell.leak_mode == "learned"
        return phi + 3 * learned, [p["leak_logit" if learned else "leak"]]
    if kind == 4:
        return phi + 3 * cell.gated, []
    if kind == 5:  # W_2 .. W_L, then b_2 .. b_L
        return phi + 3 * cell.skip + 6 * cell.bias, [p[n] for n in _transition_names(cell.depth, cell.bias)]
    extra = [p["weight_yh"], p["weight_hy"]] + ([p["bias_hy"]] if cell.bias else [])
    opt = phi + 4 * _OUTPUT_ACT[cell.output_activation] + 16 * (kind == 7)
    return opt, extra


@functools.lru_cache(maxsize=None)
def _transition_names(depth: int, bias: bool) -> Tuple[str, ...]:
    """The deep-transition cell's weight_t2 .. weight_tL, then (with biases) bias_t2 .. bias_tL."""
    js = range(2, depth + 1)
    return tuple(f"weight_t{j}" for j in js) + (tuple(f"bias_t{j}" for j in js) if bias else ())


def _input_biases(cell: RecurrentCell, p: Params) -> list:
    """The summands of b in xw_t = W_ih x_t + b (:meth:`RecurrentCell.input_bias`) as the C++
    ``run`` adds them: bias_ih, and bias_hh where the cell folds it, rather than their sum, a
    tensor operation per call that generation would pay at every step; a cell with its own
    ``input_bias``: its b."""
    if type(cell).input_bias is not RecurrentCell.input_bias:
        b = cell.input_bias(p)
        return [] if b is None else [b]
    b = p.get("bias_ih")
    if b is None:
        return []
    return [b, p["bias_hh"]] if cell.fold_bias_hh else [b]


def _w_hh(p: Params, like: torch.Tensor) -> torch.Tensor:
    """W_hh as the C++ takes it (contiguous); an empty tensor for a cell without one (the
    output-recurrent cell, whose C++ loop does not read it)."""
    w = p.get("weight_hh")
    return like.new_empty(0) if w is None else w.contiguous()


def _forward(cell: RecurrentCell, p: Params, x: torch.Tensor, state0: State,
             mask2: Optional[torch.Tensor]):
    """The forward: xw (overwritten with the gates), states (T+1, B, S_k), extra saved."""
    T, B, I = x.shape
    W_ih = p["weight_ih"]
    kind, opt, extra = _spec(cell, p)
    W_hh = _w_hh(p, x)
    if T * B * W_ih.numel() < MIN_MACS:  # a short sequence (generation): all of it one C++ call
        out = _ops().run(kind, opt, x, W_ih, _input_biases(cell, p), W_hh, extra, list(state0), mask2)
        n = len(state0)
        return out[0], out[1:n + 1], out[n + 1:]
    b = cell.input_bias(p)
    x2 = x.reshape(T * B, I)
    if kind in (3, 4) and b is not None:  # their loops add b per step (no copy of b over xw)
        xw, extra = mm(x2, W_ih.t()).view(T, B, -1), extra + [b]
    else:
        xw = (addmm(b, x2, W_ih.t()) if b is not None else mm(x2, W_ih.t())).view(T, B, -1)
    states = [x.new_empty((T + 1, B, s)) for s in cell.state_sizes]
    for buf, s0 in zip(states, state0):
        buf[0].copy_(s0)
    saved = _ops().forward(kind, opt, xw, W_hh, extra, states, mask2)
    return xw, states, saved


def _learned_leak_grads(cell: LeakyRNNCell, p: Params, d_xw: torch.Tensor, d_logit: torch.Tensor,
                        h_prev: torch.Tensor) -> dict:
    """The learned-leak cell's weight gradients when its C++ backward already summed

        dL/d(leak_logit) = sum_t sum_b dh_t (h_{t-1} - v_t) a (1 - a)   (leak_logit's shape)

    (the reduction and sigma's derivative that the cell's ``recurrent_grads`` does in torch):
    the rest is the cell's own, dW_hh = sum_t dz_t^T h_{t-1} and the biases'. h_prev (T, B, H).
    """
    grads = {"weight_hh": outer_sum(d_xw, h_prev), "leak_logit": d_logit}
    grads.update(cell.bias_grads(p, d_xw))
    return grads


def _recurrent_grads(cell: RecurrentCell, p: Params, kind: int, opt: int, d_xw: torch.Tensor,
                     d_rec: tuple, states, saved) -> dict:
    """The gradients of the weights other than W_ih after the C++ backward (d_rec and saved as it
    and the forward returned them, states (T+1, B, S_k)): the cell's ``recurrent_grads``, or for a
    learned leak :func:`_learned_leak_grads`."""
    if kind == 3 and opt >= 3:  # a learned leak: the C++ gave dL/d(leak_logit) whole
        return _learned_leak_grads(cell, p, d_xw, d_rec[0], states[0][:-1])
    # the saved sequences recurrent_grads reads: the GRU's hn (its saved item 2), the
    # deep-transition cell's u^(1) .. u^(L-1); the other cells read none
    saved_seq = (None, None, saved[0]) if isinstance(cell, GRUCell) else tuple(saved)
    return cell.recurrent_grads(p, d_xw, d_rec, tuple(s[:-1] for s in states),
                                tuple(s[1:] for s in states), saved_seq)


class CompiledFunction(torch.autograd.Function):
    """Autograd function over the whole sequence, as :class:`~rnnlab.engines.bptt.BPTTFunction`:
    inputs (x, *state0, *params), outputs the state sequences (T, B, S_k)."""

    @staticmethod
    def forward(ctx, cell: RecurrentCell, names: Tuple[str, ...], mask2: Optional[torch.Tensor],
                x: torch.Tensor, *tensors: torch.Tensor):
        n_state = len(cell.state_names)
        p = dict(zip(names, tensors[n_state:]))
        xw, states, saved = _forward(cell, p, x, tensors[:n_state], mask2)
        ctx.cell, ctx.names, ctx.xw, ctx.saved = cell, names, xw, saved
        ctx.has_mask = mask2 is not None
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, *(() if mask2 is None else (mask2,)), *tensors, *states)
        return tuple(buf[1:] for buf in states)

    @staticmethod
    @once_differentiable
    def backward(ctx, *d_seqs):
        cell: RecurrentCell = ctx.cell
        n_state, n_params = len(cell.state_names), len(ctx.names)
        x, *rest = ctx.saved_tensors
        mask2 = rest.pop(0) if ctx.has_mask else None
        state0, params, states = rest[:n_state], rest[n_state:n_state + n_params], rest[n_state + n_params:]
        p = dict(zip(ctx.names, params))
        xw, saved = ctx.xw, ctx.saved
        ctx.xw = ctx.saved = None  # overwritten by this backward
        if xw is None:  # a second backward through a retained graph: recompute
            xw, states, saved = _forward(cell, p, x, state0, mask2)
        T, B, I = x.shape
        kind, opt, extra = _spec(cell, p)
        # d_seqs as autograd gives them: the C++ reads each through its strides (an expanded
        # gradient, a bidirectional layer's half), so no copy is made of them
        out = _ops().backward(kind, opt, xw, _w_hh(p, x), extra, list(states), saved, list(d_seqs), mask2)
        d_state0, d_rec = out[:n_state], tuple(out[n_state:])
        d_xw = xw  # (T, B, G*H): the backward wrote dL/dxw over the gates
        dx = mm(d_xw.view(T * B, -1), p["weight_ih"]).view(T, B, I) if ctx.needs_input_grad[3] else None
        grads = _recurrent_grads(cell, p, kind, opt, d_xw, d_rec, states, saved)
        grads["weight_ih"] = outer_sum(d_xw, x)
        d_params = tuple(grads.get(n) for n in ctx.names)
        return (None, None, None, dx, *d_state0, *d_params)


def run_compiled(cell: RecurrentCell, p: Params, x: torch.Tensor, state0: State,
                 mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
    """Run ``cell`` over ``x`` (T, B, I) with the compiled BPTT; same contract as ``run_bptt``.

    Without gradients (generation, evaluation) the forward loop runs alone, one C++ call.

    ``bptt`` runs instead where a call brings what only it knows: inside
    ``bptt.record_state_gradients`` (which keeps every dL/dstate_t), zoneout keep weights for
    ``mask`` (a tuple), or per-call tensors in ``p`` beyond the cell's parameters (a recurrent
    dropout mask). A configuration the engine cannot run at all raises (the layer checks it first,
    :func:`compiled_layer_unsupported`).
    """
    if bptt._RECORDS or isinstance(mask, tuple) or not _expected_params(cell).issuperset(p):
        return bptt.run_bptt(cell, p, x, state0, mask)
    why = compiled_broken() or compiled_unsupported(cell, p, x)
    if why:
        raise ValueError(f"engine='compiled' cannot run this: {why}")
    x = x.contiguous()
    mask2 = None if mask is None else mask.reshape(mask.shape[0], mask.shape[1]).contiguous()
    if not torch.is_grad_enabled():  # generation and evaluation: the forward loop alone
        return tuple(buf[1:] for buf in _forward(cell, p, x, state0, mask2)[1])
    if not (x.requires_grad or any(s.requires_grad for s in state0) or any(t.requires_grad for t in p.values())):
        with torch.no_grad():
            _, states, _ = _forward(cell, p, x, state0, mask2)
        return tuple(buf[1:] for buf in states)
    return CompiledFunction.apply(cell, tuple(p), mask2, x, *state0, *p.values())
