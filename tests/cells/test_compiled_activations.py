"""The compiled engine's own float32 tanh and sigmoid (csrc/common.h: exp by range reduction and
a polynomial, tanh through e^y - 1) against float64's, over the whole float range that matters:
an RNN whose state is phi(x) exactly (W_ih the identity, W_hh and the biases zero) computes them
elementwise. tanh within 3e-7 relative (5 float32 ulp near 1, the odd symmetry and tanh(x) ~ x
for tiny x kept); sigmoid within 1e-6 relative.
"""
import pytest
import torch

import rnnlab

pytestmark = pytest.mark.requires_compiled  # skipped where the C++ cannot be built (conftest.py)


def points() -> torch.Tensor:
    """Dense over [-20, 20], plus tiny magnitudes of both signs and zero, float32 (T, 1, 1)."""
    tiny = torch.logspace(-30, -1, 200, dtype=torch.float64)
    x = torch.cat([torch.linspace(-20, 20, 40001, dtype=torch.float64), tiny, -tiny, torch.zeros(1, dtype=torch.float64)])
    return x.float().reshape(-1, 1, 1)


@pytest.mark.parametrize("name,rtol", [("tanh", 3e-7), ("sigmoid", 1e-6)])
def test_float32_activation_accuracy(name, rtol):
    layer = rnnlab.RNN(1, 1, nonlinearity=name, engine="compiled")
    x = points().reshape(1, -1, 1)  # one step, every point a sequence of the batch
    with torch.no_grad():
        layer.weight_ih_l0.fill_(1.0)
        layer.weight_hh_l0.zero_()
        layer.bias_ih_l0.zero_()
        layer.bias_hh_l0.zero_()
        got = layer(x)[0].reshape(-1)
        minus = layer(-x)[0].reshape(-1)
    assert layer.last_engine == "compiled"
    want = getattr(torch, name)(x.reshape(-1).double())
    err = (got.double() - want).abs() / want.abs().clamp_min(1e-300)
    worst = int(err.argmax())
    assert err[worst] <= rtol, (f"{name}({x.reshape(-1)[worst].item()!r}) = {got[worst].item()!r}, "
                                f"want {want[worst].item()!r}")
    if name == "tanh":  # odd: tanh(-x) = -tanh(x) to the bit, so tanh(0) = 0 and tiny x keep their sign
        assert torch.equal(minus, -got)
