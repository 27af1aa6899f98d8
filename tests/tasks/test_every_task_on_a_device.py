"""Every task follows the model's device (issue 19, point 1), checked without a GPU.

The model is put on a pretend second device (tests/device_audit.py: a torch function mode that
answers ``tensor.device`` with ``cpu:0`` for the model's tensors and for whatever is moved or made
there, and reports every call that mixes them with CPU tensors, as a GPU would refuse). Each task
then runs as it does on a GPU: a training step with its backward pass, validation, ``evaluate``
and ``predict`` of the saved run's recipe, and the sample after training where the task makes one;
no call may mix devices, and the task's batches must have been moved there (not found there).
"""
import math
from pathlib import Path

import pytest
import torch

from device_audit import DeviceAudit, describe
from rnnlab.tasks import TASKS, get_recipe
from rnnlab.tasks.recipe import LoadedRun
from test_every_option import TASKS as TINY
from test_every_option import files  # noqa: F401  (the fixture)

SETTINGS = {
    **TINY,
    "tree": dict(data="trees", hidden_size=5, embed_size=4, batch_size=2),
    "tree-chain": dict(data="trees", architecture="chain", bidirectional=True, hidden_size=5,
                       embed_size=4, batch_size=2),
    "expressions-tree": dict(architecture="treelstm", train_depth=1, test_depth=1, train_trees=8,
                             valid_trees=4, test_per_depth=4, hidden_size=5, embed_size=4,
                             batch_size=4),
    "sequence-copy-ntm": dict(model="ntm", min_length=1, max_length=2, train_sequences=8,
                              valid_sequences=4, test_sequences=4, hidden_size=5, batch_size=4),
    "lm-nplm": dict(data="text.txt", architecture="nplm", embed_size=4, hidden_size=6,
                    batch_size=2, tbptt=(6, 6), level="word"),
    "forecast-esn": dict(data="series.csv", targets=["load"], lookback=6, horizons=[2],
                         model="esn", reservoir_size=20),
    "word2vec": dict(data="text.txt", embed_size=4, window=2, negatives=2, subsample=0.0,
                     batch_size=8, min_count=1),
    "classify-speech": dict(data="recordings", hidden_size=5, layers=1, mels=8, hop_ms=20,
                            batch_size=4),
    "ctc-speech": dict(data="joined", join="1-3", train_sequences=8, valid_sequences=4,
                       test_sequences=4, hidden_size=5, mels=8, hop_ms=20, batch_size=4),
}

#: a line to predict on, per task (None: the task has no prediction)
PREDICT = {
    "lm": ["the cat"], "classify": ["good film"], "tag": ["the dog runs"],
    "translate": ["a man runs"], "caption": ["seed 3"], "music": [],
    "ctc": ["31"], "adding": ["0.5, 1, 0.2, 0, 0.3, 1, 0.1, 0, 0.9, 0, 0.4, 0"],
    "copy": ["1,2,3,9,9,9,9,9"], "bars": [";".join([",".join(["0"] * 8)] * 8)],
    "expressions": ["3 + 4 * 2"], "sequence-copy": ["10110010 01100001"],
    "tree": ["(3 (2 a) (3 good))", "a good fun film"], "word2vec": ["cat"],
}
OPTIONS = {"ctc": {"render": True, "beam": 2}, "music": {"output": ""}, "translate": {"beam_size": 2},
           "caption": {"beam_size": 2}, "lm": {"length": 5, "beam_size": 0}}


def task_of(case: str) -> str:
    return next(name for name in sorted(TASKS, key=len, reverse=True) if case.startswith(name))


@pytest.fixture(scope="module")
def data_root(files):  # noqa: F811  (every file-reading task's files, sentiment trees too)
    from test_speech import joined_folder, spoken_folder
    if not (files / "recordings").exists():
        spoken_folder(files / "recordings", speakers=("a",), count=12)
        joined_folder(files / "joined")
    return files


def build(case: str, root, tmp_path):
    """(recipe, trainer task, model, loaded run) of a tiny configuration of ``case``."""
    recipe = get_recipe(task_of(case))
    settings = dict(SETTINGS[case], threads=1)
    if "data" in settings:
        settings["data"] = str(root / settings["data"])
    data, mcfg, train = recipe.configs(settings, "test")
    job = recipe.prepare(data, train)
    torch.manual_seed(0)
    model = recipe.build_model(job.assets, mcfg)
    run = LoadedRun(tmp_path, recipe, data, mcfg, train, job.assets, model)
    return recipe, job, model, run


def run_everything(case, recipe, job, model, run):
    """What a run does on a device: a training step and its backward pass, validation, the saved
    run's evaluation and predictions, and the sample after training."""
    task = task_of(case)
    model.train()
    job.start_epoch(0)
    if job.num_batches(0):                       # none for a model fitted in closed form (ESN)
        objective, loss_sum, count = job.train_step(model, 0, 0)
        objective.backward()
        assert math.isfinite(float(objective))
    carried = job.carry()
    if carried:                                  # a resumed run's carried state is read onto the CPU
        job.load_carry({k: v.detach().cpu() for k, v in carried.items()})
        job.train_step(model, 0, 1 % job.num_batches(0))[0].backward()
    model.eval()
    job.evaluate(model, "valid")
    recipe.evaluate(run, None, recipe.check_options(OPTIONS.get(task, {}), "evaluate"))
    lines = PREDICT.get(task)
    if case.endswith("-speech"):               # a recording of the run's folder, by its path
        lines = [str(sorted(Path(run.data.data).glob("*.wav"))[0])]
    if lines is not None:
        list(recipe.predict(run, lines, recipe.check_options(OPTIONS.get(task, {}), "predict")))
    if task == "lm":
        summary = {}
        recipe.after_training(run, job, summary, sample_length=5)
        assert len(summary["sample"]) > 0


@pytest.mark.parametrize("case", list(SETTINGS))
def test_every_task_runs_where_its_model_is(case, data_root, tmp_path):
    recipe, job, model, run = build(case, data_root, tmp_path)
    audit = DeviceAudit(model)
    with audit:
        run_everything(case, recipe, job, model, run)
    assert not audit.findings, f"{case}: tensors left on the CPU:\n{describe(audit.findings)}"
    assert audit.moved > 0, f"{case}: no batch was moved to the model's device"


def test_every_task_is_covered():
    assert {task_of(case) for case in SETTINGS} == set(TASKS)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_takes_device_cuda_and_stops_in_one_line_without_it(task, data_root, tmp_path, capsys):
    """No task is kept on the CPU any more: ``--device cuda`` is refused only for want of CUDA,
    with the one line every task shares, before anything is written."""
    from rnnlab.cli import main
    out = tmp_path / "run"
    assert main(["train", "--task", task, "--device", "cuda", "--out", str(out), "--max-steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "asks for a CUDA GPU" in err[0] and "--device cpu or auto" in err[0], err
    assert not out.exists()


def test_the_audit_sees_a_batch_left_on_the_cpu():
    """The check itself: a CPU tensor mixed with the model's, or a model's output compared with a
    CPU target, is a finding; the same computation with the batch moved is none."""
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    with DeviceAudit(model) as audit:
        assert next(model.parameters()).device == torch.device("cpu", 0)
        logits = model(x)
        torch.nn.functional.cross_entropy(logits, y)
    assert len(audit.findings) == 2 and "linear" in audit.findings[0]
    with DeviceAudit(model) as audit:
        device = next(model.parameters()).device
        logits = model(x.to(device))
        loss = torch.nn.functional.cross_entropy(logits, y.to(device))
        int((logits.argmax(-1) == y.to(device)).sum())
        assert loss.device == device and x.device == torch.device("cpu")
        logits.cpu() + x[:, :2]                     # back on the CPU: mixes with CPU tensors
        z = torch.zeros(4, device=device)
        z + logits[:, 0]
        logits[torch.tensor([0, 1])]                # a CPU index of a device tensor
    assert audit.findings == [] and audit.moved == 3
    with DeviceAudit(model) as audit:
        torch.zeros(4, device=torch.device("cpu", 0)) + torch.ones(4)
        x[torch.tensor([0]).to(next(model.parameters()).device)]
    assert len(audit.findings) == 2
