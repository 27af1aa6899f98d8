"""Engines that run a cell over time: ``native``, ``compiled``, ``triton``, ``bptt``, ``loop``
and ``scan``; ``auto`` picks one.

Every engine but ``native`` is a runner, ``runner(call, x, state0) -> state sequences``, over one
:class:`Call` (one cell, one direction, one layer); the layer stacks them.
"""
from __future__ import annotations

from typing import Callable, Tuple

import torch

from . import autotune
from .bptt import BPTTFunction, record_state_gradients, run_bptt
from .call import Call
from .compiled import compiled_broken, compiled_layer_unsupported, compiled_unsupported, run_compiled
from .loop import run_loop
from .native import native_is_fastest, native_unsupported, run_native
from .scan import run_scan
from .triton_engine import run_triton, triton_unsupported

ENGINES = ("auto", "native", "compiled", "triton", "bptt", "loop", "scan")
RUNNERS = {"compiled": run_compiled, "triton": run_triton, "bptt": run_bptt, "loop": run_loop, "scan": run_scan}


def graph_engine() -> str | None:
    """The engine a layer runs while its call is being captured as a graph, or None (eager):
    ``scan`` under ``torch.export`` (so ``torch.onnx.export(..., dynamo=True)``: the time loop
    one graph node, T and B symbolic); ``loop`` under ``torch.jit.trace``, which records the
    steps it sees (unrolled to that T). Under ``torch.compile`` the layer's own engine runs
    (scan under inductor failed torch's aliasing check when tried)."""
    if torch.compiler.is_exporting():
        return "scan"
    if torch.jit.is_tracing():
        return "loop"
    return None


def check_engine(name: str) -> str:
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {name!r}")
    return name


def run(runner: Callable, call: Call, x: torch.Tensor, state0) -> Tuple[torch.Tensor, ...]:
    """``runner`` over ``call``; where no step depends on another (:attr:`Call.independent`,
    teacher forcing of the output-recurrent cell), one step over all T*B rows (not ``loop``,
    the reference, which keeps the step loop)."""
    if runner is run_loop or not call.independent or x.shape[0] == 1:
        return runner(call, x, state0)
    T, B = x.shape[:2]
    rows = lambda t: t.reshape(1, T * B, t.shape[-1])  # noqa: E731  (T, B, S) -> (1, T*B, S)
    flat = Call(call.cell, call.p, {k: m.repeat(T, 1) for k, m in call.masks.items()},
                given={k: rows(g) for k, g in call.given.items()})
    seqs = runner(flat, rows(x), tuple(s.repeat(T, 1) for s in state0))
    return tuple(s.reshape(T, B, s.shape[-1]) for s in seqs)


__all__ = ["ENGINES", "RUNNERS", "BPTTFunction", "autotune", "Call", "check_engine", "compiled_broken", "graph_engine",
           "compiled_layer_unsupported", "compiled_unsupported", "native_is_fastest",
           "native_unsupported", "record_state_gradients", "run", "run_bptt", "run_compiled",
           "run_loop", "run_native", "run_scan", "run_triton", "triton_unsupported"]
