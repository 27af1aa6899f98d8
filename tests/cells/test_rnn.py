import torch

import rnnlab


def test_cell_step_is_the_equation():
    cell = rnnlab.RNNCell(3, 4, dtype=torch.float64)
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    out, h1 = cell(x, h)
    want = torch.tanh(x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh)
    torch.testing.assert_close(h1, want)
    torch.testing.assert_close(out, want)
