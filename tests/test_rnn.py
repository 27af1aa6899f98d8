import pytest
import torch

import rnnlab
from engine_check import (LENGTHS, assert_engines_agree, assert_matches_loop_of_cell,
                          gradcheck_layer)

NONLIN = ["tanh", "relu", "sigmoid"]


@pytest.mark.parametrize("nonlinearity", NONLIN)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True), (1, True), (2, False)])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_bptt_equals_loop(nonlinearity, layers, bidirectional, with_lengths):
    m = rnnlab.RNN(3, 4, layers, nonlinearity=nonlinearity, bidirectional=bidirectional,
                   dtype=torch.float64)
    assert_engines_agree(m, LENGTHS if with_lengths else None, return_states=with_lengths)


@pytest.mark.parametrize("nonlinearity", NONLIN)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gradcheck(nonlinearity, with_lengths):
    m = rnnlab.RNN(2, 3, 2, nonlinearity=nonlinearity, bidirectional=True, dtype=torch.float64)
    gradcheck_layer(m, torch.tensor([3, 1]) if with_lengths else None)


@pytest.mark.parametrize("nonlinearity", NONLIN)
def test_layer_equals_loop_of_cell(nonlinearity):
    m = rnnlab.RNN(3, 4, nonlinearity=nonlinearity, dtype=torch.float64)
    assert_matches_loop_of_cell(m, torch.randn(6, 2, 3, dtype=torch.float64))


def test_cell_step_is_the_equation():
    cell = rnnlab.RNNCell(3, 4, dtype=torch.float64)
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    out, h1 = cell(x, h)
    want = torch.tanh(x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh)
    torch.testing.assert_close(h1, want)
    torch.testing.assert_close(out, want)
