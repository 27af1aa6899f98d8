"""The compiled engine's leaky-unit and residual RNNs with parameters away from their start
(biases, leak logits): their forward loops add b per step (the input projection leaves it out) and
the leaky backward hands back dL/d(leak_logit) whole (the reduction over batch and steps and
sigma's derivative in the C++). Both equal ``bptt`` in float64 within a relative 1e-7, on
sequences long enough for the separate projection, padded batch and a bidirectional layer
included; float32 close too. The ReLU cases draw smaller weights: with the moved parameters a ReLU
residual layer's state grows step by step to 1e9, where the gradients' rounding (1e-9 of their
largest) exceeds 1e-7 of their smallest elements, in either summation order.
"""
import pytest
import torch

import rnnlab
from engine_check import loss_of, outputs_and_grads

pytestmark = pytest.mark.requires_compiled  # skipped where the C++ cannot be built (conftest.py)

F64 = torch.float64
L = rnnlab.LeakyRNN
CASES = [(L, {"leak_mode": "learned"}), (L, {"leak_mode": "learned", "leak_shape": "unit"}),
         (L, {"leak_mode": "learned", "leak_shape": "unit", "nonlinearity": "sigmoid", "bidirectional": True}),
         (L, {"leak": 0.7, "leak_shape": "unit"}), (rnnlab.ResidualRNN, {"gated": True}),
         (rnnlab.ResidualRNN, {"nonlinearity": "sigmoid", "bidirectional": True})]


RELU_CASES = [(rnnlab.ResidualRNN, {"nonlinearity": "relu"}),
              (rnnlab.ResidualRNN, {"nonlinearity": "relu", "gated": True}),
              (L, {"nonlinearity": "relu", "leak_mode": "learned", "leak_shape": "unit"})]


def moved(layer, weights: float = 0.3, biases: float = 1.0):
    """layer with every parameter drawn afresh (nonzero biases, leaks spread over (0, 1))."""
    torch.manual_seed(3)
    with torch.no_grad():
        for name, q in layer.named_parameters():
            q.copy_(torch.randn_like(q) * (weights if name.startswith("weight") else biases))
    return layer


@pytest.mark.parametrize("cls,options", CASES + RELU_CASES,
                         ids=[f"{c.__name__}-{o}" for c, o in CASES + RELU_CASES])
def test_moved_parameters_equal_bptt(cls, options):
    relu = options.get("nonlinearity") == "relu"
    layer = moved(cls(48, 40, dtype=F64, **options), *((0.05, 0.5) if relu else ()))
    T, B = 20, 8  # T*B*I*H above linalg.MIN_MACS: the separate projection, then the loop
    x = torch.randn(T, B, 48, dtype=F64, requires_grad=True)
    lengths = torch.tensor([20, 13, 1, 17, 20, 5, 19, 2])
    (ref, ref_grads), (got, got_grads) = outputs_and_grads(layer, x, lengths)
    torch.testing.assert_close(got, ref, rtol=1e-7, atol=1e-9)
    names = ["input"] + [n for n, _ in layer.named_parameters()]
    assert any(n.startswith("leak_logit") for n in names) == (options.get("leak_mode") == "learned")
    for name, a, b in zip(names, ref_grads, got_grads):
        assert a.abs().max() > 0, name  # a gradient that can tell the engines apart
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=lambda m: f"grad {name}: {m}")


def test_float32_close_to_float64():
    layer = moved(rnnlab.LeakyRNN(48, 40, leak_mode="learned", leak_shape="unit", dtype=F64))
    x = torch.randn(20, 8, 48, dtype=F64)
    (ref, ref_grads), _ = outputs_and_grads(layer, x.requires_grad_(), None)
    layer32 = layer.float()
    layer32.engine = "compiled"
    x32 = x.detach().float().requires_grad_()
    out, h_n = layer32(x32)
    assert layer32.last_engine == "compiled"
    grads = torch.autograd.grad(loss_of(out, h_n), [x32, *layer32.parameters()])
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)
    for a, b in zip(ref_grads, grads):
        torch.testing.assert_close(b.double(), a, rtol=1e-3, atol=1e-4 * a.abs().max().item())
