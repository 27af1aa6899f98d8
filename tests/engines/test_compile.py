"""``torch.compile`` (default backend) of a model holding an rnnlab layer: the outputs and the
gradients equal eager's on the engines ``auto``, ``native``, ``compiled``, ``bptt``, ``loop`` and
``scan`` (which runs ``loop`` under compile), at four sequence lengths and batch sizes; the
compiled engine (and ``auto``, which picks it on the CPU) compiles into one graph
(``fullgraph=True``) for every cell and regularizer, its custom operators pass torch's
``opcheck``; and a compiled model is not compiled again for every new size, nor after eager
calls of the same model (dynamo's counters), on every engine."""
import pytest
import torch
import torch._inductor.config

import rnnlab

I, H = 4, 5


class Model(torch.nn.Module):
    """A layer and a linear read-out: a model as users write them."""

    def __init__(self, layer):
        super().__init__()
        width = getattr(layer, "output_size", None) or layer.hidden_size  # (an output cell's: O)
        self.rnn, self.out = layer, torch.nn.Linear(width * (1 + layer.bidirectional), 2)

    def forward(self, x, lengths=None):
        h, _ = self.rnn(x, lengths=lengths)
        return self.out(h)


def grads(model, x, lengths, compiled=None):
    (model if compiled is None else compiled)(x, lengths).square().sum().backward()
    g = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    return g


@pytest.mark.slow_cases
@pytest.mark.parametrize("engine", ["auto", "native", "compiled", "bptt", "loop", "scan"])
def test_compile_equals_eager(engine, compiled_runs):
    if engine == "compiled" and not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = Model(rnnlab.LSTM(I, H, num_layers=2, bidirectional=True, engine=engine))
    eager = Model(rnnlab.LSTM(I, H, num_layers=2, bidirectional=True, engine=engine))
    eager.load_state_dict(model.state_dict())
    compiled = torch.compile(model)
    for T, B in [(6, 3), (9, 4), (4, 2), (7, 5)]:
        x = torch.randn(T, B, I)
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        torch.testing.assert_close(compiled(x, lengths), eager(x, lengths), atol=1e-5, rtol=1e-5)
        for a, b in zip(grads(model, x, lengths, compiled), grads(eager, x, lengths)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_compile_of_every_cell_equals_eager():
    torch.manual_seed(0)
    for cls, options in [(rnnlab.GRU, {"reset_after": False}), (rnnlab.LeakyRNN, {}),
                         (rnnlab.ResidualRNN, {"gated": True}), (rnnlab.DeepTransitionRNN, {}),
                         (rnnlab.LSTM, {"peephole": "full", "layer_norm": True})]:
        torch._dynamo.reset()
        model = Model(cls(I, H, **options))
        x = torch.randn(7, 3, I)
        lengths = torch.tensor([7, 2, 5])
        compiled = torch.compile(model)
        torch.testing.assert_close(compiled(x, lengths), model(x, lengths), atol=1e-5, rtol=1e-5)
        for a, b in zip(grads(model, x, lengths, compiled), grads(model, x, lengths)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("engine", ["native", "compiled", "auto", "bptt", "loop", "scan"])
def test_compiled_model_does_not_recompile_per_call(engine, compiled_runs):
    """After three calls of different sizes (the first compiles with static sizes, the next ones
    make them dynamic), calls of further sizes and lengths compile nothing new (``loop`` and
    ``scan`` run their time loop outside the graph: unrolled, it would compile at each length)."""
    from torch._dynamo.utils import counters
    if engine == "compiled" and not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    torch.manual_seed(0)
    torch._dynamo.reset()
    counters.clear()
    model = Model(rnnlab.LSTM(I, H, engine=engine))
    compiled = torch.compile(model)

    def call(T, B):
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        x = torch.randn(T, B, I)
        torch.testing.assert_close(compiled(x, lengths), model(x, lengths), atol=1e-5, rtol=1e-5)

    for T, B in [(6, 3), (9, 4), (4, 2)]:
        call(T, B)
    warm = (counters["frames"]["ok"], counters["stats"]["unique_graphs"])
    assert warm[0] > 0  # (dynamo did compile: the counters count)
    for T, B in [(7, 5), (12, 3), (5, 6), (3, 7)]:
        call(T, B)
    assert (counters["frames"]["ok"], counters["stats"]["unique_graphs"]) == warm


#: layers of every cell family and regularizer the compiled engine runs
FULLGRAPH_LAYERS = [
    lambda: rnnlab.LSTM(I, H, num_layers=2, bidirectional=True),
    lambda: rnnlab.LSTM(I, H, peephole="diagonal", peephole_candidate=True, layer_norm=True, weight_drop=0.3),
    lambda: rnnlab.GRU(I, H, reset_after=False, layer_norm=True, zoneout=0.2),
    lambda: rnnlab.GRU(I, H, recurrent_dropout=0.3),
    lambda: rnnlab.LeakyRNN(I, H, leak_mode="learned"),
    lambda: rnnlab.ResidualRNN(I, H, gated=True),
    lambda: rnnlab.DeepTransitionRNN(I, H, depth=3, skip=True),
    lambda: rnnlab.RNN(I, H, nonlinearity="relu", bias=False),
    lambda: rnnlab.OutputRecurrentRNN(I, H, 3, recurrent_dropout=0.3),
]


@pytest.mark.slow_cases
@pytest.mark.parametrize("make", FULLGRAPH_LAYERS)
@pytest.mark.parametrize("engine", ["compiled", "auto"])
def test_compiled_engine_compiles_into_one_graph(make, engine, compiled_runs):
    """``torch.compile(model, fullgraph=True)`` (an error at any graph break) on the compiled
    engine: outputs and gradients equal eager's (training mode: the same random masks, inductor
    drawing them as eager does), with lengths, at two sizes."""
    if not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    torch.manual_seed(0)
    torch._dynamo.reset()
    layer = make()
    layer.engine = engine
    model = Model(layer)
    compiled = torch.compile(model, fullgraph=True)
    with torch._inductor.config.patch(fallback_random=True):
        check_sizes(model, compiled, layer)


def check_sizes(model, compiled, layer):
    for T, B in [(6, 3), (9, 4)]:
        x = torch.randn(T, B, I)
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        torch.manual_seed(1)
        got, g_got = compiled(x, lengths), grads(model, x, lengths, compiled)
        torch.manual_seed(1)
        want, g_want = model(x, lengths), grads(model, x, lengths)
        assert layer.last_engine == "compiled"
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        for a, b in zip(g_got, g_want):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("engine", ["compiled", "loop"])
def test_compile_of_the_output_recurrent_rnn(engine, compiled_runs):
    """OutputRecurrentRNN with recurrent dropout (and, on ``loop``, layer normalisation, which
    the compiled engine does not run for the output cells) under torch.compile: outputs and
    gradients equal eager's; on ``compiled`` one graph (``fullgraph=True``; ``loop`` runs its
    time loop outside the graph). Its cell's products once read ``super().products``, which
    dynamo took for the property object."""
    if engine == "compiled" and not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    torch.manual_seed(0)
    torch._dynamo.reset()
    options = {"recurrent_dropout": 0.3} if engine == "compiled" else {"recurrent_dropout": 0.3, "layer_norm": True}
    layer = rnnlab.OutputRecurrentRNN(I, H, 3, engine=engine, **options)
    model = Model(layer)
    compiled = torch.compile(model, fullgraph=engine == "compiled")
    with torch._inductor.config.patch(fallback_random=True):
        for T, B in [(6, 3), (9, 4)]:
            x = torch.randn(T, B, I)
            lengths = torch.randint(1, T + 1, (B,))
            lengths[0] = T
            torch.manual_seed(1)
            got, g_got = compiled(x, lengths), grads(model, x, lengths, compiled)
            torch.manual_seed(1)
            want, g_want = model(x, lengths), grads(model, x, lengths)
            assert layer.last_engine == engine
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
            for a, b in zip(g_got, g_want):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", [lambda: rnnlab.LSTM(I, H, layer_norm=True), lambda: rnnlab.GRU(I, H, zoneout=0.2)])
def test_compiled_backward_twice_through_a_retained_graph(make, compiled_runs):
    """The compiled engine's backward operator runs in place on the sequences its forward saved
    and marks them spent: a second backward through the same graph (``retain_graph``) runs the
    forward loop again and gets eager's gradients again (accumulated: twice the first)."""
    if not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    torch.manual_seed(0)
    torch._dynamo.reset()
    layer = make()
    layer.engine = "compiled"
    model = Model(layer).eval()  # (zoneout: its expectation, the same in both)
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(6, 3, I)
    lengths = torch.tensor([6, 2, 4])
    sums = []
    for m in (compiled, model):
        model.zero_grad()
        loss = m(x, lengths).square().sum()
        loss.backward(retain_graph=True)
        first = [p.grad.clone() for p in model.parameters()]
        loss.backward()
        sums.append((first, [p.grad.clone() for p in model.parameters()]))
    (c1, c2), (e1, e2) = sums
    for a, b, c, d in zip(c1, e1, c2, e2):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(c, d, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(c, 2 * a, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel", [0, 1])
def test_compiled_backward_with_either_matrix_kernel(kernel, compiled_runs, monkeypatch):
    """The backward operator's weight gradients come out as its fake kernel says (contiguous)
    whichever kernel rnnlab.linalg picked for sum_t d_t^T a_t: torch's BLAS (0) or oneDNN (1),
    whose product is a transposed view; outputs and gradients equal eager's."""
    from rnnlab import linalg
    if not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    if kernel and not linalg.onednn_available():
        pytest.skip("no oneDNN here")
    monkeypatch.setattr(linalg, "_pick", lambda key, candidates: min(kernel, len(candidates) - 1))
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = Model(rnnlab.LSTM(32, 64, engine="compiled"))  # (big enough for linalg's choice)
    compiled = torch.compile(model, fullgraph=True)
    x, lengths = torch.randn(20, 16, 32), torch.full((16,), 20)
    torch.testing.assert_close(compiled(x, lengths), model(x, lengths), atol=1e-5, rtol=1e-5)
    for a, b in zip(grads(model, x, lengths, compiled), grads(model, x, lengths)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_compiled_engine_under_inductors_cpp_wrapper(compiled_runs):
    """``torch.compile(model, options={"cpp_wrapper": True})`` (the graph's wrapper in C++, which
    calls no operator whose results nest): the compiled engine trains in one graph, with lengths
    and layer norm, outputs and gradients equal to eager's in float64."""
    if not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = Model(rnnlab.LSTM(I, H, layer_norm=True, engine="compiled")).double()
    compiled = torch.compile(model, fullgraph=True, options={"cpp_wrapper": True})
    for T, B in [(6, 3), (9, 4)]:
        x = torch.randn(T, B, I, dtype=torch.float64)
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        torch.testing.assert_close(compiled(x, lengths), model(x, lengths), atol=1e-12, rtol=1e-12)
        for a, b in zip(grads(model, x, lengths, compiled), grads(model, x, lengths)):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_compiled_operators_pass_opcheck(compiled_runs):
    """torch.library.opcheck of the forward operator (its schema, its fake kernel's shapes against
    the real outputs, dynamic sizes, its autograd) for a plain LSTM, with lengths, with zoneout's
    keep weights and with a recurrent-dropout mask, in float64."""
    if not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    from rnnlab.cells.gru_cell import GRUCell
    from rnnlab.cells.lstm_cell import LSTMCell
    from rnnlab.engines import compiled
    torch.manual_seed(0)
    T, B = 5, 3
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    for cell, extra, mask, keep in [
            (LSTMCell(I, H), {}, None, []),
            (LSTMCell(I, H, peephole="full", layer_norm=True), {}, torch.rand(T, B) > 0.3, []),
            (GRUCell(I, H, reset_after=False), {compiled.RECURRENT_MASK: torch.ones(B, H, dtype=torch.float64)},
             None, [torch.rand(T, B, H, dtype=torch.float64)])]:
        cell = cell.double()
        p = {**{n: t.detach().requires_grad_() for n, t in cell.params().items()}, **extra}
        state0 = [torch.randn(B, S, dtype=torch.float64, requires_grad=True) for S in cell.state_sizes]
        args = (compiled._spec(cell), ",".join(p), x, state0, list(p.values()), mask, keep)
        # (not test_aot_dispatch: it compares every output of two calls, and the forward returns
        # buffers that only the backward fills)
        torch.library.opcheck(compiled.compiled_forward, args,
                              test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_compiled_model_checks_lengths_in_its_graph(compiled_runs):
    """Under compilation the lengths' check reads no value out of the graph (``fullgraph=True``
    holds) and a length beyond T still raises, in the graph (a RuntimeError)."""
    if not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = Model(rnnlab.LSTM(I, H, engine="compiled"))
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(5, 2, I)
    torch.testing.assert_close(compiled(x, torch.tensor([5, 3])), model(x, torch.tensor([5, 3])))
    with pytest.raises(RuntimeError):
        compiled(x, torch.tensor([6, 3]))
    with pytest.raises(RuntimeError):
        compiled(x, torch.tensor([0, 3]))


@pytest.mark.parametrize("cls", [rnnlab.LSTM, rnnlab.GRU, rnnlab.RNN])
def test_native_evaluation_compiles_into_one_graph(cls):
    """Without gradients torch's kernel runs in the graph as the operator ``rnnlab::native_forward``
    (``fullgraph=True`` holds), equal to eager, lengths and both directions included, at two
    lengths without compiling again; its operator passes opcheck."""
    from torch._dynamo.utils import counters
    torch.manual_seed(0)
    torch._dynamo.reset()
    counters.clear()
    layer = cls(I, H, num_layers=2, bidirectional=True, engine="native").eval()
    compiled = torch.compile(layer, fullgraph=True, dynamic=True)
    lengths = torch.tensor([5, 3, 4])
    with torch.no_grad():
        for T in (5, 7, 9, 6, 11):
            if T == 6:
                warm = counters["stats"]["unique_graphs"]
            x = torch.randn(T, 3, I)
            got, want = compiled(x, lengths=lengths), layer(x, lengths=lengths)
            torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert counters["stats"]["unique_graphs"] == warm
    from rnnlab.engines import native
    hx = [torch.randn(4, 3, H) for _ in range(1 + (cls is rnnlab.LSTM))]
    torch.library.opcheck(native.native_forward, (layer.cells[0].native_mode, torch.randn(5, 3, I), hx,
                                                  layer.flat_weights(), True, 2, True, lengths),
                          test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("engine", ["native", "auto"])
def test_training_on_torchs_kernel_breaks_the_graph_once_at_the_layer(engine, monkeypatch):
    """A training call that torch's kernel runs (``native``; ``auto`` where its trial for the graph
    picks it) runs the whole layer eagerly: every graph break is at the layer's call, none inside
    rnnlab's engines (each frame above a deeper break was compiled again as a resumed frame: 1.27-
    1.57x eager at 16/64/128, 1.02-1.06x now); outputs and gradients equal eager's."""
    from torch._dynamo.utils import counters
    from rnnlab.engines import autotune
    if engine == "auto":
        monkeypatch.setattr(autotune, "traced_choice", lambda *args: "native")
    torch.manual_seed(0)
    torch._dynamo.reset()
    counters.clear()
    model = Model(rnnlab.LSTM(I, H, num_layers=2, engine=engine))
    compiled = torch.compile(model)
    for T, B in [(6, 3), (9, 4), (4, 2)]:
        x, lengths = torch.randn(T, B, I), torch.randint(1, T + 1, (B,))
        for a, b in zip(grads(model, x, lengths, compiled), grads(model, x, lengths)):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    breaks = [k for k in counters["graph_break"] for _ in range(counters["graph_break"][k])]
    assert breaks and all("_run_outside_graph" in k for k in breaks), breaks


@pytest.mark.slow
def test_compile_of_the_grid_rnn_equals_eager():
    """The GridRNN under torch.compile (diagonals unrolled; layer norm in training, and zoneout's
    expectation in evaluation: a graph draws its own random masks): values and gradients equal
    eager's, float64."""
    from rnnlab.layers import GridRNN
    torch.manual_seed(0)
    cases = [(GridRNN(2, 3, directions=4, layer_norm=True).double(), [(2, 2, 3, 2)]),
             (GridRNN(2, 3, cell="rnn", directions=4, zoneout=0.1).double().eval(), [(2, 2, 3, 2)])]
    check_compiled_modules(cases)


@pytest.mark.slow
def test_compile_of_the_grid_rnn_compiles_nothing_new_after_a_few_image_sizes():
    """The GridRNN under torch.compile: the first image size unrolls its diagonals; every other
    size sweeps outside the graph, so new sizes compile nothing after the first few (unrolled,
    each size compiled again, 28-44 s each here); values and gradients equal eager's, float64.
    Without torch's caches on disk: a graph an earlier process cached brings back the guards of
    the sizes it was compiled at (``x.size()[1] != 2`` for the first size's ``(Hg != 2) | (Wg !=
    2)``), and a later size compiles once more."""
    from torch._dynamo.utils import counters
    from rnnlab.layers import GridRNN, grid_rnn
    torch.manual_seed(0)
    torch._dynamo.reset()
    grid_rnn._FIRST_SIZE.clear()  # (what earlier traces in this process met)
    counters.clear()
    grid = GridRNN(2, 3, cell="rnn").double()
    with torch.compiler.config.patch(force_disable_caches=True):
        check_compiled_modules([(grid, [(2, 2, 2, 2), (2, 3, 4, 2), (2, 4, 3, 2), (2, 5, 5, 2)])])
        warm = counters["stats"]["unique_graphs"]
        check_compiled_modules([(grid, [(2, 2, 2, 2), (2, 2, 6, 2), (2, 6, 3, 2)])])
    assert counters["stats"]["unique_graphs"] == warm


def test_compile_of_the_ntm_equals_eager_and_compiles_once():
    """The NTM under torch.compile: its time loop runs outside the graph (``compiler.loop``), so
    new lengths compile nothing (unrolled, each length compiled for 20-60 s, and after 8 dynamo's
    recompile limit left the model eager); values and gradients equal eager's, float64."""
    from torch._dynamo.utils import counters
    from rnnlab.memory import NTM
    torch.manual_seed(0)
    torch._dynamo.reset()
    counters.clear()
    ntm = NTM(3, 2, controller_size=4, memory_size=6, memory_width=3).double()
    check_compiled_modules([(ntm, [(3, 2, 3), (4, 2, 3)])])
    warm = counters["stats"]["unique_graphs"]
    check_compiled_modules([(ntm, [(7, 2, 3), (2, 2, 3), (9, 2, 3)])])
    assert counters["stats"]["unique_graphs"] == warm


def check_compiled_modules(cases):
    """Each module compiled, called on inputs of each shape: outputs and gradients equal eager's."""
    for module, shapes in cases:
        compiled = torch.compile(module)
        for shape in shapes:
            x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
            outs = []
            for f in (compiled, module):
                y = f(x)
                y = y[0] if isinstance(y, tuple) else y
                outs.append((y, torch.autograd.grad((y * y).sum(), [x, *module.parameters()])))
            torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-10, atol=1e-12)
            for a, b in zip(outs[0][1], outs[1][1]):
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_compiled_operators_take_the_state_sequences_back_from_their_views(compiled_runs):
    """The forward operator returns each state sequence as steps 1..T, a view of its buffer
    whose row 0 is the initial state, and the backward reads the whole buffer back from it (no
    pass over a padded copy of dL/d(output) per step). A copy of the sequences (no buffer
    around them) runs the forward loop again, with the same gradients."""
    if not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    from rnnlab.cells.lstm_cell import LSTMCell
    from rnnlab.engines import compiled
    torch.manual_seed(0)
    T, B = 6, 3
    cell = LSTMCell(I, H).double()
    p = {n: t.detach() for n, t in cell.params().items()}
    x = torch.randn(T, B, I, dtype=torch.float64)
    state0 = [torch.randn(B, H, dtype=torch.float64) for _ in cell.state_sizes]
    args = (compiled._spec(cell), ",".join(p), x, state0, list(p.values()), None, [])
    layer = rnnlab.LSTM(I, H, engine="loop").double()
    with torch.no_grad():
        for n, t in p.items():
            getattr(layer, f"{n}_l0").copy_(t)
        want, _ = layer(x, tuple(s.unsqueeze(0) for s in state0))
    out = compiled.compiled_forward(*args)
    for s, s0 in zip(out[:2], state0):
        assert s.shape == (T, B, H)
        torch.testing.assert_close(compiled._with_initial_row(s)[0], s0, rtol=0, atol=0)
    torch.testing.assert_close(out[0], want)
    assert compiled._with_initial_row(out[0].clone()) is None
    d_h = torch.randn(T, B, H, dtype=torch.float64)
    grads = []
    for saved in (out, [s.clone() for s in out]):
        grads.append(compiled.compiled_backward(*args, saved, [d_h, None], True))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


#: layer configurations of the sweep below: (class, options), each with and without lengths
_SWEEP = [("LSTM", {}), ("LSTM", {"bidirectional": True, "num_layers": 2}), ("GRU", {}), ("RNN", {}),
          ("LSTM", {"recurrent_dropout": 0.2}), ("LSTM", {"zoneout": 0.1}), ("LSTM", {"layer_norm": True}),
          ("LSTM", {"dropout": 0.3, "num_layers": 2})]


@pytest.mark.slow_cases
@pytest.mark.parametrize("engine", ["compiled", "auto", "native", "bptt", "loop", "scan"])
def test_no_layer_configuration_compiles_again_after_eager_calls(engine, compiled_runs, monkeypatch):
    """A model compiled first, then called eagerly twice between compiled calls, in training and
    in evaluation, with lengths and without, for layer configurations of every kind the engines
    run (``native`` those torch's kernel has): no second compilation (dynamo's ``CompileCounter``).
    An eager call changes module state a trace must not read (a guard on it would compile the
    model again): ``last_engine``, ``autotune._compiled``, ``auto``'s verdicts."""
    from torch._dynamo.testing import CompileCounter
    from rnnlab.engines import autotune
    if engine == "compiled" and not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    again = []
    for cls, options in _SWEEP:
        if engine == "native" and set(options) & {"recurrent_dropout", "zoneout", "layer_norm"}:
            continue  # (torch's fused kernel has none of these: the layer refuses them)
        for lengths in (None, torch.tensor([6, 4, 2])):
            for training in (True, False):
                monkeypatch.setattr(autotune, "_compiled", None)
                torch._dynamo.reset()
                torch.manual_seed(0)
                model = Model(getattr(rnnlab, cls)(I, H, engine=engine, **options)).train(training)
                counter = CompileCounter()
                compiled = torch.compile(model, backend=counter)
                x = torch.randn(6, 3, I)

                def call(m):
                    with torch.set_grad_enabled(training):
                        y = m(x, lengths)
                        if training:
                            y.sum().backward()

                call(compiled)
                frames = counter.frame_count
                for _ in range(2):
                    call(model)
                    call(compiled)
                if counter.frame_count != frames:
                    again.append((cls, options, lengths is not None, training, counter.frame_count - frames))
    assert not again, f"compiled again after eager calls (class, options, lengths, training, frames): {again}"


@pytest.mark.parametrize("engine", ["loop", "auto", "compiled"])
def test_eager_calls_of_the_same_model_between_compiled_ones_compile_nothing_again(engine, compiled_runs,
                                                                                   monkeypatch):
    """An eager call records the engine it ran (``last_engine``), and the compiled engine's first
    eager call tells ``auto`` it has loaded (``autotune._compiled``); a trace reads neither, so
    the compiled model holds no guard on them and runs on without compiling again (it did once
    per change, and ``auto``'s eager trials changed ``last_engine``; a model compiled before any
    eager call of the compiled engine, once)."""
    from torch._dynamo.testing import CompileCounter
    from rnnlab.engines import autotune
    if engine == "compiled" and not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    monkeypatch.setattr(autotune, "_compiled", None)  # (this process: no eager call of it yet)
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = Model(rnnlab.LSTM(I, H, engine=engine))
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter)
    x = torch.randn(5, 2, I)
    first = compiled(x)  # (compiled before any eager call)
    frames = counter.frame_count
    want = model(x)
    torch.testing.assert_close(first, want)
    model.rnn.last_engine = None
    torch.testing.assert_close(compiled(x), want)
    for _ in range(2):
        model(x)
        assert model.rnn.last_engine is not None
        torch.testing.assert_close(compiled(x), want)
    assert counter.frame_count == frames
