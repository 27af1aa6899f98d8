import pytest
import torch

import rnnlab


@pytest.mark.parametrize("gated", [False, True])
def test_one_step_by_hand(gated):
    H = 4
    cell = rnnlab.ResidualRNNCell(3, H, gated=gated, init="torch", dtype=torch.float64)
    x, s = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, H, dtype=torch.float64)
    z = x @ cell.weight_ih.T + cell.bias_ih + s @ cell.weight_hh.T + cell.bias_hh  # (B, G*H)
    if gated:
        i, r = torch.sigmoid(z[:, :H]), torch.tanh(z[:, H:])  # gate order i, r
        want = s + i * r
    else:
        want = s + torch.tanh(z)
    out, s1 = cell(x, s)
    torch.testing.assert_close(s1, want, rtol=1e-12, atol=1e-14)
    assert out is s1


@pytest.mark.parametrize("gated,G", [(False, 1), (True, 2)])
def test_parameters_are_torch_nn_names_with_gate_blocks(gated, G):
    m = rnnlab.ResidualRNN(3, 4, bidirectional=True, gated=gated)
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
    for d in ("", "_reverse"):
        assert shapes[f"weight_ih_l0{d}"] == (G * 4, 3) and shapes[f"weight_hh_l0{d}"] == (G * 4, 4)
        assert shapes[f"bias_ih_l0{d}"] == shapes[f"bias_hh_l0{d}"] == (G * 4,)
    assert len(shapes) == 8


@pytest.mark.parametrize("gated", [False, True])
def test_second_backward_through_retained_graph(gated):
    m = rnnlab.ResidualRNN(3, 4, engine="bptt", gated=gated, dtype=torch.float64)
    out, _ = m(torch.randn(5, 2, 3, dtype=torch.float64))
    first = torch.autograd.grad(out.sum(), list(m.parameters()), retain_graph=True)
    for a, b in zip(first, torch.autograd.grad(out.sum(), list(m.parameters()))):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("options,match", [
    ({"gated": "yes"}, r"gated must be True or False, got 'yes'"),
    ({"gated": 1}, r"gated must be True or False, got 1"),
    ({"nonlinearity": "identity"}, r"nonlinearity must be one of .*, got 'identity'"),
    ({"init": "xavier"}, r"init must be one of"),
])
def test_bad_options_raise(options, match):
    with pytest.raises(ValueError, match=match):
        rnnlab.ResidualRNN(3, 4, **options)
    with pytest.raises(ValueError, match=match):
        rnnlab.ResidualRNNCell(3, 4, **options)
