import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnlab
from engine_check import (LENGTHS, assert_engines_agree, assert_matches_loop_of_cell,
                          gradcheck_layer)

OPTIONS = [
    {},
    {"peephole": "diagonal"},
    {"peephole": "full"},
    {"forget_gate": False},
    {"forget_gate": False, "peephole": "diagonal"},
    {"forget_gate": False, "peephole": "full"},
]
SHAPES = [(1, False), (2, True), (1, True), (2, False)]


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("layers,bidirectional", SHAPES)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_bptt_equals_loop(options, layers, bidirectional, with_lengths):
    m = rnnlab.LSTM(3, 4, layers, bidirectional=bidirectional, dtype=torch.float64, **options)
    assert_engines_agree(m, LENGTHS if with_lengths else None)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_bptt_equals_loop_all_states(options):
    m = rnnlab.LSTM(3, 4, 2, bidirectional=True, dtype=torch.float64, **options)
    assert_engines_agree(m, LENGTHS, return_states=True)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gradcheck(options, layers, bidirectional, with_lengths):
    m = rnnlab.LSTM(2, 3, layers, bidirectional=bidirectional, dtype=torch.float64, **options)
    gradcheck_layer(m, torch.tensor([3, 1]) if with_lengths else None)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_layer_equals_loop_of_cell(options):
    m = rnnlab.LSTM(3, 4, dtype=torch.float64, **options)
    assert_matches_loop_of_cell(m, torch.randn(6, 2, 3, dtype=torch.float64))
