"""Fuzzing the readers of the language-model run: random bytes and random corruptions of valid
files may only end in rnnlab's documented errors (RnnlabError), never another exception."""
import shutil

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fuzzing import EDITS, corrupt

import rnnlab
from rnnlab.api import read_toml
from rnnlab.data import Vocabulary
from rnnlab.data.corpus import read_text
from rnnlab.errors import RnnlabError
from rnnlab.training.checkpoint import read_checkpoint
from rnnlab.training.run_directory import read_config

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    corpus = root / "corpus.txt"
    corpus.write_text("".join(f"x = {i}\n" for i in range(400)))
    out = root / "run"
    rnnlab.train(data=str(corpus), out=str(out), hidden_size=8, embed_size=4, batch_size=2,
                 tbptt=8, max_steps=3, epochs=0, progress=False, sample_length=0, say=lambda s: None)
    return out


def _only_documented_errors(read, path):
    try:
        read(path)
    except RnnlabError:
        pass


READERS = {
    "model.safetensors": read_checkpoint,
    "checkpoint.safetensors": read_checkpoint,
    "vocab.json": Vocabulary.load,
    "config.json": lambda p: read_config(p.parent),
}


@pytest.mark.parametrize("name", sorted(READERS))
@FUZZ
@given(edits=EDITS)
def test_corrupted_run_files(run, tmp_path_factory, name, edits):
    work = tmp_path_factory.mktemp("case") / "run"
    shutil.copytree(run, work)
    (work / name).write_bytes(corrupt((run / name).read_bytes(), edits))
    _only_documented_errors(READERS[name], work / name)


@pytest.mark.parametrize("name", sorted(READERS))
@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_as_run_files(run, tmp_path_factory, name, data):
    work = tmp_path_factory.mktemp("case") / "run"
    shutil.copytree(run, work)
    (work / name).write_bytes(data)
    _only_documented_errors(READERS[name], work / name)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_as_text_and_toml(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("case") / "f"
    p.write_bytes(data)
    _only_documented_errors(read_text, p)
    _only_documented_errors(read_toml, p)


@FUZZ
@given(edits=EDITS)
def test_corrupted_runs_sample_and_evaluate(run, tmp_path_factory, edits):
    """The commands on a run with a corrupted weights file: a documented error or a result."""
    work = tmp_path_factory.mktemp("case") / "run"
    shutil.copytree(run, work)
    (work / "model.safetensors").write_bytes(corrupt((run / "model.safetensors").read_bytes(), edits))
    _only_documented_errors(lambda p: rnnlab.sample(str(p), length=5, seed=0), work)


def test_non_finite_weights_are_refused(run, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file
    work = tmp_path / "run"
    shutil.copytree(run, work)
    meta = {"format": "rnnlab-weights", "format_version": "1"}
    tensors = load_file(work / "model.safetensors")
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, work / "model.safetensors", metadata=meta)
    with pytest.raises(RnnlabError, match="NaN or infinite"):
        rnnlab.sample(str(work), length=5)
