"""Every option of the recurrent layer on every task with one (rnnlab.models.recurrent_options):
each accepted by a tiny run, its model built with the option, and the saved run reloaded with the
same layer configuration and the same outputs; ``rnnlab tasks NAME`` lists the options. The deep
RNN's step MLPs (``input_layers``, ``output_layers``): 0 layers is the model of before, weight for
weight; N layers add exactly their parameters; gradients reach them and they learn."""
import json
import math

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.layers import RecurrentLayer
from rnnlab.layers.step_mlp import StepMLP
from rnnlab.models.recurrent_options import describe, recurrent_option_names
from rnnlab.tasks import get_recipe
from rnnlab.tasks.recipe import load_run

QUIET = dict(max_steps=1, epochs=0, threads=1, progress=False, sample_length=0, say=lambda s: None)

#: a tiny configuration of every task with a recurrent layer (the file-reading tasks get files)
TASKS = {
    "lm": dict(data="text.txt", hidden_size=6, embed_size=4, batch_size=2, tbptt=(6, 6)),
    "classify": dict(data="sentences.txt", embed_size=4, hidden_size=5, min_count=1, batch_size=4),
    "tag": dict(data="tags.conllu", embed_size=4, hidden_size=5, char_embed_size=3,
                char_hidden_size=3, batch_size=2),
    "translate": dict(data="par", tokenized=False, min_count=1, embed_size=4, hidden_size=5,
                      batch_size=2),
    "caption": dict(train_scenes=8, valid_scenes=4, test_scenes=4, conv_layers=1, channels=2,
                    feature_size=4, embed_size=4, hidden_size=5, batch_size=4),
    "forecast": dict(data="series.csv", targets=["load"], lookback=6, horizons=[2], hidden_size=5,
                     batch_size=4),
    "music": dict(data="music.json", hidden_size=5, batch_size=2),
    "ctc": dict(train_sequences=8, valid_sequences=4, test_sequences=4, max_digits=2, hidden_size=5,
                batch_size=4),
    "adding": dict(length=6, train_sequences=8, valid_sequences=4, test_sequences=4, hidden_size=5,
                   batch_size=4),
    "copy": dict(length=3, train_sequences=8, valid_sequences=4, test_sequences=4, hidden_size=5,
                 batch_size=4),
    "bars": dict(architecture="raster", size=8, train_images=8, valid_images=4, test_images=4,
                 hidden_size=5, batch_size=4),
    "expressions": dict(architecture="chain", train_depth=1, test_depth=1, train_trees=8,
                        valid_trees=4, test_per_depth=4, hidden_size=5, embed_size=4, batch_size=4),
    "sequence-copy": dict(model="lstm", min_length=1, max_length=2, train_sequences=8,
                          valid_sequences=4, test_sequences=4, hidden_size=5, batch_size=4),
    "tree": dict(data="trees", architecture="chain", hidden_size=5, embed_size=4, batch_size=2),
}

#: sentiment trees, every node labelled (--task tree)
TREES = ["(3 (3 (2 a) (3 good)) (2 film))", "(1 (2 a) (1 (1 dull) (2 film)))",
         "(4 (4 great) (2 fun))", "(0 (0 (0 awful) (2 a)) (1 bore))"]

#: each option with a value, and the cells with an option of their own
OPTIONS = {
    "layer_norm": dict(layer_norm=True),
    "recurrent_dropout": dict(recurrent_dropout=0.3),
    "zoneout": dict(zoneout=0.2),
    "weight_drop": dict(weight_drop=0.3),
    "skip_steps": dict(skip_steps=2),
    "deep_rnn": dict(input_layers=1, output_layers=2, mlp_size=3),
    "gru": dict(cell="gru"),
    "rnn_relu": dict(cell="rnn", cell_options={"nonlinearity": "relu"}),
    "leaky": dict(cell="leaky"),
    "residual": dict(cell="residual"),
    "deep_transition": dict(cell="deep_transition", cell_options={"depth": 3}),
    "peephole": dict(cell_options={"peephole": "full"}),
    "cell_option_layer_norm": dict(cell_options={"layer_norm": True}),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "text.txt").write_text("the cat sat on the mat and the dog ran after it\n" * 8)
    (root / "sentences.txt").write_text("".join(f"{i % 2} {'good' if i % 2 else 'bad'} film\n"
                                                for i in range(20)))
    tokens = [f"{k}\t{w}\t{w}\t{t}\t_\t_\t0\tdep\t_\t_" for k, (w, t) in
              enumerate([("the", "DET"), ("dog", "NOUN"), ("runs", "VERB")], 1)]
    (root / "tags.conllu").write_text(("\n".join(tokens) + "\n\n") * 6)
    (root / "par").mkdir()
    for split in ("train", "val", "test"):
        (root / "par" / f"{split}.en").write_text("a man runs\ntwo dogs\n")
        (root / "par" / f"{split}.de").write_text("ein mann läuft\nzwei hunde\n")
    rows = "\n".join(f"d{t},{20 + 5 * math.sin(t / 3):.4f},{math.cos(t):.4f}" for t in range(60))
    (root / "series.csv").write_text("date,load,temp\n" + rows + "\n")
    (root / "trees").mkdir()
    for split, trees in (("train", TREES * 3), ("dev", TREES[:2]), ("test", TREES[2:])):
        (root / "trees" / f"{split}.txt").write_text("\n".join(trees) + "\n")
    (root / "music.json").write_text(json.dumps({"train": [[[60 + k % 3] for k in range(6)]] * 4,
                                                 "valid": [[[60], [62]]], "test": [[[61], [60]]]}))
    return root


def settings_of(task: str, option: str, root) -> dict:
    s = dict(TASKS[task])
    if "data" in s:
        s["data"] = str(root / s["data"])
    given = dict(OPTIONS[option])
    if task == "sequence-copy" and "cell" in given:     # its layer is named by ``model``
        given["model"] = given.pop("cell")
    return {**s, **given}


@pytest.mark.slow_cases
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("task", list(TASKS))
def test_every_option_on_every_task(task, option, files, tmp_path):
    settings = settings_of(task, option, files)
    torch.manual_seed(0)
    s = rnnlab.train(task=task, out=str(tmp_path / "run"), **QUIET, **settings)
    assert math.isfinite(s["train"]["loss"]) if "train" in s else True
    run = load_run(s["run_dir"])
    layers = [m for m in run.model.modules() if isinstance(m, RecurrentLayer)]
    assert layers, f"{task}: no recurrent layer"
    layer = layers[-1]
    given = OPTIONS[option]
    if "layer_norm" in given or given.get("cell_options", {}).get("layer_norm"):
        assert layer.cells[0].layer_norm is True
    for name in ("recurrent_dropout", "weight_drop"):
        if name in given:
            assert getattr(layer.regularization, name) == pytest.approx(given[name])
    if "zoneout" in given:
        assert all(z == pytest.approx(given["zoneout"]) for z in layer.regularization.zoneout)
    if "skip_steps" in given:
        assert layer.skip_steps == given["skip_steps"]
        assert any(n.startswith("weight_skip") for n, _ in layer.named_parameters())
    if "cell" in given:
        from rnnlab.layers import LAYERS
        assert isinstance(layer, LAYERS[given["cell"]])
    for k, v in given.get("cell_options", {}).items():
        assert layer.cell_options.get(k, getattr(layer.cells[0], k, None)) == v
    if "input_layers" in given:
        mlps = [m for m in run.model.modules() if isinstance(m, StepMLP) and m.num_layers]
        assert {m.num_layers for m in mlps} == {1, 2} and all(m.out_size == 3 for m in mlps)
    # the saved run: its config keeps the option, and a second load builds the same model
    config = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    for k, v in given.items():
        key = "model" if task == "sequence-copy" and k == "cell" else k
        assert config[key] == v
    again = load_run(s["run_dir"])
    assert describe(again.model) == describe(run.model)
    assert {k: v.shape for k, v in again.model.state_dict().items()} == \
        {k: v.shape for k, v in run.model.state_dict().items()}
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(),
                                                 run.model.state_dict().values()))


@pytest.mark.parametrize("task", list(TASKS))
def test_tasks_command_lists_the_options(task, capsys):
    assert main(["tasks", task]) == 0
    out = capsys.readouterr().out
    assert "recurrent layer:" in out
    for name in recurrent_option_names():
        assert f"--{name.replace('_', '-')} " in out, (task, name)
    assert "--cell-options" in out


@pytest.mark.slow
def test_options_refused_where_there_is_no_recurrent_layer(tmp_path):
    from rnnlab.errors import ConfigError
    with pytest.raises(ConfigError, match="zoneout is an option of a recurrent layer; architecture 'treelstm'"):
        rnnlab.train(task="expressions", zoneout=0.1, out=str(tmp_path / "a"), **QUIET)
    with pytest.raises(ConfigError, match="input_layers is an option of a recurrent layer; model 'ntm'"):
        rnnlab.train(task="sequence-copy", input_layers=1, out=str(tmp_path / "b"), **QUIET)
    with pytest.raises(ConfigError, match="weight_drop must be a probability"):
        rnnlab.train(task="copy", weight_drop=1.5, out=str(tmp_path / "c"), **QUIET)
    with pytest.raises(ConfigError, match="layer_norm given twice"):
        rnnlab.train(task="adding", layer_norm=True, cell_options={"layer_norm": False},
                     out=str(tmp_path / "d"), **QUIET)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_command_line_takes_the_options_on_classify(files, tmp_path, capsys):
    """The issue's example: --cell-option layer_norm=true and --skip-steps on classify."""
    out = tmp_path / "run"
    assert main(["train", "--task", "classify", "--data", str(files / "sentences.txt"),
                 "--embed-size", "4", "--hidden-size", "5", "--min-count", "1", "--max-steps", "1",
                 "--epochs", "0", "--threads", "1", "--no-progress", "--cell-option", "layer_norm=true",
                 "--skip-steps", "2", "--zoneout", "0.1", "--input-layers", "1", "--out", str(out)]) == 0
    layer = load_run(out).model.rnn
    assert layer.cells[0].layer_norm and layer.skip_steps == 2
    assert load_run(out).model.input_mlp.num_layers == 1


def test_tree_networks_refuse_the_options_and_the_chain_takes_them(files, tmp_path):
    """--task tree: a tree network has no recurrent layer (refused, nothing written); the chain
    model builds its layer from the shared options."""
    from rnnlab.errors import ConfigError
    settings = dict(TASKS["tree"], data=str(files / "trees"))
    with pytest.raises(ConfigError, match="zoneout is an option of a recurrent layer; architecture "
                                          "'treelstm' is a tree network"):
        rnnlab.train(task="tree", **{**settings, "architecture": "treelstm"}, zoneout=0.1,
                     out=str(tmp_path / "a"), **QUIET)
    assert not (tmp_path / "a").exists()
    s = rnnlab.train(task="tree", **settings, zoneout=0.1, skip_steps=2, output_layers=1,
                     out=str(tmp_path / "b"), **QUIET)
    model = load_run(s["run_dir"]).model
    assert model.rnn.skip_steps == 2 and model.rnn.bidirectional
    assert model.output_mlp.num_layers == 1 and model.output.in_features == model.output_mlp.out_size
