"""rnnlab.compiler: torch.compile's markers without dynamo's import. They mark as torch's do
(a disabled function runs outside the graph, eagerly; a constant's marker is torch's own), and
``import rnnlab`` does not import dynamo.
"""
import subprocess
import sys

import torch

from rnnlab import compiler


def test_a_disabled_function_runs_eagerly_under_torch_compile():
    seen = []

    @compiler.disable
    def probe(x):
        seen.append(torch.compiler.is_compiling())
        return x + 1

    def f(x):
        return probe(x * 2) * 3

    x = torch.arange(4.0)
    torch._dynamo.reset()
    assert torch.equal(torch.compile(f)(x), f(x))
    assert seen == [False, False]  # (compiled, then eager: neither traced)


def test_the_constant_marker_is_torchs():
    def a():
        return 1

    def b():
        return 1

    torch.compiler.assume_constant_result(a)
    assert compiler.assume_constant_result(b) is b
    assert vars(b) == vars(a) and vars(a)


def test_importing_rnnlab_leaves_dynamo_unimported():
    code = "import sys, rnnlab; print('torch._dynamo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fullgraph_is_known_while_tracing():
    """Asked inside a trace (a constant-result function), ``fullgraph()`` says whether the trace
    was asked for one graph; outside a trace, False."""
    seen = []

    @compiler.assume_constant_result
    def probe():
        seen.append(compiler.fullgraph())
        return 1

    def f(x):
        return x * probe()

    x = torch.randn(3)
    for one_graph in (True, False):
        torch._dynamo.reset()
        torch.compile(f, fullgraph=one_graph)(x)
    assert seen == [True, False] and compiler.fullgraph() is False


def test_a_compiled_loop_compiles_its_body_once_for_every_length_with_the_callers_backend():
    """Under torch.compile ``loop`` runs outside the graph and its body is one graph of its own,
    made by the backend the caller compiles with, for every T; values and gradients equal the
    eager loop's."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    def body(h, x_t):                                  # h (B, H), x_t (B, H)
        h = torch.tanh(h * 0.5 + x_t)
        return h, h.square()

    def f(h0, xs):
        h, ys = compiler.loop(body, h0, xs)
        return h, ys

    torch._dynamo.reset()
    compiled = torch.compile(f, backend=backend)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    for T in (3, 5, 7, 4):
        xs = torch.randn(T, 2, 3, dtype=torch.float64, requires_grad=True)
        got, want = compiled(h0, xs), f(h0, xs)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w)
        d_got = torch.autograd.grad(got[0].sum() + got[1].sum(), (h0, xs))
        d_want = torch.autograd.grad(want[0].sum() + want[1].sum(), (h0, xs))
        for g, w in zip(d_got, d_want):
            torch.testing.assert_close(g, w)
    bodies = [g for g in graphs if "tanh" in g.code]
    assert len(bodies) == 1, [g.code for g in graphs]


def test_a_compiled_loop_whose_body_breaks_the_graph_still_equals_the_eager_loop():
    """A body dynamo cannot make one graph (here a disabled call in it) is compiled with its
    break, every call after the first too."""
    @compiler.disable
    def opaque(h):
        return h.sin()

    def body(h, x_t):
        h = opaque(h) + x_t
        return h, h * 3

    def f(h0, xs):
        return compiler.loop(body, h0, xs)

    torch._dynamo.reset()
    compiled = torch.compile(f)
    for T in (2, 6, 3):
        h0, xs = torch.randn(4, 2, requires_grad=True), torch.randn(T, 4, 2)
        got, want = compiled(h0, xs), f(h0, xs)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w)
        torch.testing.assert_close(torch.autograd.grad(got[1].sum(), h0), torch.autograd.grad(want[1].sum(), h0))


def test_a_loop_knows_a_compilation_that_records_cuda_graphs():
    """A CUDA graph's replay would overwrite the step before's outputs: under such a compilation
    a loop on the GPU runs its body eagerly. The backend of each compile mode, as a loop sees it."""
    found = {}

    @compiler.assume_constant_result
    def probe():
        found[mode] = compiler._cuda_graphs(compiler._BACKENDS[compiler._backend()])
        return 1

    def f(x):
        return x * probe()

    for mode in ("default", "reduce-overhead", "max-autotune-no-cudagraphs"):
        torch._dynamo.reset()
        torch.compile(f, mode=mode)(torch.ones(2))
    assert found == {"default": False, "reduce-overhead": True, "max-autotune-no-cudagraphs": False}


def test_an_operator_is_named_by_the_version_of_the_files_that_define_it(tmp_path):
    """Custom operators enter a graph as ``rnnlab::name.v<hash>``: the same files give the same
    name in every process, a changed file another (torch's caches on disk key a compiled graph by
    the operators' names, so a graph an older rnnlab compiled is not loaded for a changed one)."""
    from rnnlab.engines import compiled, native
    a, b = tmp_path / "a.py", tmp_path / "b.cpp"
    a.write_text("x = 1\n")
    b.write_text("int f();\n")
    name = compiler.operator_version(str(a), str(b))
    assert name.isidentifier() and name.startswith("v")
    assert compiler.operator_version(str(a), str(b)) == name
    a.write_text("x = 2\n")
    assert compiler.operator_version(str(a), str(b)) != name
    version = compiler.operator_version(compiled.__file__, *compiled.SOURCES, *compiled.HEADERS)
    assert compiled.compiled_forward._overloadname == compiled.compiled_backward._overloadname == version
    assert native.native_forward._overloadname == compiler.operator_version(native.__file__)
    out = subprocess.run([sys.executable, "-c", "from rnnlab.engines import compiled; "
                          "print(compiled.compiled_forward._overloadname)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == version


def test_an_operators_autograd_kernel_runs_its_implementation_at_once_where_nothing_is_recorded(monkeypatch):
    """compiler.register_autograd: a call with gradients off on plain CPU tensors (a compiled
    graph's at run time) runs the implementation without torch's autograd kernel; a call that
    records gradients takes torch's, with the registered derivative; a trace's fake tensors
    never reach the implementation."""
    import torch._library.autograd as library_autograd
    from torch._subclasses.fake_tensor import FakeTensorMode
    generic_calls, impl_calls = [], []
    make = library_autograd.make_autograd_impl

    def counted(op, info):
        kernel = make(op, info)
        return lambda *a: (generic_calls.append(1), kernel(*a))[1]
    monkeypatch.setattr(library_autograd, "make_autograd_impl", counted)
    name = "rnnlab_test::cube"
    torch.library.define(name, "(Tensor x) -> Tensor")

    def impl(x):
        impl_calls.append(1)
        return x ** 3
    torch.library.impl(name, "CompositeExplicitAutograd", impl)
    torch.library.register_fake(name, lambda x: torch.empty_like(x))

    def setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g
    compiler.register_autograd(name, impl, backward, setup)
    op = torch._library.utils.lookup_op(name)
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    with torch.no_grad():
        assert torch.equal(op(x), x.detach() ** 3)
    assert (len(generic_calls), len(impl_calls)) == (0, 1)
    op(x).sum().backward()  # gradients recorded: torch's kernel
    assert torch.equal(x.grad, 3 * x.detach() ** 2)
    assert (len(generic_calls), len(impl_calls)) == (1, 2)
    mode = FakeTensorMode()
    fake_x = mode.from_tensor(x.detach())
    with mode, torch.no_grad():
        fake = op(fake_x)
    assert fake.shape == x.shape and len(impl_calls) == 2  # (the fake kernel ran, torch's way)
