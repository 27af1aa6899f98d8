"""The long-memory tasks: their definitions, their seeds, and their baselines."""
import math

import pytest
import torch

from rnnlab.data.long_memory import (adding_baseline_mse, adding_problem, copy_baseline_loss,
                                     copy_task)
from rnnlab.errors import ConfigError


def test_modern_adding_problem():
    x, lengths, y = adding_problem(500, 50, generator=torch.Generator().manual_seed(0))
    assert x.shape == (50, 500, 2) and (lengths == 50).all()
    marks = x[:, :, 1]
    assert (marks.sum(0) == 2).all()
    assert (marks[:25].sum(0) == 1).all() and (marks[25:].sum(0) == 1).all()   # one per half
    torch.testing.assert_close(y, (x[:, :, 0] * marks).sum(0))
    assert x[:, :, 0].min() >= 0 and x[:, :, 0].max() <= 1


def test_modern_baseline_is_one_sixth():
    _, _, y = adding_problem(200_000, 8, generator=torch.Generator().manual_seed(1))
    assert float(((y - 1) ** 2).mean()) == pytest.approx(adding_baseline_mse(), rel=0.01)


def test_hochreiter_adding_problem():
    T = 100
    x, lengths, y = adding_problem(300, T, form="hochreiter", generator=torch.Generator().manual_seed(2))
    assert lengths.min() >= T and lengths.max() <= T + T // 10
    first_marked = 0
    for b in range(300):
        L = int(lengths[b])
        marks = x[:L, b, 1]
        ones = (marks == 1).nonzero().flatten().tolist()
        assert len(ones) == 2 and ones[0] < 10 and ones[1] < T // 2 - 1
        assert marks[L - 1] == -1 and (x[L:, b] == 0).all()
        assert marks[0] == (1 if ones[0] == 0 else -1)
        first_marked += ones[0] == 0
        assert float(y[b]) == pytest.approx(0.5 + float(x[ones, b, 0].sum()) / 4)
    assert 0 < first_marked < 300
    assert x[:, :, 0].min() >= -1 and x[:, :, 0].max() <= 1


def test_copy_task():
    T = 30
    x, y = copy_task(64, T, generator=torch.Generator().manual_seed(3))
    assert x.shape == y.shape == (T + 20, 64)
    assert ((x[:10] >= 1) & (x[:10] <= 8)).all()
    assert (x[10:T + 9] == 0).all() and (x[T + 9] == 9).all() and (x[T + 10:] == 0).all()
    assert (y[:T + 10] == 0).all() and torch.equal(y[T + 10:], x[:10])


def test_copy_baseline_is_the_memoryless_strategy():
    """Blank for sure on the first T + 10 steps, uniform over the 8 symbols on the last 10."""
    T = 40
    _, y = copy_task(256, T, generator=torch.Generator().manual_seed(4))
    logits = torch.full((T + 20, 256, 10), -1e4)
    logits[:T + 10, :, 0] = 0
    logits[T + 10:, :, 1:9] = 0
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 10), y.reshape(-1))
    assert float(ce) == pytest.approx(copy_baseline_loss(T), rel=1e-6)
    assert copy_baseline_loss(T) == pytest.approx(10 * math.log(8) / (T + 20))


def test_seeds_reproduce():
    a = copy_task(8, 10, generator=torch.Generator().manual_seed(5))
    b = copy_task(8, 10, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("call", [lambda: adding_problem(4, 2), lambda: copy_task(4, 0),
                                  lambda: adding_problem(4, 50, form="other")])
def test_bad_settings(call):
    with pytest.raises(ConfigError):
        call()
