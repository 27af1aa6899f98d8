import pytest
import torch

import rnnlab


def test_step_is_the_equations():
    """h_t = u2 + h_{t-1}, u2 = tanh(W_2 u1 + b_2), u1 = tanh(W_ih x + b_ih + W_hh h + b_hh)."""
    cell = rnnlab.DeepTransitionCell(3, 4, depth=2, init="torch", dtype=torch.float64)
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    u1 = torch.tanh(x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh)
    u2 = torch.tanh(u1 @ cell.weight_t2.T + cell.bias_t2)
    out, h_new = cell(x, h)
    torch.testing.assert_close(h_new, u2 + h)
    torch.testing.assert_close(out, h_new)
    no_skip = rnnlab.DeepTransitionCell(3, 4, depth=2, skip=False, dtype=torch.float64)
    no_skip.load_state_dict(cell.state_dict())
    torch.testing.assert_close(no_skip(x, h)[0], u2)


def test_depth_one_without_skip_is_the_vanilla_rnn():
    m = rnnlab.DeepTransitionRNN(3, 4, 2, depth=1, skip=False, bidirectional=True, dtype=torch.float64)
    ref = torch.nn.RNN(3, 4, 2, bidirectional=True, dtype=torch.float64)
    ref.load_state_dict(m.state_dict())
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    for a, b in zip(m(x), ref(x)):
        torch.testing.assert_close(a, b)


def test_parameters_and_errors(compiled_runs):
    m = rnnlab.DeepTransitionRNN(3, 4, depth=3)
    assert {n: tuple(p.shape) for n, p in m.named_parameters()} == {
        "weight_ih_l0": (4, 3), "weight_hh_l0": (4, 4), "bias_ih_l0": (4,), "bias_hh_l0": (4,),
        "weight_t2_l0": (4, 4), "weight_t3_l0": (4, 4), "bias_t2_l0": (4,), "bias_t3_l0": (4,)}
    eye = torch.eye(4)
    torch.testing.assert_close(m.weight_t2_l0 @ m.weight_t2_l0.T, eye)  # orthogonal under rnnlab
    m.engine = "native"
    with pytest.raises(ValueError, match="native"):
        m(torch.randn(5, 2, 3))
    m.engine = "auto"
    m(torch.randn(5, 2, 3))
    assert m.last_engine == ("compiled" if compiled_runs else "bptt")
    with pytest.raises(ValueError, match="depth"):
        rnnlab.DeepTransitionCell(3, 4, depth=0)
    with pytest.raises(ValueError, match="nonlinearity"):
        rnnlab.DeepTransitionCell(3, 4, nonlinearity="gelu")
