"""``--task adding`` and ``--task copy``: they learn past their baselines, round-trip through the
command line, and the same seed gives the same data and the same result."""
import json

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.data.long_memory import adding_baseline_mse, adding_problem, copy_baseline_loss
from rnnlab.errors import ConfigError
from rnnlab.tasks.long_memory import (AddingDataConfig, LongMemoryDataConfig, adding_examples,
                                      copy_examples, hochreiter_baseline_mse, split_generator)

ADDING = dict(task="adding", length=10, train_sequences=2000, valid_sequences=200, test_sequences=200,
              hidden_size=32, batch_size=20, lr=1e-2, epochs=3, threads=1, progress=False)
COPY = dict(task="copy", length=5, train_sequences=1000, valid_sequences=100, test_sequences=200,
            hidden_size=64, batch_size=20, lr=1e-2, epochs=6, threads=1, progress=False)


def test_lstm_learns_the_adding_problem(tmp_path):
    s = rnnlab.train(out=str(tmp_path / "run"), **ADDING)            # 300 updates
    assert s["test"]["baseline_mse"] == pytest.approx(1 / 6)
    assert s["test"]["mse"] < 0.1 * adding_baseline_mse()


def test_lstm_beats_the_copy_baseline(tmp_path):
    s = rnnlab.train(out=str(tmp_path / "run"), **COPY)
    assert s["test"]["baseline_loss"] == pytest.approx(copy_baseline_loss(5))
    assert s["test"]["loss"] < 0.9 * copy_baseline_loss(5)
    assert s["test"]["accuracy"] > 0.2                               # chance: 1/8


def test_train_evaluate_predict_on_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--task", "copy", "--length", "5", "--train-sequences", "100",
                 "--valid-sequences", "20", "--test-sequences", "30", "--hidden-size", "8",
                 "--epochs", "1", "--threads", "1", "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"loss", "baseline_loss", "accuracy", "sequences"}
    assert result["sequences"] == 30 and result["baseline_loss"] == pytest.approx(copy_baseline_loss(5))
    (tmp_path / "in.txt").write_text("1,2,3,4,5,6,7,8,1,2,0,0,0,0,9,0,0,0,0,0,0,0,0,0,0\n\n")
    assert main(["predict", str(run), "--input", str(tmp_path / "in.txt")]) == 0
    out = capsys.readouterr().out.split("\n")
    assert len(out[0].split(",")) == 25 and all(0 <= int(k) <= 8 for k in out[0].split(","))
    assert out[1] == ""
    (tmp_path / "bad.txt").write_text("1,2,x\n")
    assert main(["predict", str(run), "--input", str(tmp_path / "bad.txt")]) == 2
    assert "line 1: expected comma-separated symbols 0..9" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--data", str(tmp_path / "in.txt")]) == 2
    assert "reads no --data" in capsys.readouterr().err


def test_adding_evaluates_and_predicts_hochreiter(tmp_path):
    s = rnnlab.train(out=str(tmp_path / "run"), **dict(ADDING, form="hochreiter", length=24,
                                                      train_sequences=100, epochs=1))
    assert set(s["test"]) == {"loss", "mse", "baseline_mse", "solved"}
    r = rnnlab.evaluate(tmp_path / "run")
    assert r["mse"] == pytest.approx(s["test"]["mse"], rel=1e-5) and r["sequences"] == 200
    assert r["baseline_mse"] == pytest.approx(1.9 / 48)
    got = rnnlab.predict(tmp_path / "run", ["0.5,1,0.25,-1,0.3,1,0.2,-1", ""])
    assert float(got[0]) == float(got[0]) and got[1] == ""


def test_hochreiter_baseline_is_the_targets_variance():
    _, _, y = adding_problem(20_000, 24, "hochreiter", torch.Generator().manual_seed(3))
    assert float(((y - 0.5) ** 2).mean()) == pytest.approx(hochreiter_baseline_mse(), rel=0.03)


def test_same_seed_same_data_and_result(tmp_path):
    data = AddingDataConfig(length=10, train_sequences=50)
    a, b = adding_examples(data, "train"), adding_examples(data, "train")
    assert all(torch.equal(x.x, y.x) and x.y == y.y for x, y in zip(a, b))
    other = adding_examples(AddingDataConfig(length=10, train_sequences=50, data_seed=1), "train")
    assert not torch.equal(a[0].x, other[0].x)
    test = adding_examples(data, "test")            # the splits are drawn from different seeds
    assert not torch.equal(a[0].x, test[0].x)
    more = adding_examples(AddingDataConfig(length=10, train_sequences=500), "test")
    assert torch.equal(test[0].x, more[0].x)        # a split does not depend on the others' sizes
    c = copy_examples(LongMemoryDataConfig(length=5, train_sequences=20), "valid")
    d = copy_examples(LongMemoryDataConfig(length=5, train_sequences=20), "valid")
    assert all(torch.equal(x.x, y.x) for x, y in zip(c, d)) and len(c) == 1000
    assert split_generator(0, "train").initial_seed() != split_generator(0, "valid").initial_seed()
    small = dict(ADDING, train_sequences=200, epochs=1)
    first = rnnlab.train(out=str(tmp_path / "a"), **small)
    second = rnnlab.train(out=str(tmp_path / "b"), **small)
    assert first["test"] == second["test"]
    third = rnnlab.train(out=str(tmp_path / "c"), **dict(small, data_seed=1))
    assert third["test"] != first["test"]


def test_tasks_are_listed_and_need_no_data(tmp_path, capsys):
    assert main(["tasks"]) == 0
    listed = capsys.readouterr().out
    assert "adding" in listed and "copy" in listed
    starts = {len(line) - len(line.split(None, 1)[1]) for line in listed.split("\n")[:-3]}  # (the tasks' lines)
    assert len(starts) == 1  # every description in one column, the longest name's included
    assert main(["tasks", "adding"]) == 0
    settings = capsys.readouterr().out
    assert "--form" in settings and "--train-sequences" in settings and "--inputs" not in settings
    with pytest.raises(ConfigError, match="read no --data"):
        rnnlab.train(task="copy", data="x.txt", out=str(tmp_path / "r"))
    with pytest.raises(ConfigError, match="form takes one of"):
        rnnlab.train(task="adding", form="modrn", out=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()
