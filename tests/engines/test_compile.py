"""``torch.compile`` (default backend) of a model holding an rnnlab layer: the outputs and the
gradients equal eager's on the engines ``auto``, ``native``, ``compiled``, ``bptt``, ``loop`` and
``scan`` (which runs ``loop`` under compile), at four sequence lengths and batch sizes; and a
compiled model is not compiled again for every new size (dynamo's counters)."""
import pytest
import torch

import rnnlab

I, H = 4, 5


class Model(torch.nn.Module):
    """A layer and a linear read-out: a model as users write them."""

    def __init__(self, layer):
        super().__init__()
        self.rnn, self.out = layer, torch.nn.Linear(layer.hidden_size * (1 + layer.bidirectional), 2)

    def forward(self, x, lengths=None):
        h, _ = self.rnn(x, lengths=lengths)
        return self.out(h)


def grads(model, x, lengths, compiled=None):
    (model if compiled is None else compiled)(x, lengths).square().sum().backward()
    g = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    return g


@pytest.mark.slow_cases
@pytest.mark.parametrize("engine", ["auto", "native", "compiled", "bptt", "loop", "scan"])
def test_compile_equals_eager(engine, compiled_runs):
    if engine == "compiled" and not compiled_runs:
        pytest.skip("the compiled engine cannot run here")
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = Model(rnnlab.LSTM(I, H, num_layers=2, bidirectional=True, engine=engine))
    eager = Model(rnnlab.LSTM(I, H, num_layers=2, bidirectional=True, engine=engine))
    eager.load_state_dict(model.state_dict())
    compiled = torch.compile(model)
    for T, B in [(6, 3), (9, 4), (4, 2), (7, 5)]:
        x = torch.randn(T, B, I)
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        torch.testing.assert_close(compiled(x, lengths), eager(x, lengths), atol=1e-5, rtol=1e-5)
        for a, b in zip(grads(model, x, lengths, compiled), grads(eager, x, lengths)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_compile_of_every_cell_equals_eager():
    torch.manual_seed(0)
    for cls, options in [(rnnlab.GRU, {"reset_after": False}), (rnnlab.LeakyRNN, {}),
                         (rnnlab.ResidualRNN, {"gated": True}), (rnnlab.DeepTransitionRNN, {}),
                         (rnnlab.LSTM, {"peephole": "full", "layer_norm": True})]:
        torch._dynamo.reset()
        model = Model(cls(I, H, **options))
        x = torch.randn(7, 3, I)
        lengths = torch.tensor([7, 2, 5])
        compiled = torch.compile(model)
        torch.testing.assert_close(compiled(x, lengths), model(x, lengths), atol=1e-5, rtol=1e-5)
        for a, b in zip(grads(model, x, lengths, compiled), grads(model, x, lengths)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("engine", ["native", "loop"])
def test_compiled_model_does_not_recompile_per_call(engine):
    """After three calls of different sizes (the first compiles with static sizes, the next ones
    make them dynamic; ``loop`` compiled once more on its third size), calls of further sizes and
    lengths compile nothing new."""
    from torch._dynamo.utils import counters
    torch.manual_seed(0)
    torch._dynamo.reset()
    counters.clear()
    model = Model(rnnlab.LSTM(I, H, engine=engine))
    compiled = torch.compile(model)

    def call(T, B):
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        x = torch.randn(T, B, I)
        torch.testing.assert_close(compiled(x, lengths), model(x, lengths), atol=1e-5, rtol=1e-5)

    for T, B in [(6, 3), (9, 4), (4, 2)]:
        call(T, B)
    warm = (counters["frames"]["ok"], counters["stats"]["unique_graphs"])
    assert warm[0] > 0  # (dynamo did compile: the counters count)
    for T, B in [(7, 5), (12, 3), (5, 6), (3, 7)]:
        call(T, B)
    assert (counters["frames"]["ok"], counters["stats"]["unique_graphs"]) == warm
