"""Training on two processes with torchrun: the same loss curve as one process with the same global
batch, for a language model (streams split) and a classifier (examples split unevenly), and an
exact resume of a two-process run."""
import json
import os
import subprocess
import sys

import pytest
import torch

import rnnlab
from rnnlab.errors import ConfigError
from rnnlab.training.checkpoint import read_checkpoint

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(300))
SENTENCES = [("1", "a warm , funny and moving film"), ("0", "a dull and lifeless mess"),
             ("1", "smart , tender and beautifully acted"), ("0", "boring , slow and far too long"),
             ("1", "one of the best films of the year"), ("0", "a waste of a fine cast")]


def _torchrun(args, cwd):
    """``torchrun --nproc_per_node 2 -m rnnlab train ARGS``, one thread per process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "rnnlab", "train", *args, "--no-progress", "--threads", "1"]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _losses(run, split="train"):
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if r.get("split") == split and "loss" in r}


def _same_curve(a, b):
    assert a.keys() == b.keys() and len(a) >= 3
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-5, abs=1e-6), step


@pytest.mark.slow
def test_language_model_on_two_processes_matches_one_and_resumes(tmp_path):
    """B = 4 streams, 2 per process; stopped at update 30 and resumed to 60 under torchrun; the
    curve and the weights equal one process's uninterrupted 60 updates."""
    (tmp_path / "c.txt").write_text(TEXT)
    common = dict(hidden_size=24, embed_size=8, batch_size=4, tbptt=(20, 20), dropout=0.0, seed=3,
                  log_every=5, validate_every=15, checkpoint_every=10, epochs=0, sample_length=0,
                  schedule="none")  # a constant rate: the stop at 30 does not move a schedule
    one = tmp_path / "one"
    rnnlab.train(data=str(tmp_path / "c.txt"), out=str(one), max_steps=60, progress=False, threads=1,
                 say=lambda s: None, **common)
    flags = ["--data", str(tmp_path / "c.txt"), "--hidden-size", "24", "--embed-size", "8", "--batch-size", "4",
             "--tbptt", "20", "--dropout", "0", "--seed", "3", "--log-every", "5",
             "--validate-every", "15", "--checkpoint-every", "10", "--epochs", "0",
             "--sample-length", "0", "--schedule", "none"]
    _torchrun(flags + ["--max-steps", "30", "--out", "two"], tmp_path)
    two = tmp_path / "two"
    groups, meta = read_checkpoint(two / "checkpoint.safetensors")
    assert meta["trainer"]["step"] == 30 and meta["trainer"]["world_size"] == 2
    assert set(groups["rng"]) == {"torch.rank0", "torch.rank1"}
    assert {k.split("/")[0] for k in groups["carry"]} == {"rank0", "rank1"}  # each rank's streams
    with pytest.raises(ConfigError, match="resumes on as many"):
        rnnlab.train(resume=str(two), say=lambda s: None)  # one process cannot continue it
    _torchrun(["--resume", "two", "--max-steps", "60"], tmp_path)
    _same_curve(_losses(one), _losses(two))
    _same_curve(_losses(one, "valid"), _losses(two, "valid"))
    g1, _ = read_checkpoint(one / "checkpoint.safetensors")
    g2, _ = read_checkpoint(two / "checkpoint.safetensors")
    for name, w in g1["model"].items():
        torch.testing.assert_close(g2["model"][name], w, rtol=1e-4, atol=1e-6)
    assert not list(two.glob(".*.tmp"))


@pytest.mark.slow
def test_classifier_on_two_processes_matches_one(tmp_path):
    """Batches of 5 sentences split 2 + 3: the gradient is still the mean over all 5."""
    data = tmp_path / "sents"
    data.mkdir()
    for split, reps in (("train", 6), ("dev", 1), ("test", 1)):
        (data / f"stsa.binary.{split}").write_text(
            "".join(f"{y} {x}\n" for _ in range(reps) for y, x in SENTENCES))
    common = ["--task", "classify", "--data", str(data), "--hidden-size", "8", "--embed-size", "8",
              "--batch-size", "5", "--dropout", "0", "--epochs", "2", "--seed", "1",
              "--log-every", "1"]
    _torchrun(common + ["--out", "two"], tmp_path)
    rnnlab.train(task="classify", data=str(data), out=str(tmp_path / "one"), hidden_size=8,
                 embed_size=8, batch_size=5, dropout=0.0, epochs=2, seed=1, log_every=1,
                 progress=False, threads=1, say=lambda s: None)
    _same_curve(_losses(tmp_path / "one"), _losses(tmp_path / "two"))
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert s1["test"]["accuracy"] == s2["test"]["accuracy"]
    assert s2["steps"] == s1["steps"]
