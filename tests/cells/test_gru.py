import pytest
import torch

import rnnlab


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
# (the layer under every engine: tests/layers/test_against_torch.py)

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
