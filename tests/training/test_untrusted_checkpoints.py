"""A checkpoint carrying a pickle payload is refused without being executed: the payload below
would create a folder if any loader unpickled it; every command that reads a run refuses the file
and the folder never appears."""
import os
import pickle

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.errors import CheckpointError

TEXT = "".join(f"line {i}: the quick brown fox {i % 9}\n" for i in range(300))


class Payload:
    """Unpickling this calls os.mkdir(marker)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("untrusted")
    (base / "c.txt").write_text(TEXT)
    rnnlab.train(data=str(base / "c.txt"), out=str(base / "run"), hidden_size=8, embed_size=4,
                 batch_size=2, tbptt=(10, 10), max_steps=3, epochs=0, sample_length=0,
                 progress=False, threads=1, say=lambda s: None)
    return base / "run"


def _payloads(marker):
    """A plain pickle and a torch.save archive, each of which runs the payload when loaded."""
    plain = pickle.dumps({"weight": Payload(marker)})
    zipped_path = marker.parent / "zipped.pt"
    torch.save({"weight": Payload(marker)}, zipped_path)
    return {"pickle": plain, "torch.save": zipped_path.read_bytes()}


def test_the_payload_is_live(tmp_path):
    """The test's payload really would act: unpickling it creates the folder."""
    marker = tmp_path / "executed"
    pickle.loads(_payloads(marker)["pickle"])
    assert marker.is_dir()


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
@pytest.mark.parametrize("target, command", [
    ("model.safetensors", ["evaluate", "{run}", "--json"]),
    ("model.safetensors", ["sample", "{run}", "--length", "5"]),
    ("model.safetensors", ["predict", "{run}", "--input", "{input}"]),
    ("checkpoint.safetensors", ["train", "--resume", "{run}"]),
])
def test_pickle_checkpoints_are_refused_unexecuted(run, tmp_path, capsys, kind, target, command):
    import shutil
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    marker = tmp_path / "executed"
    (copy / target).write_bytes(_payloads(marker)[kind])
    (tmp_path / "in.txt").write_text("the quick\n")
    before = {p: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    args = [a.format(run=copy, input=tmp_path / "in.txt") for a in command]
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "Traceback" not in err[0]
    assert "pickle" in err[0] or "torch.save" in err[0], err[0]
    assert not marker.exists(), "the payload ran"
    assert {p: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before


def test_the_library_refuses_it_too(run, tmp_path):
    from rnnlab.training.checkpoint import read_checkpoint
    marker = tmp_path / "executed"
    for kind, data in _payloads(marker).items():
        (tmp_path / "ck.safetensors").write_bytes(data)
        with pytest.raises(CheckpointError, match="never loads|pickle|torch.save"):
            read_checkpoint(tmp_path / "ck.safetensors")
    assert not marker.exists()
