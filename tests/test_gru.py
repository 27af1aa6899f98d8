import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnlab
from engine_check import (LENGTHS, assert_engines_agree, assert_matches_loop_of_cell,
                          gradcheck_layer, loss_of)

OPTIONS = [
    {"reset_after": True},
    {"reset_after": False},
    {"reset_after": True, "bias": False},
    {"reset_after": False, "bias": False},
]
SHAPES = [(1, False), (2, True), (1, True), (2, False)]


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("layers,bidirectional", SHAPES)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_bptt_equals_loop(options, layers, bidirectional, with_lengths):
    m = rnnlab.GRU(3, 4, layers, bidirectional=bidirectional, dtype=torch.float64, **options)
    assert_engines_agree(m, LENGTHS if with_lengths else None)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_bptt_equals_loop_all_states(options):
    m = rnnlab.GRU(3, 4, 2, bidirectional=True, dtype=torch.float64, **options)
    assert_engines_agree(m, LENGTHS, return_states=True)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gradcheck(options, layers, bidirectional, with_lengths):
    m = rnnlab.GRU(2, 3, layers, bidirectional=bidirectional, dtype=torch.float64, **options)
    gradcheck_layer(m, torch.tensor([3, 1]) if with_lengths else None)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_layer_equals_loop_of_cell(options):
    m = rnnlab.GRU(3, 4, dtype=torch.float64, **options)
    assert_matches_loop_of_cell(m, torch.randn(6, 2, 3, dtype=torch.float64))


def test_native_refuses_reset_before():
    m = rnnlab.GRU(3, 4, reset_after=False, engine="native")
    with pytest.raises(ValueError, match="engine='native'.*reset_after=False"):
        m(torch.randn(5, 2, 3))
    m.engine = "auto"
    m(torch.randn(5, 2, 3))
    assert m.last_engine == "bptt"


def test_init_schemes():
    H = 8
    cell = rnnlab.GRUCell(5, H, dtype=torch.float64)
    for block in cell.weight_hh.split(H):  # orthogonal gate blocks
        torch.testing.assert_close(block @ block.t(), torch.eye(H, dtype=torch.float64))
    assert not cell.bias_ih.any() and not cell.bias_hh.any()
    cell = rnnlab.GRUCell(5, H, init="torch")
    for p in cell.parameters():
        assert p.abs().max() <= H ** -0.5 and p.std() > 0.1


# ---------------------------------------------------------------- against torch.nn.GRU

def grads_of(layer, x, h0, packed_lengths=None, batch_first=False):
    """Outputs, h_n and gradients of ``loss_of`` w.r.t. x, h0 and every parameter (by name)."""
    inp = x
    if packed_lengths is not None:
        inp = pack_padded_sequence(x, packed_lengths, batch_first=batch_first, enforce_sorted=False)
    out, h_n = layer(inp, h0)
    out = out.data if packed_lengths is not None else out
    names = [n for n, _ in layer.named_parameters()]
    grads = torch.autograd.grad(loss_of(out, h_n), [x, h0] + [p for _, p in layer.named_parameters()])
    return out, h_n, dict(zip(["input", "h0"] + names, grads))


@pytest.mark.parametrize("engine", ["native", "bptt", "loop"])
@pytest.mark.parametrize("layers,bidirectional", SHAPES)
@pytest.mark.parametrize("batch_first,packed", list(itertools.product([False, True], [False, True])))
def test_matches_torch(engine, layers, bidirectional, batch_first, packed):
    T, B, I, H = 5, 3, 3, 4
    ref = torch.nn.GRU(I, H, layers, batch_first=batch_first, bidirectional=bidirectional)
    m = rnnlab.GRU(I, H, layers, batch_first=batch_first, bidirectional=bidirectional,
                   engine=engine)
    m.load_state_dict(ref.state_dict())
    D = 2 if bidirectional else 1
    x = torch.randn((B, T, I) if batch_first else (T, B, I), requires_grad=True)
    h0 = (0.5 * torch.randn(layers * D, B, H)).requires_grad_()
    lengths = LENGTHS if packed else None
    want = grads_of(ref, x, h0, lengths, batch_first)
    got = grads_of(m, x, h0, lengths, batch_first)
    assert m.last_engine == engine
    tol = dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[0], want[0], **tol)  # output
    torch.testing.assert_close(got[1], want[1], **tol)  # h_n
    assert got[2].keys() == want[2].keys()
    for name in want[2]:
        torch.testing.assert_close(got[2][name], want[2][name], **tol,
                                   msg=lambda msg: f"grad {name}: {msg}")


@pytest.mark.parametrize("engine", ["native", "bptt"])
def test_unbatched_matches_torch(engine):
    ref = torch.nn.GRU(3, 4, 2, bidirectional=True)
    m = rnnlab.GRU(3, 4, 2, bidirectional=True, engine=engine)
    m.load_state_dict(ref.state_dict())
    x = torch.randn(5, 3)
    for a, b in zip(m(x), ref(x)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_cell_matches_torch_cell():
    ref = torch.nn.GRUCell(3, 4)
    cell = rnnlab.GRUCell(3, 4)
    cell.load_state_dict(ref.state_dict())
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    torch.testing.assert_close(cell(x, h)[0], ref(x, h))
    torch.testing.assert_close(cell(x)[0], ref(x))
    torch.testing.assert_close(cell(x[0], h[0])[0], ref(x[0], h[0]))
