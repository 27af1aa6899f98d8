"""The trainer: determinism, resume after SIGKILL, schedules, clipping, best checkpoint, records."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import rnnlab
from rnnlab.errors import CheckpointError, ConfigError
from rnnlab.training.checkpoint import read_checkpoint
from rnnlab.training.optim import LRSchedule, clip_gradients

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(400))


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT)
    return p


SMALL = dict(hidden_size=24, embed_size=8, batch_size=4, tbptt=(20, 30), epochs=2, dropout=0.1,
             checkpoint_every=7, log_every=5, progress=False, sample_length=0, seed=3)


def _train(corpus, out, **kw):
    return rnnlab.train(data=str(corpus), out=str(out), say=lambda s: None, **{**SMALL, **kw})


def _final(run):
    groups, meta = read_checkpoint(run / "checkpoint.safetensors")
    return groups, meta


def _same(a, b):
    assert a.keys() == b.keys()
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_seed_makes_a_run_deterministic(corpus, tmp_path):
    _train(corpus, tmp_path / "a")
    _train(corpus, tmp_path / "b")
    ga, _ = _final(tmp_path / "a")
    gb, _ = _final(tmp_path / "b")
    assert _same(ga["model"], gb["model"]) and _same(ga["optim"], gb["optim"])
    _train(corpus, tmp_path / "c", seed=4)
    gc, _ = _final(tmp_path / "c")
    assert not _same(ga["model"], gc["model"])


@pytest.mark.slow_cases
@pytest.mark.parametrize("cell, sig", [("lstm", signal.SIGKILL), ("gru", signal.SIGKILL),
                                       ("lstm", signal.SIGINT)])
def test_resume_after_a_kill_is_bit_identical(corpus, tmp_path, cell, sig):
    """A run killed with SIGKILL (or stopped with Ctrl-C) mid-training, resumed with --resume,
    ends with exactly the parameters and optimizer state of an uninterrupted run (lstm: torch's
    kernel; gru: the bptt engine)."""
    args = ["--data", str(corpus), "--hidden-size", "24", "--embed-size", "8", "--batch-size", "4",
            "--tbptt", "20", "30", "--epochs", "3", "--dropout", "0.1", "--checkpoint-every", "5",
            "--seed", "3", "--cell", cell, "--no-progress", "--sample-length", "0"]
    cmd = [sys.executable, "-m", "rnnlab", "train"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    subprocess.run(cmd + args + ["--out", str(whole)], check=True, capture_output=True)
    steps = json.loads((whole / "summary.json").read_text())["steps"]
    proc = subprocess.Popen(cmd + args + ["--out", str(broken)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        recs = (broken / "metrics.jsonl").read_text().splitlines() if (broken / "metrics.jsonl").exists() else []
        if len(recs) >= 3 and (broken / "checkpoint.safetensors").exists():
            break
        time.sleep(0.01)
    proc.send_signal(sig)
    code = proc.wait()
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    _, meta = read_checkpoint(broken / "checkpoint.safetensors")
    killed_at = meta["trainer"]["step"]
    assert 0 < killed_at < steps
    if sig == signal.SIGINT:                             # Ctrl-C saves the update it was in
        assert json.loads((broken / "summary.json").read_text())["stop_reason"] == "interrupted"
    subprocess.run(cmd + ["--resume", str(broken), "--no-progress", "--sample-length", "0"],
                   check=True, capture_output=True)
    gw, mw = _final(whole)
    gb, mb = _final(broken)
    assert mb["trainer"]["step"] == steps
    assert _same(gw["model"], gb["model"]) and _same(gw["optim"], gb["optim"])
    assert _same(load_file(whole / "model.safetensors"), load_file(broken / "model.safetensors"))
    # the metrics of the resumed run hold each step once
    train_steps = [json.loads(l)["step"] for l in (broken / "metrics.jsonl").read_text().splitlines()
                   if json.loads(l)["split"] == "train"]
    assert train_steps == sorted(set(train_steps))


def test_run_directory_records(corpus, tmp_path):
    s = _train(corpus, tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.json", "vocab.json", "checkpoint.safetensors", "model.safetensors",
                 "metrics.jsonl", "loss.png", "summary.json"):
        assert (run / name).is_file(), name
    recs = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in recs if r["split"] == "valid"]
    assert len(valid) == 2                                # one validation per epoch
    best = min(valid, key=lambda r: r["loss"])
    assert s["best_step"] == best["step"] and s["valid"]["loss"] == pytest.approx(best["loss"])
    assert {"loss", "perplexity", "bits_per_char", "tokens_per_s", "lr", "rss_mib"} <= set(recs[0])
    assert recs[0]["rss_mib"] is None or 10 < recs[0]["rss_mib"] < 1e5
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["hidden_size"] == 24 and cfg["train"]["tbptt"] == [20, 30]
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mask = os.umask(0)
    os.umask(mask)
    for f in run.iterdir():                               # as open(path, "w") would make them
        if f.is_file():
            assert f.stat().st_mode & 0o777 == 0o666 & ~mask, f.name


@pytest.mark.slow
def test_training_lowers_the_loss(corpus, tmp_path):
    s = _train(corpus, tmp_path / "run", epochs=4, dropout=0.0, lr=1e-2)
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])["loss"]
    assert s["valid"]["loss"] < 0.6 * first


def test_step_limit(corpus, tmp_path):
    s = _train(corpus, tmp_path / "a", max_steps=9, epochs=0)
    assert s["steps"] == 9 and s["stop_reason"] == "max_steps"


def test_threads_hold_for_the_run_alone(corpus, tmp_path, monkeypatch):
    """``threads`` sets torch's CPU threads for the updates, and the caller's count is back after
    the run (a notebook that trains once keeps its threads)."""
    from rnnlab.training.trainer import Trainer
    seen, update = [], Trainer._update

    def counting(self, *args):
        seen.append(torch.get_num_threads())
        return update(self, *args)
    monkeypatch.setattr(Trainer, "_update", counting)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        _train(corpus, tmp_path / "a", max_steps=2, epochs=0, threads=1)
        assert seen == [1, 1] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


class ScriptedTask:
    """A task whose validation losses are given in advance, to test the trainer's bookkeeping."""

    def __init__(self, valid_losses):
        self.valid_losses = list(valid_losses)
        self.x = torch.randn(8, 3)

    def num_batches(self, epoch):
        return 4

    def start_epoch(self, epoch):
        pass

    def train_step(self, model, epoch, i):
        loss = model(self.x).pow(2).sum()
        return loss, loss.detach(), 8

    def evaluate(self, model, split):
        if split != "valid":
            return None
        return {"loss": self.valid_losses.pop(0) if self.valid_losses else 9.0}

    def metrics(self, loss_sum, count):
        return {"loss": loss_sum / count}

    def carry(self):
        return {}

    def load_carry(self, tensors):
        pass


def test_early_stopping_and_best_checkpoint(tmp_path):
    from rnnlab.training.config import TrainConfig
    from rnnlab.training.trainer import Trainer
    model = torch.nn.Linear(3, 2)
    cfg = TrainConfig(epochs=100, validate_every=3, early_stopping=2, progress=False)
    trainer = Trainer(model, ScriptedTask([5.0, 4.0, 4.5, 3.9, 4.2, 4.1, 1.0]), cfg, tmp_path,
                      say=lambda s: None)
    kept = {}
    real_save = trainer.task.evaluate

    def evaluate(m, split):
        r = real_save(m, split)
        kept[trainer.state["step"]] = {k: v.clone() for k, v in m.state_dict().items()}
        return r
    trainer.task.evaluate = evaluate
    s = trainer.fit()
    assert s["stop_reason"] == "early stopping"
    assert s["steps"] == 18 and s["best_step"] == 12           # 3.9 at the 4th validation
    best = load_file(tmp_path / "model.safetensors")
    assert all(torch.equal(best[f"model/{k}"], v) for k, v in kept[12].items())


def test_existing_run_directory_is_refused(corpus, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="already exists"):
        _train(corpus, out)
    assert (out / "keep.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_resume_refuses_new_settings(corpus, tmp_path):
    _train(corpus, tmp_path / "run", max_steps=3, epochs=0)
    with pytest.raises(ConfigError, match="hidden_size"):
        rnnlab.train(resume=str(tmp_path / "run"), hidden_size=32)


def test_resuming_a_cosine_run_with_new_limits_says_the_span_moved(corpus, tmp_path):
    run = tmp_path / "run"
    _train(corpus, run, max_steps=4, epochs=0, schedule="cosine")
    said = []
    rnnlab.train(resume=str(run), max_steps=4, say=said.append)          # limits unchanged
    assert not any("cosine" in s for s in said)
    rnnlab.train(resume=str(run), max_steps=8, say=said.append)
    assert any("spans 8 updates (it spanned 4" in s for s in said)
    _, meta = _final(run)
    assert meta["trainer"]["step"] == 8 and meta["trainer"]["schedule"]["total"] == 8


def test_step_decay_is_zarembas():
    """lr of epoch i = lr * factor ** max(i + 1 - decay_start, 0)."""
    s = LRSchedule("step", 1.0, decay_start=4, decay_factor=0.5)
    seen = []
    for epoch in range(8):
        seen.append(s.lr(0))
        s.end_epoch(epoch)
    assert seen == [1.0 * 0.5 ** max(i + 1 - 4, 0) for i in range(8)]


def test_cosine_and_plateau():
    c = LRSchedule("cosine", 1.0, total_steps=10, min_lr=0.1)
    assert c.lr(0) == 1.0 and c.lr(10) == pytest.approx(0.1) and c.lr(5) == pytest.approx(0.55)
    p = LRSchedule("plateau", 1.0, decay_factor=0.1, patience=1)
    for loss in (3.0, 2.0, 2.5, 2.6, 2.7):
        p.validated(loss)
    assert p.lr(0) == pytest.approx(0.1)                 # two validations without improvement
    q = LRSchedule("plateau", 1.0)
    q.load_state_dict(p.state_dict())
    assert q.lr(0) == p.lr(0) and q.best == 2.0


def test_cosine_spans_the_time_budget():
    """Under max_time the cosine's progress is the larger of updates / T and elapsed / max_time."""
    c = LRSchedule("cosine", 1.0, total_steps=1000, min_lr=0.1, max_time=10.0)
    assert c.lr(0) == 1.0 and c.lr(5, elapsed=10.0) == pytest.approx(0.1)  # the budget spent
    assert c.lr(100, elapsed=5.0) == pytest.approx(0.55)   # half the time, a tenth of the updates
    assert c.lr(500, elapsed=1.0) == pytest.approx(0.55)   # half the updates, a tenth of the time
    t = LRSchedule("cosine", 1.0, min_lr=0.1, max_time=10.0)  # a time limit only
    assert t.lr(50) == 1.0 and t.lr(50, elapsed=5.0) == pytest.approx(0.55)
    assert t.lr(50, elapsed=30.0) == pytest.approx(0.1)


class Crash(Exception):
    """A run dying mid-update, as a kill would (nothing saved after the last checkpoint)."""


@pytest.fixture
def fake_clock(monkeypatch):
    """The trainer's clock advanced by exactly one second per update and never otherwise, so that
    a time budget of N seconds is N updates. ``.updates``: the updates begun so far (all runs);
    ``.crash_at = k`` makes the k-th raise Crash."""
    from types import SimpleNamespace
    from rnnlab.tasks.language_modelling import LanguageModelling
    from rnnlab.training import trainer
    clock = SimpleNamespace(now=1000.0, updates=0, crash_at=0)
    train_step = LanguageModelling.train_step

    def timed_step(self, *args):
        clock.updates += 1
        if clock.updates == clock.crash_at:
            raise Crash
        clock.now += 1.0
        return train_step(self, *args)

    monkeypatch.setattr(LanguageModelling, "train_step", timed_step)
    monkeypatch.setattr(trainer, "clock", lambda: clock.now)
    return clock


BUDGET = dict(max_time=20.0, schedule="cosine", lr=2e-3, min_lr=1e-4, log_every=1)  # 2 epochs: 320 updates


def _train_lrs(run):
    return {r["step"]: r["lr"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if r["split"] == "train"}


def test_max_time_ends_the_cosine_schedule_at_its_floor(corpus, tmp_path, fake_clock):
    """A run that its time budget stops (20 s, here 20 updates, of 320 by its epochs) spends the
    cosine's whole span: update k (elapsed k - 1 s before it) at progress (k - 1) / 20."""
    s = _train(corpus, tmp_path / "run", **BUDGET)
    assert s["stop_reason"] == "max_time" and s["steps"] == 20 and s["train_seconds"] == 20.0
    lrs = _train_lrs(tmp_path / "run")
    assert sorted(lrs) == list(range(1, 21))
    for k, lr in lrs.items():
        assert lr == pytest.approx(1e-4 + 1.9e-3 * 0.5 * (1 + math.cos(math.pi * (k - 1) / 20)), rel=1e-12)
    assert lrs[20] < 1e-4 + 0.01 * 1.9e-3                  # near the floor (it was 0.00199 before)


def test_progress_bar_total_follows_the_time_budget(corpus, tmp_path, fake_clock, monkeypatch):
    """The bar counts to the updates that fit in the budget (20), not to the epochs' 320, and its
    time left is the budget's."""
    import tqdm
    shown = []

    class Bar(tqdm.tqdm):
        def set_postfix_str(self, s="", refresh=True):
            shown.append((self.n, self.total, s))
            super().set_postfix_str(s, refresh)

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    _train(corpus, tmp_path / "run", **{**BUDGET, "progress": True, "log_every": 5})
    assert [(n, total) for n, total, _ in shown] == [(5, 20), (10, 20), (15, 20), (20, 20)]
    assert shown[0][2].endswith("0:15 left")


def test_resume_continues_the_time_budget_schedule(corpus, tmp_path, fake_clock):
    """Elapsed training time is in the checkpoint: a run killed mid-budget and resumed sets the
    same rates and ends with the same bits as the uninterrupted one (under this exact clock)."""
    _train(corpus, tmp_path / "whole", **BUDGET)
    fake_clock.crash_at = fake_clock.updates + 13           # its last checkpoint: step 7
    with pytest.raises(Crash):
        _train(corpus, tmp_path / "broken", **BUDGET)
    _, meta = _final(tmp_path / "broken")
    assert meta["trainer"]["step"] == 7 and meta["trainer"]["elapsed"] == 7.0
    said = []
    s = rnnlab.train(resume=str(tmp_path / "broken"), say=said.append)
    assert s["stop_reason"] == "max_time" and s["steps"] == 20 and s["train_seconds"] == 20.0
    assert not any("cosine" in line for line in said)      # the same span: no notice
    assert _train_lrs(tmp_path / "broken") == _train_lrs(tmp_path / "whole")
    gw, _ = _final(tmp_path / "whole")
    gb, _ = _final(tmp_path / "broken")
    assert _same(gw["model"], gb["model"]) and _same(gw["optim"], gb["optim"])


def test_clipping_by_value_and_norm():
    w = torch.nn.Parameter(torch.zeros(4))
    w.grad = torch.tensor([3.0, -4.0, 0.5, 0.0])
    clip_gradients([w], clip_value=1.0, clip_norm=None)
    assert w.grad.tolist() == [1.0, -1.0, 0.5, 0.0]
    w.grad = torch.tensor([3.0, -4.0, 0.0, 0.0])
    norm = clip_gradients([w], clip_value=None, clip_norm=1.0)
    assert norm == pytest.approx(5.0)
    torch.testing.assert_close(w.grad, torch.tensor([0.6, -0.8, 0.0, 0.0]), rtol=1e-5, atol=1e-6)


class PoisonedTask(ScriptedTask):
    """Non-finite losses at the given updates (0-based)."""

    def __init__(self, bad):
        super().__init__([])
        self.bad, self.calls = set(bad), 0

    def train_step(self, model, epoch, i):
        loss, value, n = super().train_step(model, epoch, i)
        self.calls += 1
        if self.calls - 1 in self.bad:
            loss = loss * float("nan")
        return loss, loss.detach(), n


def test_nonfinite_updates_are_skipped_then_stop(tmp_path):
    from rnnlab.training.config import TrainConfig
    from rnnlab.training.trainer import Trainer, TrainingStopped
    model = torch.nn.Linear(3, 2)
    cfg = TrainConfig(epochs=1, max_nonfinite=3, progress=False, optimizer="sgd", lr=0.1)
    trainer = Trainer(model, PoisonedTask({1}), cfg, None, say=lambda s: None)
    before = [p.clone() for p in model.parameters()]
    out = trainer._update(0, 0)
    after_first = [p.clone() for p in model.parameters()]
    assert out is not None and not all(torch.equal(a, b) for a, b in zip(before, after_first))
    assert trainer._update(0, 1) is None                       # skipped: nothing changed
    assert all(torch.equal(a, b) for a, b in zip(after_first, model.parameters()))
    assert trainer.state["lr_scale"] == 0.5 and trainer.state["nonfinite_total"] == 1
    trainer._update(0, 2)
    assert trainer.state["nonfinite_in_row"] == 0

    model = torch.nn.Linear(3, 2)
    trainer = Trainer(model, PoisonedTask({2, 3, 4}), TrainConfig(epochs=5, max_nonfinite=3,
                      progress=False, checkpoint_every=1), tmp_path, say=lambda s: None)
    with pytest.raises(TrainingStopped, match="3 updates in a row"):
        trainer.fit()
    groups, meta = read_checkpoint(tmp_path / "checkpoint.safetensors")
    assert meta["trainer"]["step"] == 4                        # the checkpoint of the last good state
    assert all(torch.isfinite(t).all() for t in groups["model"].values())


def test_weight_average_follows_its_equation():
    """theta_bar_t = d_t theta_bar_{t-1} + (1 - d_t) theta_t with d_t = min(d, (1+t)/(10+t))."""
    from rnnlab.training.averaging import WeightAverage, average_decay
    model = torch.nn.Linear(3, 2).double()
    avg = WeightAverage(model, 0.9)
    expected = [p.detach().clone() for p in model.parameters()]
    for step in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        avg.update(step)
        d = average_decay(0.9, step)
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, model.parameters())]
    assert average_decay(0.9, 0) == pytest.approx(0.1) and average_decay(0.9, 200) == 0.9
    for s, e in zip(avg.shadow, expected):
        torch.testing.assert_close(s, e, rtol=1e-12, atol=1e-12)
    own = [p.detach().clone() for p in model.parameters()]
    with avg.applied():
        assert all(torch.equal(p, e) for p, e in zip(model.parameters(), avg.shadow))
    assert all(torch.equal(p, o) for p, o in zip(model.parameters(), own))


@pytest.mark.slow
def test_ema_run_keeps_the_average_and_resumes_exactly(corpus, tmp_path):
    """With --ema the best weights are the average, the checkpoint holds it, and a run stopped
    and resumed ends exactly as an uninterrupted one."""
    kw = dict(ema=0.9, epochs=0, validate_every=8, checkpoint_every=2, schedule="none")
    _train(corpus, tmp_path / "whole", max_steps=8, **kw)
    _train(corpus, tmp_path / "broken", max_steps=5, **kw)
    rnnlab.train(resume=str(tmp_path / "broken"), max_steps=8, say=lambda s: None)
    gw, _ = _final(tmp_path / "whole")
    gb, _ = _final(tmp_path / "broken")
    assert _same(gw["model"], gb["model"]) and _same(gw["average"], gb["average"])
    assert not _same(gw["model"], {k: gw["average"][k] for k in gw["model"]})   # the average differs
    best = load_file(str(tmp_path / "whole" / "model.safetensors"))
    assert json.loads((tmp_path / "whole" / "summary.json").read_text())["best_step"] == 8
    assert all(torch.equal(best[f"model/{k}"], v) for k, v in gw["average"].items())  # kept: the average
    with pytest.raises(ConfigError, match="ema must lie in"):
        _train(corpus, tmp_path / "bad", ema=1.0)


def test_target_loss_stops_at_the_first_validation_that_reaches_it(tmp_path):
    from rnnlab.training.config import TrainConfig
    from rnnlab.training.trainer import Trainer
    cfg = TrainConfig(epochs=100, validate_every=3, target_loss=3.95, progress=False)
    trainer = Trainer(torch.nn.Linear(3, 2), ScriptedTask([5.0, 4.0, 4.5, 3.9, 4.2, 1.0]), cfg, tmp_path,
                      say=lambda s: None)
    s = trainer.fit()
    assert s["stop_reason"] == "target_loss" and s["steps"] == 12 and s["best_step"] == 12
    with pytest.raises(ConfigError, match="target_loss"):
        TrainConfig(target_loss=-1.0).check()


def test_warnings_during_training_print_above_the_progress_bar(monkeypatch):
    """A warning of rnnlab's while the bar is drawn (the compiled engine's background build, say)
    is printed above it, not on the bar's line; where the program has a handler of its own, that
    handler prints it and nothing is added."""
    import logging
    from rnnlab.training import trainer as trainer_module
    above = []
    monkeypatch.setattr(trainer_module, "say_above_bar", above.append)
    logger = logging.getLogger("rnnlab")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    with trainer_module.logs_above_bar():
        logger.warning("rnnlab: building")
        logger.info("rnnlab: not shown")
    assert above == ["rnnlab: building"] and logger.handlers == []
    own = logging.Handler()
    monkeypatch.setattr(logging.getLogger(), "handlers", [own])
    with trainer_module.logs_above_bar():
        assert logger.handlers == []
