"""The regularizers' mask draw (rnnlab.engines.regularization.bernoulli): splitmix64 of a counter,
16 bits a sample. Checked against a plain-Python splitmix64, for its rate, its edges and its
reproducibility under torch.manual_seed."""
import pytest
import torch

from rnnlab.engines.regularization import bernoulli, dropout_mask

M64 = (1 << 64) - 1


def splitmix64(z: int) -> int:
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & M64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & M64
    return z ^ (z >> 31)


def test_equals_plain_python_splitmix64():
    like = torch.zeros(1, dtype=torch.float64)
    torch.manual_seed(5)
    seed = int(torch.randint(-(1 << 62), 1 << 62, (1,)))
    torch.manual_seed(5)
    got = bernoulli(like, (3, 7), 0.3).flatten().tolist()                 # 21 samples: 6 counters
    p16 = round(0.3 * 65536)
    want = []
    for i in range(1, 7):
        z = splitmix64((i * 0x9E3779B97F4A7C15 + seed) & M64)
        for k in range(4):   # little-endian 16-bit pieces, as signed int16 against p 2^16 - 2^15
            v = (z >> (16 * k)) & 0xFFFF
            signed = v - 65536 if v >= 32768 else v
            want.append(float(signed < p16 - 32768))
    assert got == want[:21]


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_rate_and_independence(p):
    k = bernoulli(torch.zeros(1), (400, 1000), p)
    n = k.numel()
    assert k.dtype == torch.float32 and set(k.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(k.mean()) - p) < 5 * (p * (1 - p) / n) ** 0.5
    c = (k - p).flatten()
    for lag in (1, 2, 3, 4, 1000):   # neighbours within a counter, across counters, across rows
        assert abs(float((c[lag:] * c[:-lag]).mean())) < 5 * p * (1 - p) / n ** 0.5


def test_edges_and_seeds():
    like = torch.zeros(1)
    assert bernoulli(like, (5, 9), 1.0).eq(1).all() and bernoulli(like, (5, 9), 0.0).eq(0).all()
    assert bernoulli(like, (0, 3), 0.5).shape == (0, 3)
    torch.manual_seed(0)
    a = bernoulli(like, (64, 33), 0.5)
    b = bernoulli(like, (64, 33), 0.5)
    torch.manual_seed(0)
    assert torch.equal(a, bernoulli(like, (64, 33), 0.5)) and not torch.equal(a, b)
    m = dropout_mask(torch.zeros(1, dtype=torch.float64), (2000,), 0.25)
    assert m.dtype == torch.float64 and set(m.unique().tolist()) <= {0.0, 1 / 0.75}


def test_dropout_module_is_torch_dropout_with_the_fast_masks():
    """rnnlab.layers.Dropout: x * m / (1 - p) with bernoulli's mask in training (the same mask
    dropout_mask draws from the same seed), the identity in eval, gradients m / (1 - p)."""
    from rnnlab.layers import Dropout
    drop = Dropout(0.3)
    assert isinstance(drop, torch.nn.Dropout)
    x = torch.randn(40, 50, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(2)
    y = drop(x)
    torch.manual_seed(2)
    m = dropout_mask(x, x.shape, 0.3)
    assert torch.equal(y, x * m)
    y.sum().backward()
    assert torch.equal(x.grad, m)
    assert abs(float((m > 0).double().mean()) - 0.7) < 0.03
    drop.eval()
    assert torch.equal(drop(x), x)


@pytest.mark.requires_compiled
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_draw_gives_the_same_bits(monkeypatch, dtype):
    """Where the compiled engine is loaded its one-pass draw runs: the same samples as the torch
    operations, bit for bit (an odd count: the last counter's lanes cut), and the same draw from
    torch's generator."""
    from rnnlab.engines import compiled, regularization
    assert compiled.compiled_available() and compiled.loaded() is not None
    like = torch.zeros(1, dtype=dtype)
    got = {}
    for path in ("compiled", "torch"):
        if path == "torch":
            monkeypatch.setattr(regularization.compiled, "loaded", lambda: None)
        torch.manual_seed(11)
        got[path] = [bernoulli(like, (37, 5, 9), p) for p in (0.05, 0.5, 0.93)], torch.rand(1)
    for a, b in zip(got["compiled"][0], got["torch"][0]):
        assert a.dtype == dtype and a.shape == (37, 5, 9) and torch.equal(a, b)
    assert torch.equal(got["compiled"][1], got["torch"][1])
