"""The deep RNN of the DL book's figure 10.13 b: an MLP from x_t to the recurrent layer and from
its output to the task's output layer (rnnlab.layers.step_mlp, rnnlab.models.recurrent_options)."""
import pytest
import torch
from torch import nn

from rnnlab.layers import LSTM
from rnnlab.layers.step_mlp import StepMLP
from rnnlab.models import LanguageModel, LanguageModelConfig
from rnnlab.models.classifier import ClassifierConfig, SequenceClassifier
from rnnlab.models.long_memory import CopyModel, CopyModelConfig


def test_step_mlp_is_tanh_layers_and_identity_at_zero():
    torch.manual_seed(0)
    mlp = StepMLP(5, layers=2, width=3).double()
    x = torch.randn(4, 2, 5, dtype=torch.float64)
    w1, b1, w2, b2 = (p for _, p in mlp.named_parameters())
    assert w1.shape == (3, 5) and w2.shape == (3, 3)
    expected = torch.tanh(torch.tanh(x @ w1.T + b1) @ w2.T + b2)
    assert torch.allclose(mlp(x), expected)
    assert mlp.out_size == 3
    flat = StepMLP(5, layers=0, width=3)
    assert flat(x) is x and flat.out_size == 5 and not list(flat.parameters())
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(mlp, (x,))
    with pytest.raises(ValueError, match="layers must be a whole number"):
        StepMLP(5, layers=-1, width=3)


def test_zero_layers_is_the_model_of_before_weight_for_weight():
    """--input-layers 0 --output-layers 0: the same parameters, drawn in the same order, as the
    language model built with its layer directly (the code before the option)."""
    cfg = dict(vocab_size=11, hidden_size=6, embed_size=4)
    torch.manual_seed(3)
    model = LanguageModel(LanguageModelConfig(**cfg))
    torch.manual_seed(3)
    embedding = nn.Embedding(11, 4)
    rnn = LSTM(4, 6, num_layers=1, dropout=0.0, engine="auto", init="rnnlab")
    decoder = nn.Linear(6, 11)
    nn.init.uniform_(embedding.weight, -0.1, 0.1)
    nn.init.uniform_(decoder.weight, -0.1, 0.1)
    nn.init.zeros_(decoder.bias)
    before = {"embedding.weight": embedding.weight, "decoder.weight": decoder.weight,
              "decoder.bias": decoder.bias, **{f"rnn.{k}": v for k, v in rnn.state_dict().items()}}
    after = model.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    tokens = torch.randint(0, 11, (7, 2))
    logits, _ = model(tokens)
    out, _ = rnn(embedding(tokens))
    assert torch.equal(logits, decoder(out))


@pytest.mark.parametrize("n_in, n_out, width", [(1, 0, 0), (0, 2, 5), (2, 1, 3)])
def test_layers_add_their_parameters(n_in, n_out, width):
    base = dict(vocab_size=20, num_classes=3, embed_size=4, hidden_size=6, bidirectional=True)
    plain = SequenceClassifier(ClassifierConfig(**base))
    deep = SequenceClassifier(ClassifierConfig(**base, input_layers=n_in, output_layers=n_out,
                                               mlp_size=width))
    W = width or 6

    def mlp(i, n):
        return 0 if n == 0 else (i * W + W) + (n - 1) * (W * W + W)
    count = lambda m: sum(p.numel() for p in m.parameters())
    layer_in = W if n_in else 4                          # what the LSTM reads
    head_in = W if n_out else 12                         # what the output layer reads (D * H)
    expected = count(plain) + mlp(4, n_in) + mlp(12, n_out) \
        + 2 * 4 * 6 * (layer_in - 4) + 3 * (head_in - 12)  # weight_ih of both directions; the head
    assert count(deep) == expected
    assert count(deep.input_mlp) == mlp(4, n_in) and count(deep.output_mlp) == mlp(12, n_out)
    # gradients reach every MLP weight
    tokens, lengths = torch.randint(0, 20, (5, 3)), torch.tensor([5, 4, 2])
    deep(tokens, lengths).sum().backward()
    for name, p in deep.named_parameters():
        if "mlp" in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_deep_rnn_trains_a_tiny_task():
    """The copy task (recall the first symbols after a delay) with one input and one output
    layer: the loss falls well below where it starts."""
    torch.manual_seed(0)
    model = CopyModel(CopyModelConfig(symbols=6, classes=5, embed_size=8, hidden_size=16,
                                      input_layers=1, output_layers=1, mlp_size=12))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randint(1, 5, (12, 32))                    # (T, B): recall x at the same step
    y = x.clamp(max=4)

    def loss():
        return nn.functional.cross_entropy(model(x).reshape(-1, 5), y.reshape(-1))
    first = loss().item()
    for _ in range(60):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    assert loss().item() < 0.2 * first
