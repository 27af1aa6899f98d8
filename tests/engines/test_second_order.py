"""Second derivatives (``create_graph=True``: a gradient penalty, a Hessian-vector product) on
every engine: ``bptt``, ``compiled`` and ``triton`` write their backward by hand and ``scan``'s is
torch's, taken once; asked for a graph of their gradients, they recompute the call through
``loop`` (rnnlab/engines/loop.py ``second_order``) with the same inputs and masks. The objective's
gradients equal ``loop``'s in float64 for every regularizer, lengths and both directions, and
``gradgradcheck`` holds against finite differences."""
import pytest
import torch

import rnnlab

LAYERS = {
    "lstm 2 layers bidirectional": lambda e: rnnlab.LSTM(3, 4, num_layers=2, bidirectional=True, engine=e),
    "gru layer norm zoneout": lambda e: rnnlab.GRU(3, 4, layer_norm=True, zoneout=0.2, engine=e),
    "lstm full peepholes, dropouts": lambda e: rnnlab.LSTM(3, 4, peephole="full", recurrent_dropout=0.3,
                                                         weight_drop=0.2, engine=e),
    "notes' gru, skip connections": lambda e: rnnlab.GRU(3, 4, reset_after=False, skip_steps=2, engine=e),
    "output feedback": lambda e: rnnlab.OutputFeedbackRNN(3, 4, 2, engine=e),
}


def penalty_gradients(make, engine, state=None):
    """The layer, and dL/d(parameters, x) of L = |dJ/dx|^2 + sum(out^3), J = sum(out^2)."""
    torch.manual_seed(1)
    layer = make(engine).double()
    if state is not None:
        layer.load_state_dict(state)
    torch.manual_seed(2)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(3)  # (the regularizers' masks: the same draws on every engine)
    out = layer(x, lengths=torch.tensor([5, 3]))[0]
    (gx,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    (gx.square().sum() + out.pow(3).sum()).backward()
    return layer, [p.grad for p in layer.parameters()] + [x.grad]


@pytest.mark.parametrize("engine", ["bptt", "compiled", "scan", "native"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_second_derivatives_equal_loops(name, engine, compiled_runs):
    if engine == "compiled" and not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    make = LAYERS[name]
    probe = make(engine)
    if engine == "native" and rnnlab.engines.native_unsupported(probe):
        pytest.skip("torch has no fused kernel for this configuration")
    if engine == "compiled" and rnnlab.engines.compiled_layer_unsupported(probe):
        pytest.skip("the compiled engine does not run this configuration")
    reference, want = penalty_gradients(make, "loop")
    _, got = penalty_gradients(make, engine, reference.state_dict())
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("engine", ["bptt", "compiled"])
def test_gradgradcheck(engine, compiled_runs):
    if engine == "compiled" and not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    torch.manual_seed(0)
    layer = rnnlab.LSTM(2, 3, layer_norm=True, engine=engine).double()
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, *p: layer(x)[0], (x, *layer.parameters()))
