r"""Triton kernels generated from a cell's Python core: the point-wise part fused into one kernel.

A cell's ``core`` (or ``core_backward``) is traced once per configuration and shape to a graph of
aten operations (``torch.fx.experimental.proxy_tensor.make_fx``). Every tensor of the graph whose
shape is (B, n*H) is seen as n blocks of H units; slicing and concatenating along the units at
multiples of H only picks blocks, and the point-wise operations apply block by block. The graph's
nodes fall into three parts, in order:

- ``pre``: nodes that read no (B, .) tensor (a leak's sigmoid, 1 - a): torch, before the kernel;
- ``kernel``: point-wise nodes on blocks (and on ``pre`` values of shape () or (n*H,)): ONE
  Triton kernel, a program per tile of BB rows x BH units, every block a tile value;
- ``post``: everything else (a sum over the batch, a layer normalisation's mean over the units):
  torch, after the kernel, on what the kernel wrote.

The generated source is plain Triton (``@triton.jit``), written to the cache folder and loaded
as a module, so the interpreter (``TRITON_INTERPRET=1``) and the GPU compiler read the same text.
tanh is written as 2 sigmoid(2x) - 1 (Triton's language has no tanh of its own).
"""
from __future__ import annotations

import hashlib
import importlib.util
import operator
import os
import tempfile
from typing import Any, Callable, Dict, List, Tuple

import torch
from torch.fx.experimental.proxy_tensor import make_fx

aten = torch.ops.aten

#: aten operation -> Triton expression of its (block-wise) arguments, as a format string
POINTWISE: Dict[Any, Callable[..., str]] = {
    aten.sigmoid.default: lambda a: f"tl.sigmoid({a})",
    aten.tanh.default: lambda a: f"(2.0 * tl.sigmoid(2.0 * {a}) - 1.0)",
    aten.relu.default: lambda a: f"tl.maximum({a}, 0.0)",
    aten.neg.default: lambda a: f"(-{a})",
    aten.exp.default: lambda a: f"tl.exp({a})",
    aten.add.Tensor: lambda a, b, alpha=1: f"({a} + {alpha} * {b})" if alpha != 1 else f"({a} + {b})",
    aten.sub.Tensor: lambda a, b, alpha=1: f"({a} - {alpha} * {b})" if alpha != 1 else f"({a} - {b})",
    aten.mul.Tensor: lambda a, b: f"({a} * {b})",
    aten.div.Tensor: lambda a, b: f"({a} / {b})",
    aten.rsub.Scalar: lambda a, b, alpha=1: f"({b} - {alpha} * {a})",
    aten.add.Scalar: lambda a, b, alpha=1: f"({a} + {alpha} * {b})",
    aten.mul.Scalar: lambda a, b: f"({a} * {b})",
    aten.addcmul.default: lambda a, b, c, value=1: f"({a} + {value} * {b} * {c})",
    aten.lerp.Tensor: lambda a, b, w: f"({a} + {w} * ({b} - {a}))",
    aten.lerp.Scalar: lambda a, b, w: f"({a} + {w} * ({b} - {a}))",
    aten.tanh_backward.default: lambda g, y: f"({g} * (1.0 - {y} * {y}))",
    aten.sigmoid_backward.default: lambda g, y: f"({g} * {y} * (1.0 - {y}))",
    aten.threshold_backward.default: lambda g, x, t: f"tl.where({x} <= {t}, 0.0, {g})",
    aten.clamp.default: lambda a, lo=None, hi=None: _clamp(a, lo, hi),
}
#: operations that leave the values as they are
IDENTITY = {aten.detach.default, aten.alias.default, aten.clone.default, aten.view.default,
            aten.expand.default, aten._to_copy.default}

_MAX = 2 ** 62


def _clamp(a, lo, hi):
    out = a if lo is None else f"tl.maximum({a}, {lo})"
    return out if hi is None else f"tl.minimum({out}, {hi})"


def _flatten(obj) -> Tuple[list, Any]:
    """(leaves, spec) of nested tuples and dicts of tensors (None leaves kept)."""
    if isinstance(obj, dict):
        leaves, spec = _flatten(tuple(obj.values()))
        return leaves, ("dict", tuple(obj), spec)
    if isinstance(obj, (tuple, list)):
        parts = [_flatten(o) for o in obj]
        return [leaf for leaves, _ in parts for leaf in leaves], tuple(spec for _, spec in parts)
    return [obj], None


def _unflatten(leaves: list, spec):
    it = iter(leaves)

    def build(s):
        if s is None:
            return next(it)
        if len(s) == 3 and s[0] == "dict":
            return dict(zip(s[1], build(s[2])))
        return tuple(build(c) for c in s)
    return build(spec)


class Program:
    """A traced core: ``pre`` nodes, one generated kernel, ``post`` nodes."""

    def __init__(self, graph: torch.fx.GraphModule, names, spec, out_spec, B: int, H: int):
        self.gm, self.names, self.spec, self.out_spec, self.B, self.H = graph, names, spec, out_spec, B, H
        self._plan()

    # --------------------------------------------------------------------- planning
    def _shape(self, node) -> Tuple[int, ...]:
        val = node.meta.get("val")
        return tuple(val.shape) if isinstance(val, torch.Tensor) else None

    def _is_block(self, shape) -> bool:
        return shape is not None and len(shape) == 2 and shape[0] == self.B and shape[1] % self.H == 0

    def _is_vec(self, shape) -> bool:
        return shape is not None and (len(shape) == 0 or (len(shape) == 1 and shape[0] % self.H == 0))

    def _plan(self) -> None:
        kind: Dict[Any, str] = {}    # node -> "block" (an input), "pre", "kernel", "post", "list"
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                kind[node] = "block" if self._is_block(self._shape(node)) else "pre"
            elif node.op == "get_attr":  # a constant of the trace
                kind[node] = "pre"
            elif node.op == "call_function":
                ins = [a for a in node.all_input_nodes]
                kinds = {kind[a] for a in ins}
                if "post" in kinds:
                    kind[node] = "post"
                elif not kinds & {"block", "kernel", "list"}:
                    kind[node] = "pre"
                elif self._kernel_op(node, kind):
                    kind[node] = "list" if node.target is aten.split.Tensor else "kernel"
                else:
                    kind[node] = "post"
        self.kind = kind

    def _kernel_op(self, node, kind) -> bool:
        t = node.target
        ins = node.all_input_nodes
        if any(kind[a] == "pre" and not self._is_vec(self._shape(a)) for a in ins):
            return False
        if t is operator.getitem:
            return kind[ins[0]] == "list"
        if any(kind[a] == "list" for a in ins):
            return False
        shape = self._shape(node)
        if t is aten.split.Tensor:
            return node.args[1] % self.H == 0 and _dim(node.args[2] if len(node.args) > 2 else 0) == 1
        if not self._is_block(shape):
            return False
        if t is aten.slice.Tensor:
            dim = _dim(node.args[1] if len(node.args) > 1 else 0)
            src = self._shape(ins[0])
            a, b = _bounds(node.args[2:4], src[dim])
            if dim == 0:
                return a == 0 and b == src[0] and (len(node.args) < 5 or node.args[4] == 1)
            return a % self.H == 0 and b % self.H == 0 and (len(node.args) < 5 or node.args[4] == 1)
        if t is aten.cat.default:
            return _dim(node.args[1] if len(node.args) > 1 else 0) == 1 and \
                all(self._is_block(self._shape(a)) for a in node.args[0])
        if t in IDENTITY:
            return self._shape(ins[0]) == shape and (t is not aten._to_copy.default or
                                                     node.kwargs.get("dtype") in (None, node.meta["val"].dtype))
        return t in POINTWISE

    # --------------------------------------------------------------------- code
    def source(self, name: str) -> Tuple[str, list, list]:
        """The kernel's source; its inputs (pre nodes and placeholders it reads) and outputs."""
        H, lines, values = self.H, [], {}
        inputs, outputs = [], []
        users_outside = set()
        out_nodes = [a for a in _flatten(next(n for n in self.gm.graph.nodes if n.op == "output").args[0])[0]
                     if isinstance(a, torch.fx.Node)]
        for node in self.gm.graph.nodes:
            if self.kind.get(node) in ("kernel", "block"):
                if node in out_nodes or any(self.kind.get(u) == "post" for u in node.users):
                    users_outside.add(node)

        def ref(a):
            if not isinstance(a, torch.fx.Node):
                return a
            if a not in values:  # an input: a pre node or a placeholder, loaded once
                shape = self._shape(a)
                k = len(inputs)
                inputs.append(a)
                if self._is_block(shape):
                    n = shape[1] // H
                    values[a] = [f"x{k}_{j}" for j in range(n)]
                    for j in range(n):
                        lines.append(f"    x{k}_{j} = tl.load(in{k} + rows[:, None] * {shape[1]} + "
                                     f"({j * H} + cols)[None, :], mask=m, other=0.0)")
                elif len(shape) == 0:
                    values[a] = f"x{k}"
                    lines.append(f"    x{k} = tl.load(in{k})")
                else:
                    n = shape[0] // H
                    values[a] = [f"x{k}_{j}" for j in range(n)]
                    for j in range(n):
                        lines.append(f"    x{k}_{j} = tl.load(in{k} + {j * H} + cols, mask=cols < {H}, "
                                     f"other=0.0)[None, :]")
            return values[a]

        def blocks(v, n):
            if isinstance(v, str):
                return [v] * n
            if isinstance(v, list):
                return v if len(v) == n else v * n if len(v) == 1 else None
            return [repr(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else repr(v)] * n

        tmp = [0]
        for node in self.gm.graph.nodes:
            if self.kind.get(node) not in ("kernel", "list"):
                continue
            t = node.target
            shape = self._shape(node)
            if t is aten.split.Tensor:
                src, size = ref(node.args[0]), node.args[1] // H
                values[node] = [src[i:i + size] for i in range(0, len(src), size)]
                continue
            if t is operator.getitem:
                values[node] = values[node.args[0]][node.args[1]]
                continue
            if t is aten.slice.Tensor:
                dim = _dim(node.args[1] if len(node.args) > 1 else 0)
                src = ref(node.args[0])
                if dim == 0:
                    values[node] = src
                else:
                    a, b = _bounds(node.args[2:4], self._shape(node.args[0])[1])
                    values[node] = src[a // H:b // H]
                continue
            if t is aten.cat.default:
                values[node] = [v for a in node.args[0] for v in ref(a)]
                continue
            if t in IDENTITY:
                values[node] = ref(node.args[0])
                continue
            n = shape[1] // H
            args = [blocks(ref(a), n) for a in node.args]
            kwargs = {k: v for k, v in node.kwargs.items()}
            out = []
            for j in range(n):
                tmp[0] += 1
                var = f"v{tmp[0]}"
                lines.append(f"    {var} = {POINTWISE[t](*(a[j] for a in args), **kwargs)}")
                out.append(var)
            values[node] = out
        for node in sorted(users_outside, key=lambda nd: list(self.gm.graph.nodes).index(nd)):
            if self.kind[node] == "block":
                continue  # an input needed outside: read from the input itself
            k = len(outputs)
            outputs.append(node)
            W = self._shape(node)[1]
            for j, v in enumerate(values[node]):
                lines.append(f"    tl.store(out{k} + rows[:, None] * {W} + ({j * H} + cols)[None, :], {v}, mask=m)")
        params = ", ".join([f"in{k}" for k in range(len(inputs))] + [f"out{k}" for k in range(len(outputs))])
        head = [
            "import triton", "import triton.language as tl", "", "", "@triton.jit",
            f"def {name}({params}, B, BB: tl.constexpr, BH: tl.constexpr):",
            "    rows = tl.program_id(0) * BB + tl.arange(0, BB)",
            "    cols = tl.program_id(1) * BH + tl.arange(0, BH)",
            f"    m = (rows < B)[:, None] & (cols < {H})[None, :]",
        ]
        return "\n".join(head + lines) + "\n", inputs, outputs

    def build(self) -> None:
        src, self.inputs, self.outputs = self.source("core_kernel")
        self.has_kernel = bool(self.outputs)
        if self.has_kernel:
            self.kernel = _load(src, "core_kernel")
        self.text = src


def _call(node, env):
    def sub(a):
        if isinstance(a, torch.fx.Node):
            return env[a] if a in env else _materialize(a, env)
        if isinstance(a, (list, tuple)):
            return type(a)(sub(x) for x in a)
        return a
    return node.target(*sub(node.args), **{k: sub(v) for k, v in node.kwargs.items()})


def _materialize(node, env):
    """A kernel value a post node reads that the kernel did not write (an input's view)."""
    env[node] = _call(node, env)
    return env[node]


def _dim(d: int) -> int:
    return 1 if d in (1, -1) else d


def _bounds(args, size: int) -> Tuple[int, int]:
    a = args[0] if len(args) > 0 and args[0] is not None else 0
    b = args[1] if len(args) > 1 and args[1] is not None else size
    a = a + size if a < 0 else a
    b = b + size if b < 0 else min(b, size)
    return a, b


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _load(src: str, name: str):
    """The kernel ``name`` of ``src``, written to a file (Triton reads a kernel's source file)."""
    digest = hashlib.sha256(src.encode()).hexdigest()[:16]
    folder = os.path.join(os.environ.get("RNNLAB_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "rnnlab")),
                          "triton")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"core_{digest}.py")
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".py")
        with os.fdopen(fd, "w") as f:
            f.write(src)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(f"rnnlab_triton_core_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


#: (cell class, options, part, input shapes and dtypes, device type) -> Program
_PROGRAMS: Dict[tuple, "Fused"] = {}


def fused(cell, part: str, p, args) -> "Fused":
    """The fused program of ``cell``'s ``part`` ("core" or "core_backward") for these inputs,
    traced and generated on first use."""
    names = tuple(p)
    leaves, spec = _flatten(args)
    key = (type(cell), cell.extra_repr(), part, names, spec,
           tuple(None if t is None else (tuple(t.shape), t.dtype) for t in (*p.values(), *leaves)),
           next(t for t in leaves if t is not None).device.type)
    program = _PROGRAMS.get(key)
    if program is None:
        program = trace(cell, part, p, args)
        _PROGRAMS[key] = program
    return program


def trace(cell, part: str, p, args) -> "Fused":
    """Trace ``cell``'s ``part`` on these inputs (None leaves dropped) and generate its kernel."""
    names = tuple(p)
    leaves, spec = _flatten(args)
    present = [i for i, t in enumerate(leaves) if t is not None]
    out_spec = []

    def no_product(*_):
        raise RuntimeError("a core that forms products runs as Python (FusedCore)")

    def f(*tensors):
        flat = [None] * len(leaves)
        for i, t in zip(present, tensors[len(names):]):
            flat[i] = t
        a = _unflatten(flat, spec)
        pp = dict(zip(names, tensors[:len(names)]))
        if part == "core":
            result = cell.core(pp, a[0], a[1], a[2], no_product)
        else:
            result = cell.core_backward(pp, *a, no_product)
        out_leaves, o_spec = _flatten(result)
        out_spec.append((o_spec, [x is None for x in out_leaves]))
        return tuple(x for x in out_leaves if x is not None)

    example = [t.detach() for t in p.values()] + [leaves[i].detach() for i in present]
    gm = make_fx(f)(*example)
    o_spec, nones = out_spec[0]
    B = next(leaves[i] for i in present).shape[0]
    program = Program(gm, names, spec, o_spec, B, cell.hidden_size)
    program.build()
    return Fused(program, present, nones)


class Fused:
    """A traced core called with the cell's own arguments: the None among them dropped on the
    way in, put back on the way out; runs ``pre``, the kernel, ``post``."""

    def __init__(self, program: Program, present, out_nones):
        self.program, self.present, self.out_nones = program, present, out_nones

    @property
    def text(self) -> str:
        """The generated Triton source."""
        return self.program.text

    def __call__(self, p, args):
        pr = self.program
        leaves, _ = _flatten(args)
        inputs = [p[n] for n in pr.names] + [leaves[i] for i in self.present]
        it = iter(_run(pr, inputs))
        return _unflatten([None if none else next(it) for none in self.out_nones], pr.out_spec)


def _run(pr: Program, leaves) -> list:
    env: Dict[Any, Any] = {}
    nodes = list(pr.gm.graph.nodes)
    it = iter(leaves)
    for node in nodes:
        if node.op == "placeholder":
            env[node] = next(it)
    for node in nodes:  # pre: torch, before the kernel
        if node.op == "get_attr":
            env[node] = getattr(pr.gm, node.target)
        elif pr.kind.get(node) == "pre" and node.op == "call_function":
            env[node] = _call(node, env)
    if pr.has_kernel:
        like = next(env[n] for n in pr.inputs if pr.kind[n] == "block")
        outs = [like.new_empty(pr._shape(n)) for n in pr.outputs]
        ins = [env[n].contiguous() for n in pr.inputs]
        B, H = pr.B, pr.H
        BB, BH = min(16, _pow2(B)), min(128, _pow2(H))
        grid = ((B + BB - 1) // BB, (H + BH - 1) // BH)
        pr.kernel[grid](*ins, *outs, B, BB=BB, BH=BH)
        env.update(zip(pr.outputs, outs))
    for node in nodes:  # post: torch, after it, on what it wrote
        if node.op == "call_function" and node not in env and pr.kind.get(node) == "post":
            env[node] = _call(node, env)
    out = next(n for n in nodes if n.op == "output")
    return [(env[a] if a in env else _materialize(a, env)) if isinstance(a, torch.fx.Node) else a
            for a in _flatten(out.args[0])[0]]
