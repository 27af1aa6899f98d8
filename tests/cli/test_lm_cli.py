"""The language-model commands: rnnlab train / sample / evaluate, their files and their errors."""
import json

import pytest

import rnnlab
from rnnlab.cli import main

TEXT = "".join(f"class C{i}:\n    value = {i * 3}\n\n" for i in range(300))
FAST = ["--hidden-size", "16", "--embed-size", "8", "--batch-size", "4", "--tbptt", "16",
        "--max-steps", "12", "--epochs", "0", "--no-progress", "--sample-length", "30"]


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT)
    return p


@pytest.fixture
def run(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(corpus), "--out", str(out), *FAST]) == 0
    capsys.readouterr()
    return out


def _error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("rnnlab: error: "), err
    return err[0]


def test_train_prints_sample_losses_and_run(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(corpus), "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    assert "sample (temperature 0.8):" in text and "test loss" in text and str(out) in text
    assert json.loads((out / "summary.json").read_text())["steps"] == 12
    assert len((out / "sample.txt").read_text()) == 30


def test_sample_is_reproducible_and_greedy_is_deterministic(run, capsys):
    outs = []
    for argv in (["--seed", "1"], ["--seed", "1"], ["--greedy"], ["--temperature", "0"]):
        assert main(["sample", str(run), "--prime", "class", "--length", "25", *argv]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] and outs[2] == outs[3] and outs[0].startswith("class")
    assert outs[2] == rnnlab.sample(str(run), prime="class", length=25, temperature=0) + "\n"


def test_sample_stop_samples_beam_and_unk(run, capsys):
    def out(*argv):
        assert main(["sample", str(run), "--prime", "class", "--length", "60", *argv]) == 0
        return capsys.readouterr().out
    full = out("--seed", "4")
    assert out("--seed", "4", "--stop", ":") == full[:full.index(":", 5) + 1] + "\n"
    assert out("--seed", "4", "--stop").count("\n") <= 2            # at the first newline
    assert out("--beam-size", "1") == out("--greedy")
    three = out("--seed", "4", "--num-samples", "3", "--length", "20")
    heads = [line for line in three.splitlines() if line.startswith("--- sample ")]
    assert heads == [f"--- sample {i} of 3 ---" for i in (1, 2, 3)]
    texts = rnnlab.sample(str(run), prime="class", length=20, seed=4, num_samples=3)
    assert three == "\n".join(f"--- sample {i} of 3 ---\n{t}\n" for i, t in enumerate(texts, 1))
    assert texts[0] == full[:25] and len(set(texts)) == 3
    assert "\ufffd" not in out("--temperature", "3", "--seed", "1", "--length", "300")
    beam = out("--beam-size", "3", "--stop", "\\n")
    assert beam.startswith("class") and beam.endswith("\n")


def test_evaluate_json(run, corpus, capsys):
    assert main(["evaluate", str(run), "--json"]) == 0
    own = json.loads(capsys.readouterr().out)
    assert {"loss", "perplexity", "bits_per_char"} <= set(own)
    summary = json.loads((run / "summary.json").read_text())
    assert own["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-6)
    assert main(["evaluate", str(run), "--data", str(corpus), "--json"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["tokens"] == len(TEXT) - 1 and other["perplexity"] == pytest.approx(2 ** other["bits_per_char"])


def test_toml_config_and_flags_win(corpus, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[model]\nhidden_size = 12\ncell = "gru"\n[train]\nlr = 0.01\n')
    out = tmp_path / "run"
    assert main(["train", "--data", str(corpus), "--out", str(out), "--config", str(cfg), *FAST]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["hidden_size"] == 16 and saved["model"]["cell"] == "gru"
    assert saved["train"]["lr"] == 0.01


def test_toml_config_names_the_task_and_a_mistake_names_the_file(tmp_path, capsys):
    """``task`` in the file picks the task (it was refused as an unknown setting), and an unknown
    name in the file is told by the file's name."""
    cfg = tmp_path / "adding.toml"
    cfg.write_text('task = "adding"\n[train]\nmax_steps = 2\nprogress = false\n')
    assert main(["train", "--out", str(tmp_path / "run"), "--config", str(cfg)]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["task"] == "adding"
    capsys.readouterr()
    cfg.write_text('task = "adding"\nhiden_size = 8\n')
    assert main(["train", "--out", str(tmp_path / "other"), "--config", str(cfg)]) == 2
    assert f"{cfg}: unknown setting 'hiden_size' (did you mean 'hidden_size'?)" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_word_level_run(tmp_path, capsys):
    data = tmp_path / "ptb"
    data.mkdir()
    (data / "ptb.train.txt").write_text(" the cat sat on the mat \n a dog sat \n" * 80)
    (data / "ptb.valid.txt").write_text(" the dog sat \n")
    (data / "ptb.test.txt").write_text(" a cat sat on a mat \n")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--level", "word", "--out", str(out), *FAST]) == 0
    capsys.readouterr()
    vocab = json.loads((out / "vocab.json").read_text())
    assert vocab["level"] == "word" and vocab["symbols"][:2] == ["<unk>", "<eos>"]
    assert main(["evaluate", str(out), "--json"]) == 0
    assert "bits_per_char" not in json.loads(capsys.readouterr().out)


def test_existing_run_is_refused_and_kept(run, corpus, capsys):
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    msg = _error(capsys, ["train", "--data", str(corpus), "--out", str(run), *FAST])
    assert "already exists" in msg
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.parametrize("argv, match", [
    (["train", "--data", "/no/such/file.txt"], "nothing is there"),
    (["train", "--tbptt", "8", "4"], "k1 <= k2"),
    (["train", "--tbptt", "x"], "--tbptt takes"),
    (["train", "--cell", "lstn"], "did you mean 'lstm'"),
    (["train", "--hidden-size", "0"], "hidden_size must be"),
    (["train", "--lr", "-1"], "lr must be"),
    (["train", "--lr", "nan"], "lr must be"),
    (["train", "--cell-option", "peephole"], "KEY=VALUE"),
    (["sample", "/no/such/run"], "expected a run directory"),
    (["evaluate", "/no/such/run", "--json"], "expected a run directory"),
])
def test_bad_input_is_one_line(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert match in _error(capsys, argv)
    assert not (tmp_path / "runs").exists()               # nothing written


def test_resume_refuses_other_settings(run, capsys):
    assert "only" in _error(capsys, ["train", "--resume", str(run), "--hidden-size", "32"])


def test_corrupt_weights_are_refused(run, capsys):
    (run / "model.safetensors").write_bytes(b"\x00" * 10)
    assert "not a readable rnnlab checkpoint" in _error(capsys, ["sample", str(run)])


def test_weights_of_another_model_are_refused(run, corpus, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["train", "--data", str(corpus), "--out", str(other), *FAST, "--hidden-size", "20"]) == 0
    capsys.readouterr()
    (run / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    assert "weights of another model" in _error(capsys, ["evaluate", str(run)])


def test_tensorboard_scalars(corpus, tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="the tensorboard package (rnnlab[tensorboard]) is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / "run"
    argv = ["train", "--data", str(corpus), "--out", str(out), *FAST, "--max-steps", "60",
            "--validate-every", "25", "--tensorboard"]
    assert main(argv) == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/tokens_per_s", "valid/loss", "valid/perplexity"} <= tags
    recs = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    valid = [(r["step"], r["loss"]) for r in recs if r["split"] == "valid"]
    assert [(e.step, pytest.approx(e.value, rel=1e-6)) for e in events.Scalars("valid/loss")] == valid


def test_tensorboard_missing_is_one_line(corpus, tmp_path, capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # as if not installed
    out = tmp_path / "run"
    msg = _error(capsys, ["train", "--data", str(corpus), "--out", str(out), *FAST, "--tensorboard"])
    assert "pip install 'rnnlab[tensorboard]'" in msg and not out.exists()


def test_a_closed_pipe_is_not_an_error(monkeypatch, capsys):
    """rnnlab tasks lm | head -1: the command stops quietly when its reader has gone away."""
    import os
    import sys
    read_end, write_end = os.pipe()
    os.close(read_end)                                    # the reader is gone before the first line
    with os.fdopen(write_end, "w", buffering=1) as out:
        monkeypatch.setattr(sys, "stdout", out)
        assert main(["tasks", "lm"]) == 0
        monkeypatch.undo()
    assert "rror" not in capsys.readouterr().err
