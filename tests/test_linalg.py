"""The matrix products of the bptt engine equal torch's, whichever kernel the timing picks."""
import pytest
import torch

import rnnlab
from rnnlab import linalg


@pytest.fixture
def forced(monkeypatch):
    """Force every product onto candidate ``k`` (0: torch's BLAS, 1: oneDNN)."""
    def force(k):
        monkeypatch.setattr(linalg, "_pick", lambda key, candidates: k)
    return force


@pytest.mark.parametrize("k", [0, 1])
def test_products_equal_torch(forced, k):
    if k == 1 and not linalg.onednn_available():
        pytest.skip("this torch has no oneDNN linear kernel")
    forced(k)
    a, w = torch.randn(64, 128), torch.randn(256, 128)
    c, bias = torch.randn(64, 256), torch.randn(256)
    d, x = torch.randn(5, 40, 256), torch.randn(5, 40, 96)
    tol = dict(rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(linalg.mm(a, w.t()), a @ w.t(), **tol)
        torch.testing.assert_close(linalg.mm(c, w), c @ w, **tol)
        torch.testing.assert_close(linalg.addmm(c, a, w.t()), c + a @ w.t(), **tol)
        torch.testing.assert_close(linalg.addmm(bias, a, w.t()), bias + a @ w.t(), **tol)
        acc = c.clone()
        assert linalg.addmm_(acc, a, w.t()) is acc
        torch.testing.assert_close(acc, c + a @ w.t(), **tol)
        want = d.reshape(-1, 256).t() @ x.reshape(-1, 96)
        torch.testing.assert_close(linalg.outer_sum(d, x), want, **tol)
        torch.testing.assert_close(linalg.outer_sum(d[..., 64:192], x), want[64:192], **tol)


def test_autograd_on_takes_torch_route():
    a = torch.randn(64, 128, requires_grad=True)
    w = torch.randn(128, 256)
    out = linalg.mm(a, w)
    out.sum().backward()
    torch.testing.assert_close(a.grad, w.sum(1).expand(64, 128))


@pytest.mark.parametrize("engine", ["bptt", "loop"])
def test_float32_sizes_that_take_the_fast_route_match_torch_lstm(engine):
    """Big enough for the oneDNN route (float64 tests never take it): same as torch.nn.LSTM."""
    theirs = torch.nn.LSTM(64, 96, 2, bidirectional=True)
    ours = rnnlab.LSTM(64, 96, 2, bidirectional=True, engine=engine)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(20, 48, 64, requires_grad=True)
    out1, (h1, c1) = theirs(x)
    out2, (h2, c2) = ours(x)
    g1 = torch.autograd.grad(out1.sum() + c1.sum(), [x, *theirs.parameters()])
    g2 = torch.autograd.grad(out2.sum() + c2.sum(), [x, *ours.parameters()])
    torch.testing.assert_close(out2, out1, rtol=1e-5, atol=1e-5)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
