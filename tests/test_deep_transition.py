import pytest
import torch

import rnnlab
from engine_check import (LENGTHS, assert_engines_agree, assert_matches_loop_of_cell,
                          gradcheck_layer)

OPTIONS = [
    {},
    {"skip": False},
    {"depth": 1},
    {"depth": 3},
    {"depth": 3, "skip": False, "bias": False},
    {"nonlinearity": "relu", "init": "torch"},  # nonzero biases: no pre-activation sits on the kink
    {"nonlinearity": "sigmoid", "skip": False},
]
SHAPES = [(1, False), (2, True), (1, True), (2, False)]


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("layers,bidirectional", SHAPES)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_bptt_equals_loop(options, layers, bidirectional, with_lengths):
    m = rnnlab.DeepTransitionRNN(3, 4, layers, bidirectional=bidirectional, dtype=torch.float64,
                                 **options)
    assert_engines_agree(m, LENGTHS if with_lengths else None)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_bptt_equals_loop_all_states(options):
    m = rnnlab.DeepTransitionRNN(3, 4, 2, bidirectional=True, dtype=torch.float64, **options)
    assert_engines_agree(m, LENGTHS, return_states=True)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gradcheck(options, layers, bidirectional, with_lengths):
    m = rnnlab.DeepTransitionRNN(2, 3, layers, bidirectional=bidirectional, dtype=torch.float64,
                                 **options)
    gradcheck_layer(m, torch.tensor([3, 1]) if with_lengths else None)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_layer_equals_loop_of_cell(options):
    m = rnnlab.DeepTransitionRNN(3, 4, dtype=torch.float64, **options)
    assert_matches_loop_of_cell(m, torch.randn(6, 2, 3, dtype=torch.float64))


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


def test_parameters_and_errors():
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
    assert m.last_engine == "bptt"
    with pytest.raises(ValueError, match="depth"):
        rnnlab.DeepTransitionCell(3, 4, depth=0)
    with pytest.raises(ValueError, match="nonlinearity"):
        rnnlab.DeepTransitionCell(3, 4, nonlinearity="gelu")
