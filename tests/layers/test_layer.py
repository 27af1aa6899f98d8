"""What every layer promises beyond the cell: shapes of hx, lengths, packing, errors."""
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnlab


def test_lstm_cell_step_is_the_equations():
    cell = rnnlab.LSTMCell(3, 4, peephole="diagonal", dtype=torch.float64)
    with torch.no_grad():
        for n in ("weight_ci", "weight_cf", "weight_co"):
            getattr(cell, n).normal_()
    x = torch.randn(2, 3, dtype=torch.float64)
    h, c = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    z = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    zi, zf, zg, zo = z.chunk(4, dim=1)
    i = torch.sigmoid(zi + cell.weight_ci * c)
    f = torch.sigmoid(zf + cell.weight_cf * c)
    c1 = f * c + i * torch.tanh(zg)
    o = torch.sigmoid(zo + cell.weight_co * c1)
    out, (h1, c1_) = cell(x, (h, c))
    torch.testing.assert_close(c1_, c1)
    torch.testing.assert_close(h1, o * torch.tanh(c1))
    torch.testing.assert_close(out, h1)


def test_original_lstm_is_the_constant_error_carousel():
    cell = rnnlab.LSTMCell(3, 4, forget_gate=False, dtype=torch.float64)
    assert cell.weight_ih.shape == (12, 3)  # gates i, g, o
    x, h, c = (torch.randn(2, n, dtype=torch.float64) for n in (3, 4, 4))
    z = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    zi, zg, zo = z.chunk(3, dim=1)
    _, (h1, c1) = cell(x, (h, c))
    torch.testing.assert_close(c1, c + torch.sigmoid(zi) * torch.tanh(zg))


def test_unbatched_input_matches_batch_of_one():
    m = rnnlab.LSTM(3, 4, 2, bidirectional=True, engine="bptt")
    x = torch.randn(5, 3)
    out, (h, c) = m(x)
    out1, (h1, c1) = m(x.unsqueeze(1))
    assert out.shape == (5, 8) and h.shape == (4, 4)
    torch.testing.assert_close(out, out1.squeeze(1))
    torch.testing.assert_close(h, h1.squeeze(1))


def test_initial_state_gets_gradient():
    m = rnnlab.LSTM(3, 4, engine="bptt")
    h0 = torch.randn(1, 2, 4, requires_grad=True)
    c0 = torch.randn(1, 2, 4, requires_grad=True)
    out, _ = m(torch.randn(6, 2, 3), (h0, c0))
    out.sum().backward()
    assert h0.grad.abs().sum() > 0 and c0.grad.abs().sum() > 0


@pytest.mark.parametrize("engine", ["bptt", "loop", "native"])
def test_lengths_equal_running_each_sequence_alone(engine):
    """Padding never leaks: each sequence gives what it gives when run alone, unpadded."""
    m = rnnlab.LSTM(3, 4, 2, bidirectional=True, engine=engine, dtype=torch.float64)
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4])
    x_garbage = x.clone()
    for b, n in enumerate(lengths):
        x_garbage[n:, b] = 1e3  # whatever sits in the padding must not matter
    out, (h, c) = m(x_garbage, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        o_b, (h_b, c_b) = m(x[:n, b:b + 1])
        torch.testing.assert_close(out[:n, b], o_b[:, 0])
        assert torch.all(out[n:, b] == 0)
        torch.testing.assert_close(h[:, b], h_b[:, 0])
        torch.testing.assert_close(c[:, b], c_b[:, 0])


def test_packed_output_has_the_input_layout():
    m = rnnlab.GRU(3, 4, engine="bptt") if hasattr(rnnlab, "GRU") else rnnlab.RNN(3, 4, engine="bptt")
    x = torch.randn(5, 3, 3)
    packed = pack_padded_sequence(x, torch.tensor([2, 5, 3]), enforce_sorted=False)
    out, _ = m(packed)
    assert torch.equal(out.batch_sizes, packed.batch_sizes)
    assert torch.equal(out.sorted_indices, packed.sorted_indices)


def test_return_states_zero_in_padding_and_match_final():
    m = rnnlab.LSTM(3, 4, engine="bptt")
    lengths = torch.tensor([5, 2])
    out, (h, c), (hs, cs) = m(torch.randn(5, 2, 3), lengths=lengths, return_states=True)
    torch.testing.assert_close(hs, out)
    torch.testing.assert_close(cs[4, 0], c[0, 0])
    torch.testing.assert_close(cs[1, 1], c[0, 1])
    assert torch.all(cs[2:, 1] == 0)


def test_parameter_names_are_torch_names():
    ours = rnnlab.LSTM(3, 4, 2, bidirectional=True)
    theirs = torch.nn.LSTM(3, 4, 2, bidirectional=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    peep = rnnlab.LSTM(3, 4, peephole="diagonal")
    assert "weight_ci_l0" in dict(peep.named_parameters())


def test_double_and_to_keep_parameters_shared_with_the_cells():
    m = rnnlab.LSTM(3, 4, engine="bptt").double()
    out, _ = m(torch.randn(2, 1, 3, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert m.cell_params(0)["weight_ih"] is m.weight_ih_l0


def test_backward_twice_through_a_retained_graph():
    m = rnnlab.LSTM(3, 4, engine="bptt", dtype=torch.float64)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    out, _ = m(x)
    g1 = torch.autograd.grad(out.sum(), x, retain_graph=True)[0]
    g2 = torch.autograd.grad(out.sum(), x)[0]
    torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("call,match", [
    (lambda m: m(torch.randn(5, 2, 7)), r"expected input of shape \(T, B, I\).*I = 3.*\(5, 2, 7\)"),
    (lambda m: m(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4),)), r"expected hx as 2 tensor"),
    (lambda m: m(torch.randn(5, 2, 3), (torch.zeros(1, 3, 4), torch.zeros(1, 2, 4))),
     r"expected hx 'h' of shape \(1, 2, 4\), got \(1, 3, 4\)"),
    (lambda m: m(torch.randn(5, 2, 3), lengths=torch.tensor([6, 1])), r"lengths must lie in \[1, 5\]"),
    (lambda m: m(torch.randn(5, 2, 3), lengths=torch.tensor([3])), r"lengths must be a 1-D tensor of 2"),
    (lambda m: m(torch.randn(5, 2, 3), lengths=torch.tensor([3., 1.])), r"lengths must hold integers"),
])
def test_bad_input_gives_one_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call(rnnlab.LSTM(3, 4))


@pytest.mark.parametrize("kwargs,match", [
    ({"hidden_size": 0}, "hidden_size must be a positive integer, got 0"),
    ({"num_layers": -1}, "num_layers must be a positive integer"),
    ({"dropout": 1.5}, r"dropout must be a probability in \[0, 1\], got 1.5"),
    ({"engine": "fast"}, "engine must be one of 'auto', 'native', 'compiled', 'triton', 'bptt', 'loop', 'scan', got 'fast'"),
    ({"init": "xavier"}, "init must be one of"),
    ({"peephole": "yes"}, "peephole must be None, 'diagonal' or 'full'"),
])
def test_bad_options_give_one_clear_error(kwargs, match):
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        rnnlab.LSTM(**args)


EMPTY_BATCH_LAYERS = [
    lambda e: rnnlab.LSTM(3, 4, engine=e),
    lambda e: rnnlab.GRU(3, 4, num_layers=2, bidirectional=True, engine=e),
    lambda e: rnnlab.LSTM(3, 4, layer_norm=True, zoneout=0.2, engine=e),
    lambda e: rnnlab.RNN(3, 4, recurrent_dropout=0.2, skip_steps=2, engine=e),
    lambda e: rnnlab.GRU(3, 4, reset_after=False, weight_drop=0.2, engine=e),
]


@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("make", EMPTY_BATCH_LAYERS)
@pytest.mark.parametrize("engine", ["auto", "native", "compiled", "bptt", "loop", "scan"])
def test_an_empty_batch_runs_as_in_torch_nn(engine, make, lengths, compiled_runs):
    """B = 0 (a filtered or last batch): outputs (T, 0, D*H), final states (L*D, 0, H) and zero
    gradients, as torch.nn.LSTM gives, on every engine that runs the configuration, lengths too."""
    if engine == "compiled" and not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    layer = make(engine)
    if engine == "native" and rnnlab.engines.native_unsupported(layer):
        pytest.skip("torch has no fused kernel for this configuration")
    if engine == "compiled" and rnnlab.engines.compiled_layer_unsupported(layer):
        pytest.skip("the compiled engine does not run this configuration")
    D, L = 1 + layer.bidirectional, layer.num_layers
    x = torch.randn(5, 0, 3, requires_grad=True)
    out, h_n = layer(x, lengths=torch.zeros(0, dtype=torch.long) if lengths else None)
    assert out.shape == (5, 0, D * 4)
    for h in (h_n if isinstance(h_n, tuple) else (h_n,)):
        assert h.shape[:2] == (L * D, 0)
    (out.sum() + sum(h.sum() for h in (h_n if isinstance(h_n, tuple) else (h_n,)))).backward()
    assert x.grad.shape == x.shape
    for name, p in layer.named_parameters():
        assert p.grad is None or not p.grad.any(), name
    with torch.no_grad():  # evaluation (the forward loop alone)
        assert layer.eval()(x)[0].shape == (5, 0, D * 4)


@pytest.mark.parametrize("engine", ["bptt", "compiled", "native", "auto", "scan"])
def test_parametrized_weights_run_on_every_engine(engine, compiled_runs):
    """torch.nn.utils.parametrize (an orthogonal W_hh, weight norm on W_ih): every engine runs the
    computed weights, outputs and the gradients of the underlying parameters equal ``loop``'s
    (float64), and the output is the plain layer's with those weights."""
    from torch.nn.utils import parametrizations
    if engine == "compiled" and not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    got = {}
    for e in ("loop", engine):
        torch.manual_seed(1)
        layer = rnnlab.LSTM(3, 4, engine=e).double()
        parametrizations.orthogonal(layer, "weight_hh_l0")
        parametrizations.weight_norm(layer, "weight_ih_l0")
        out = layer(x)[0]
        out.square().sum().backward()
        got[e] = (out, [p.grad for p in layer.parameters()])
    plain = rnnlab.LSTM(3, 4, engine="loop").double()
    with torch.no_grad():
        for name, p in plain.named_parameters():
            p.copy_(getattr(layer, name))
    torch.testing.assert_close(got[engine][0], plain(x)[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got[engine][0], got["loop"][0], rtol=1e-10, atol=1e-10)
    for a, b in zip(got[engine][1], got["loop"][1]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_torch_nn_weight_helpers_run_unchanged():
    """Code written for torch.nn.LSTM: ``all_weights`` lists the same tensors per layer and
    direction, and ``flatten_parameters()`` runs (nothing to pack) and changes no output."""
    torch.manual_seed(0)
    ours = rnnlab.LSTM(3, 4, num_layers=2, bidirectional=True)
    ref = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    ref.load_state_dict(ours.state_dict())
    assert len(ours.all_weights) == len(ref.all_weights) == 4
    for a, b in zip(ours.all_weights, ref.all_weights):
        assert len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b))
    assert ours.all_weights[3][1] is ours.weight_hh_l1_reverse
    x = torch.randn(5, 2, 3)
    before = ours(x)[0]
    ours.flatten_parameters()
    torch.testing.assert_close(ours(x)[0], before, rtol=0, atol=0)


@pytest.mark.parametrize("make", [lambda: rnnlab.LSTM(3, 4), lambda: rnnlab.GridRNN(3, 4)], ids=["LSTM", "GridRNN"])
def test_torchscript_says_what_to_use_instead(make):
    """torch.jit.script of a model holding a layer: one error naming the layer and what takes it
    (TorchScript's own was about a line of the engines it could not compile)."""
    model = torch.nn.Sequential(make())
    with pytest.raises(RuntimeError, match=r"torch.jit.script cannot compile rnnlab's (LSTM|GridRNN).*torch.export"):
        torch.jit.script(model)
