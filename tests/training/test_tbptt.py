"""Truncated BPTT(k1, k2): the windows, and the gradients against independent computations."""
import pytest
import torch
from torch.nn import functional as F

from rnnlab.errors import ConfigError
from rnnlab.models import LanguageModel, LanguageModelConfig
from rnnlab.tasks.language_modelling import LanguageModelling
from rnnlab.training.config import TrainConfig
from rnnlab.training.tbptt import check_tbptt, windows


@pytest.mark.parametrize("steps, k1, k2", [(20, 5, 5), (20, 5, 8), (23, 5, 12), (7, 3, 3), (9, 9, 9),
                                           (10, 1, 4), (10, 4, 100)])
def test_windows_cover_every_loss_once(steps, k1, k2):
    ws = windows(steps, (k1, k2))
    owned = [t for w in ws for t in range(w.loss_start, w.end)]
    assert owned == list(range(steps))                       # each step's loss counted once
    for n, w in enumerate(ws):
        assert w.end - w.loss_start <= k1
        assert w.start == max(0, w.end - k2)                 # the gradient reaches k2 steps back
        assert w.start <= w.seam <= w.end
        if n + 1 < len(ws):
            assert ws[n + 1].start == w.seam                 # the next window starts at the seam


def test_full_bptt_is_one_window():
    assert windows(17, None) == windows(17, (17, 17))
    assert len(windows(17, None)) == 1
    assert check_tbptt("full") is None and check_tbptt(7) == (7, 7) and check_tbptt([3, 5]) == (3, 5)
    with pytest.raises(ConfigError, match="k1 <= k2"):
        check_tbptt((5, 3))


def _task(ids, B, tbptt, cell="lstm"):
    torch.manual_seed(3)
    model = LanguageModel(LanguageModelConfig(vocab_size=11, hidden_size=6, embed_size=5, layers=2,
                                              cell=cell, engine="bptt")).double()
    task = LanguageModelling(None, {"train": ids}, TrainConfig(batch_size=B, tbptt=tbptt))
    return model, task


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def test_full_window_gives_full_bptt_gradients():
    ids = torch.randint(0, 11, (3 * 16,))
    model, task = _task(ids, 3, (15, 15))                    # 16 rows -> 15 steps: one window
    assert len(task.windows) == 1
    objective, loss_sum, count = task.train_step(model, 0, 0)
    got = _grads(model, objective)
    rows = task.rows
    logits, _ = model(rows[:-1])                             # plain BPTT over the whole sequence
    ref = F.cross_entropy(logits.reshape(-1, 11), rows[1:].reshape(-1), reduction="sum") / 3
    want = _grads(model, ref)
    assert count == 45 and torch.allclose(loss_sum / 3, ref.detach(), rtol=1e-12)
    for g, w in zip(got, want):
        assert torch.equal(g, w)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_overlapping_windows_match_a_direct_computation(cell):
    """Window n's gradient: the state at its start from an undifferentiated run of the steps
    before, then the summed losses of its last k1 steps backpropagated through k2 steps."""
    k1, k2, B = 4, 7, 2
    ids = torch.randint(0, 11, (B * 20,))
    model, task = _task(ids, B, (k1, k2), cell)
    rows = task.rows                                         # (20, B): 19 steps
    task.start_epoch(0)
    model.eval()                                             # no dropout; values must agree
    for n, w in enumerate(task.windows):
        objective, _, _ = task.train_step(model, 0, n)
        got = _grads(model, objective)
        with torch.no_grad():
            state = model(rows[:w.start])[1] if w.start > 0 else None
        logits, _ = model(rows[w.start:w.end], state)
        ref = F.cross_entropy(logits[w.loss_start - w.start:].reshape(-1, 11),
                              rows[w.loss_start + 1:w.end + 1].reshape(-1), reduction="sum") / B
        want = _grads(model, ref)
        for g, r in zip(got, want):
            torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_carried_state_reads_the_stream_continuously():
    """The losses of all windows add up to one uninterrupted pass over the streams."""
    ids = torch.randint(0, 11, (4 * 30,))
    model, task = _task(ids, 4, (6, 9))
    model.eval()
    task.start_epoch(0)
    total = sum(float(task.train_step(model, 0, n)[1]) for n in range(len(task.windows)))
    rows = task.rows
    with torch.no_grad():
        logits, _ = model(rows[:-1])
    want = float(F.cross_entropy(logits.reshape(-1, 11), rows[1:].reshape(-1), reduction="sum"))
    assert total == pytest.approx(want, rel=1e-12)
