"""torch.compile's two markers that rnnlab's engines carry, applied without importing dynamo.

``torch.compiler.disable`` and ``torch.compiler.assume_constant_result`` import ``torch._dynamo``
(about 1.5 s) when they decorate, at rnnlab's import. These mark the same functions the same way,
the import left to the first compiled call: ``rnnlab predict`` and a program that never compiles
start that much sooner.
"""
from __future__ import annotations

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
