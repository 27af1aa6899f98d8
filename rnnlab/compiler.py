"""torch.compile's two markers that rnnlab's engines carry, applied without importing dynamo; and
:func:`loop`, the time loop that stays one construct in an exported graph.

``torch.compiler.disable`` and ``torch.compiler.assume_constant_result`` import ``torch._dynamo``
(about 1.5 s) when they decorate, at rnnlab's import. These mark the same functions the same way,
the import left to the first compiled call: ``rnnlab predict`` and a program that never compiles
start that much sooner.
"""
from __future__ import annotations

import contextlib

import torch


def disable(fn):
    """``torch.compiler.disable(fn)``: dynamo runs ``fn`` as it is, outside its graph. torch's
    lazy form (``torch._disable_dynamo``, which imports dynamo at the first call) where this
    torch has it."""
    lazy = getattr(torch, "_disable_dynamo", None)
    return lazy(fn) if lazy is not None else torch.compiler.disable(fn)


def assume_constant_result(fn):
    """``torch.compiler.assume_constant_result(fn)``: while tracing, dynamo calls ``fn`` once and
    takes its result as a constant. That decorator sets one attribute on ``fn``; this sets the same
    (tests/test_compiler.py holds the two equal)."""
    fn._dynamo_marked_constant = True
    return fn


@contextlib.contextmanager
def eager():
    """Run real torch code while dynamo traces (inside an :func:`assume_constant_result`
    function that measures, say): no fake tensors, and ``torch.compiler.is_compiling()`` False,
    which torch 2.13 holds True for the whole compilation, not only in traced code."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily
    flag = getattr(torch.compiler, "_is_compiling_flag", None)
    try:
        if flag is not None:
            torch.compiler._is_compiling_flag = False
        with unset_fake_temporarily():
            yield
    finally:
        if flag is not None:
            torch.compiler._is_compiling_flag = flag


def fullgraph() -> bool:
    """Whether the trace dynamo is running now was asked for one graph (``fullgraph=True``): a
    graph break would be an error. Called while dynamo traces (an :func:`assume_constant_result`
    function); False outside a trace, or where torch keeps this elsewhere."""
    try:
        from torch._dynamo.symbolic_convert import InstructionTranslator
        return bool(getattr(InstructionTranslator.current_tx(), "one_graph", False))
    except Exception:  # (no trace running, or another torch)
        return False


def loop(body, init, xs):
    """``carry, ys = loop(body, init, xs)``: ``carry, y_t = body(carry, x_t)`` for t = 1 .. T, x_t
    every leaf of the pytree ``xs`` at [t] along dim 0, ys every y_t stacked along dim 0. Under
    torch.export it is torch's ``scan``, one graph construct for any T. Otherwise a Python loop
    over the same body, which torch.compile runs outside its graph (one graph break; its
    inductor refuses ``scan``, torch 2.13): unrolled, the loop was compiled again for every T
    (an NTM: tens of seconds each, and after 8 lengths dynamo's recompile limit left the model
    eager). Eagerly, ``scan`` would compile its body each call and fail there on some sizes
    dynamo marks dynamic."""
    if torch.compiler.is_exporting():
        from torch._higher_order_ops import scan
        return scan(body, init, xs)
    if torch.compiler.is_compiling():
        return _loop_outside_graph(body, init, xs)
    return _python_loop(body, init, xs)


def _python_loop(body, init, xs):
    from torch.utils import _pytree
    leaves, spec = _pytree.tree_flatten(xs)
    carry, ys = init, []
    for t in range(leaves[0].shape[0]):
        carry, y = body(carry, _pytree.tree_unflatten([leaf[t] for leaf in leaves], spec))
        ys.append(y)
    return carry, _pytree.tree_map(lambda *y_t: torch.stack(y_t), *ys)


@disable
def _loop_outside_graph(body, init, xs):
    return _python_loop(body, init, xs)
