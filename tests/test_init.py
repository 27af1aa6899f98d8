import math

import torch

import rnnlab


def test_rnnlab_init_orthogonal_recurrent_blocks_and_forget_bias():
    m = rnnlab.LSTM(5, 8, forget_bias=1.0)
    eye = torch.eye(8)
    for block in m.weight_hh_l0.detach().split(8, dim=0):
        torch.testing.assert_close(block @ block.T, eye, atol=1e-5, rtol=0)
    b = m.bias_ih_l0.detach() + m.bias_hh_l0.detach()
    assert torch.all(b[8:16] == 1.0) and torch.all(b[:8] == 0) and torch.all(b[16:] == 0)
    a = math.sqrt(6 / (5 + 8))
    assert m.weight_ih_l0.abs().max() <= a


def test_torch_init_is_torch_nn_uniform():
    m = rnnlab.GRU(5, 16, init="torch")
    bound = 1 / math.sqrt(16)
    for p in m.parameters():
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.8 * bound  # spread over the whole range, not zeros


def test_forget_bias_option():
    m = rnnlab.LSTM(2, 4, forget_bias=0.5)
    assert torch.all(m.bias_ih_l0[4:8] == 0.5)
