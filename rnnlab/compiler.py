"""torch.compile's two markers that rnnlab's engines carry, applied without importing dynamo;
:func:`loop`, the time loop that stays one construct in an exported graph;
:func:`operator_version`, the name under which a custom operator of rnnlab's enters a graph; and
:func:`register_autograd`, a custom operator's derivative, its graph's calls kept cheap.

``torch.compiler.disable`` and ``torch.compiler.assume_constant_result`` import ``torch._dynamo``
(about 1.5 s) when they decorate, at rnnlab's import. These mark the same functions the same way,
the import left to the first compiled call: ``rnnlab predict`` and a program that never compiles
start that much sooner.
"""
from __future__ import annotations

import contextlib
import hashlib
from typing import Callable, Dict, Set

import torch


def disable(fn):
    """``torch.compiler.disable(fn)``: dynamo runs ``fn`` as it is, outside its graph. torch's
    lazy form (``torch._disable_dynamo``, which imports dynamo at the first call) where this
    torch has it."""
    lazy = getattr(torch, "_disable_dynamo", None)
    return lazy(fn) if lazy is not None else torch.compiler.disable(fn)


def operator_version(*paths: str) -> str:
    """The overload name of a custom operator defined by the files ``paths``: "v" and a hash of
    their contents. torch's caches on disk (inductor's, AOTAutograd's) key a compiled graph by
    the graph dynamo traced, in which an operator appears by its name alone: its implementation,
    its derivative and what its results hold are not in the key. So a graph that an older
    rnnlab compiled would be loaded for a changed operator (a backward returning one flat list
    once indexed as three nested ones, and failed); under a name of its version it is not."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            digest.update(f.read())
    return "v" + digest.hexdigest()[:12]


def register_autograd(name: str, impl: Callable, backward: Callable, setup_context: Callable) -> None:
    """``torch.library.register_autograd(name, backward, setup_context=setup_context)`` for an
    operator whose CPU kernel is the Python function ``impl``, but for one kind of call: with
    nothing to record (gradients off, or no input that needs them) on plain CPU tensors, the call
    a compiled graph makes at run time (its forward and its backward run with gradients off),
    ``impl`` runs at once. torch's autograd kernel hands such a call back to the dispatcher, which
    calls ``impl`` from C++: two more crossings between Python and C++, about 15 us per call.
    Every other call (a trace's fake or functional tensors, gradients to record) takes torch's
    kernel. Where this torch lacks the piece used (``torch._library.autograd``), torch's
    registration as it is."""
    try:
        from torch._C import DispatchKey, DispatchKeySet, _after_autograd_keyset, _any_requires_grad
        from torch._library.autograd import Info, make_autograd_impl
        op = torch._library.utils.lookup_op(name)
        generic = make_autograd_impl(op, Info(backward, setup_context))
    except (ImportError, AttributeError, TypeError):
        torch.library.register_autograd(name, backward, setup_context=setup_context)
        return
    plain = DispatchKeySet(DispatchKey.CPU)

    def kernel(keyset, *args):
        if (keyset & _after_autograd_keyset) == plain and not (torch.is_grad_enabled() and _any_requires_grad(*args)):
            with torch._C._AutoDispatchBelowAutograd():
                return impl(*args)
        return generic(keyset, *args)
    namespace, opname = name.split("::")
    _LIBRARIES.setdefault(namespace, torch.library.Library(namespace, "FRAGMENT")).impl(
        opname, kernel, "Autograd", with_keyset=True)


#: the torch.library fragments :func:`register_autograd` registers through (alive as long as rnnlab)
_LIBRARIES: Dict[str, "torch.library.Library"] = {}


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
    torch.export it is torch's ``scan``, one graph construct for any T. Under torch.compile the
    loop runs outside the graph (one graph break; its inductor refuses ``scan``, torch 2.13) and
    ``body`` is compiled on its own (:func:`_loop_outside_graph`): one graph of a step serves
    every T. Unrolled, the loop was compiled again for every T (an NTM: tens of seconds each, and
    after 8 lengths dynamo's recompile limit left the model eager). Eagerly, a Python loop over
    the same body (``scan`` would compile its body each call, and fail there on some sizes dynamo
    marks dynamic)."""
    if torch.compiler.is_exporting():
        from torch._higher_order_ops import scan
        return scan(body, init, xs)
    if torch.compiler.is_compiling():
        return _loop_outside_graph(body, init, xs, _backend())
    return _python_loop(body, init, xs)


def _python_loop(body, init, xs):
    from torch.utils import _pytree
    leaves, spec = _pytree.tree_flatten(xs)
    carry, ys = init, []
    for t in range(leaves[0].shape[0]):
        carry, y = body(carry, _pytree.tree_unflatten([leaf[t] for leaf in leaves], spec))
        ys.append(y)
    return carry, _pytree.tree_map(lambda *y_t: torch.stack(y_t), *ys)


#: the backends of the compilations that traced a :func:`loop`, by their number (:func:`_backend`)
_BACKENDS: Dict[int, Callable] = {}


@assume_constant_result
def _backend() -> int:
    """The number in :data:`_BACKENDS` of the backend of the compilation tracing the caller (0:
    not known here, torch.compile's default)."""
    try:
        from torch._dynamo.symbolic_convert import InstructionTranslator
        backend = InstructionTranslator.current_tx().output.compiler_fn
    except Exception:  # (another torch)
        return 0
    _BACKENDS.setdefault(id(backend), backend)
    return id(backend)


#: the bodies (by their code) that are not one graph: compiled with graph breaks
_BROKEN: Set[object] = set()


@disable
def _loop_outside_graph(body, init, xs, backend: int):
    """The Python loop, each step one call of ``body`` compiled with ``backend`` (its number in
    :data:`_BACKENDS`): as one graph (``fullgraph``; ``auto`` then runs a layer on an engine that
    stays in it) unless dynamo finds a break, then with breaks. dynamo caches the graphs by the
    body's code: a new T, or another call's closure of the same code, compiles nothing. A break
    costs a call of eager code and of two graphs per step: the attention decoder, broken at its
    layer, ran slower than with the whole loop eager (docs/benchmarks/compile.md)."""
    from torch._dynamo import exc
    backend = _BACKENDS.get(backend, "inductor")
    if _cuda_graphs(backend) and any(t.is_cuda for t in torch.utils._pytree.tree_leaves((init, xs))
                                     if torch.is_tensor(t)):
        return _python_loop(body, init, xs)  # (a CUDA graph's replay would overwrite the last step's outputs)
    code = getattr(body, "__code__", None)
    if code not in _BROKEN:
        try:
            return _python_loop(torch.compile(body, backend=backend, fullgraph=True), init, xs)
        except (exc.Unsupported, getattr(exc, "FailOnRecompileLimitHit", exc.Unsupported)):
            _BROKEN.add(code)  # (a break, or more graphs than dynamo's limit: then eager, as torch does)
    return _python_loop(torch.compile(body, backend=backend), init, xs)


def _cuda_graphs(backend) -> bool:
    """Whether ``backend`` records CUDA graphs (``mode="reduce-overhead"``, ``backend="cudagraphs"``)."""
    orig = getattr(backend, "_torchdynamo_orig_backend", backend)
    return bool((getattr(orig, "config", None) or {}).get("triton.cudagraphs")
                or getattr(backend, "_compiler_name", None) == "cudagraphs")
