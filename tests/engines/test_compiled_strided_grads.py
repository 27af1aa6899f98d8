"""The ``compiled`` engine reads the loss's gradient of each step through its strides, without a
contiguous copy: an expanded gradient (a plain sum's: every stride 0; a weighted sum's: rows
stride 0), one direction's half of a bidirectional output's gradient (rows 2H apart) and a
transposed one (units not adjacent) must give bptt's gradients exactly as a contiguous one does
(float64, relative 1e-7), for the cells of compiled.cpp and of each of its other files.
"""
import pytest
import torch

import rnnlab

pytestmark = pytest.mark.requires_compiled  # skipped where the C++ cannot be built (conftest.py)

CELLS = [(rnnlab.RNN, {}), (rnnlab.LSTM, {}), (rnnlab.GRU, {}), (rnnlab.LeakyRNN, {"leak_mode": "learned"}),
         (rnnlab.ResidualRNN, {"gated": True}), (rnnlab.DeepTransitionRNN, {"depth": 2}),
         (rnnlab.OutputFeedbackRNN, {"output_size": 3})]

T, B, I, H = 6, 3, 4, 5


def losses(out):
    """Losses whose gradient w.r.t. ``out`` (T, B, H) has unusual strides, named by them."""
    w = torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)
    return {
        "sum (strides 0, 0, 0)": out.sum(),
        "weighted sum (strides 0, 0, 1)": (out * w).sum(),
        "transposed (units not adjacent)": (out.transpose(0, 2).contiguous() * torch.randn(
            out.shape[2], out.shape[1], out.shape[0], dtype=out.dtype, generator=torch.Generator().manual_seed(3))).sum(),
    }


@pytest.mark.parametrize("cls,options", CELLS, ids=[c.__name__ for c, _ in CELLS])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["one direction", "bidirectional"])
def test_strided_output_gradients_equal_bptt(cls, options, bidirectional):
    torch.manual_seed(0)
    layer = cls(I, H, bidirectional=bidirectional, dtype=torch.float64, **options)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    for name in losses(torch.zeros(T, B, 2 * H if bidirectional else H, dtype=torch.float64)):
        grads = {}
        for engine in ("bptt", "compiled"):
            layer.engine = engine
            loss = losses(layer(x)[0])[name]
            assert layer.last_engine == engine
            grads[engine] = torch.autograd.grad(loss, [x, *layer.parameters()])
        for a, b in zip(grads["bptt"], grads["compiled"]):
            torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=lambda m: f"{name}: {m}")
