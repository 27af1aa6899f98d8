"""--task tree: bracketed trees with a label on every node (SST), the reader, the batches, the
figures and the commands."""
import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from rnnlab.cli import main
from rnnlab.data.sentiment_trees import (LabelledTree, balanced_tree, parse_tree, read_tree_splits,
                                         read_trees, tree_text)
from rnnlab.errors import DataError
from rnnlab.recursive import Tree, TreeBatch, TreeNetwork
from rnnlab.tasks.trees import TreeAssets, TreeTask
from rnnlab.training.config import TrainConfig

DATA = Path(os.environ.get("RNNLAB_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
SST = DATA / "sst_trees"

LINES = ["(3 (2 The) (4 fine))",
         "(1 (2 (2 It) (1 (1 drags) (2 on))) (2 .))",
         "(2 (2 -LRB-) (3 (3 good) (2 -RRB-)))",
         "(4 (4 wow))",                                   # a unary phrase over a leaf
         "(0 bad)"]                                        # a tree of one leaf


# ------------------------------------------------------------------------------------ reader
@pytest.mark.parametrize("line", LINES)
def test_round_trip_of_a_tree_to_its_bracketed_text(line):
    tree = parse_tree(line, "t")
    assert tree_text(tree) == line
    assert tree.words.height == tree.labels.height and tree.words.size == tree.labels.size


def test_parse_gives_words_and_labels_of_one_shape():
    tree = parse_tree("(1 (2 (2 It) (1 (1 drags) (2 on))) (2 .))", "t")
    assert tree.leaves == ["It", "drags", "on", "."]
    assert tree.root == 1
    left = tree.labels.children[0]
    assert [c.label for c in left.children] == ["2", "1"] and left.children[1].children[0].label == "1"
    assert tree.words.children[0].label == "" and tree.words.children[1].label == "."
    assert tree.words.height == 3


def test_round_trip_of_every_sst_dev_tree():
    if not SST.exists():
        pytest.skip(f"the SST trees are absent ({SST}); the shared data is not here")
    lines = (SST / "dev.txt").read_text(encoding="utf-8").split("\n")
    trees = read_trees(SST / "dev.txt")
    assert [tree_text(t) for t in trees] == [line for line in lines if line]


def test_sst_splits_as_its_source_counts_them():
    if not SST.exists():
        pytest.skip(f"the SST trees are absent ({SST}); the shared data is not here")
    splits = read_tree_splits(SST)
    assert {k: len(v) for k, v in splits.items()} == {"train": 8543, "valid": 1101, "test": 2210}
    assert sum(t.root != 2 for t in splits["test"]) == 1821          # binary: neutral roots dropped


@pytest.mark.parametrize("line, expected", [
    ("(3 (2 The) (4 fine)", "expected ')' closing the node opened at column 1, found the end of the line"),
    ("(3 (2 The) (4 fine)))", "expected the end of the line after the tree closed, found ')' at column 21"),
    ("(3 (2 The)) (4 fine)", "expected the end of the line after the tree closed, found '(' at column 13"),
    ("The fine", "expected '(' opening a tree, found 'The' at column 1"),
    ("(3 (The) (4 fine))", "expected a label 0-4 after '(' at column 4, found 'The' at column 5"),
    ("((2 The) (4 fine))", "expected a label 0-4 after '(' at column 1, found '(' at column 2"),
    ("(3 (2 The) (7 fine))", "expected a label 0-4, found 7 at column 13"),
    ("(3 (2 The fine))", "expected one word in the leaf opened at column 4, found 'fine' at column 11"),
    ("(3 (2 a) (2 b) (2 c))", "expected at most 2 children in the node opened at column 1"),
    ("(3 (2 a) (2))", "expected a word or subtrees in the node opened at column 10, found ')' at column 12"),
    ("(3 word (2 a))", "expected a leaf of one word or a phrase of subtrees in the node opened at column 1"),
])
def test_a_malformed_tree_is_one_line_naming_file_line_and_what_was_expected(tmp_path, line, expected):
    path = tmp_path / "train.txt"
    path.write_text("(2 (2 fine) (2 line))\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_trees(path)
    message = str(e.value)
    assert message.startswith(f"{path}:2: ") and expected in message and "\n" not in message


def test_u0085_and_u2028_inside_a_line_stay_inside_its_leaf(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes("(3 (2 so\u2028what) (4 fine\u0085ly))\n(1 (1 dull))\r\n".encode("utf-8"))
    trees = read_trees(path)
    assert len(trees) == 2
    assert trees[0].leaves == ["so\u2028what", "fine\u0085ly"] and trees[1].leaves == ["dull"]
    assert tree_text(trees[0]) == "(3 (2 so\u2028what) (4 fine\u0085ly))"


def test_balanced_tree_halves_the_words_left_half_larger():
    tree = balanced_tree(["a", "b", "c", "d", "e"])
    left, right = tree.children
    assert [n.label for n in left.children[0].children] == ["a", "b"] and left.children[1].label == "c"
    assert [n.label for n in right.children] == ["d", "e"]
    assert tree.height == 3 and tree.size == 9
    assert balanced_tree(["x"]) == Tree("x")
    assert balanced_tree([str(i) for i in range(16)]).height == 4


# ------------------------------------------------------------------------------------ batches
def test_words_and_labels_number_their_nodes_alike_in_a_batch():
    """Leaves whose word names their label: every node's target is the label of its own word."""
    trees = [parse_tree(line, "t") for line in
             ["(3 (2 w2) (4 (4 w4) (1 w1)))", "(0 (0 w0))", "(1 (3 (3 w3) (2 w2)) (1 w1))"]]
    assets = TreeAssets(["<unk>", "<phrase>", "w0", "w1", "w2", "w3", "w4"], 5, False)
    task = TreeTask({}, TrainConfig(), assets)
    words = TreeBatch.from_trees([t.words for t in trees], assets.index, 2)
    labels = TreeBatch.from_trees([t.labels for t in trees], task.labels_index, 2)
    leaf_rows = (words.labels[1:] >= 2).nonzero().flatten()
    assert leaf_rows.numel() == 7
    assert torch.equal(words.labels[1:][leaf_rows] - 2, labels.labels[1:][leaf_rows])
    assert labels.labels[words.roots].tolist() == [3, 0, 1]


class FixedLogits(nn.Module):
    """A stand-in tree model whose root logits are given (every other node a 0 logit row)."""

    def __init__(self, root_logits):
        super().__init__()
        self.root_logits = root_logits
        self.config = type("C", (), {"is_tree": True})()

    def forward(self, batch):
        out = torch.zeros(batch.num_nodes, self.root_logits.shape[1])
        out[batch.roots - 1] = self.root_logits
        return out


def test_binary_accuracy_drops_neutral_roots_and_compares_the_sides_total_probability():
    lines = ["(0 a)", "(1 a)", "(2 a)", "(3 a)", "(4 a)"]
    examples_assets = TreeAssets(["<unk>", "<phrase>", "a"], 5, False)
    examples = [examples_assets.encode(parse_tree(line, "t")) for line in lines]
    p = torch.tensor([[.30, .25, .0, .45, .0],     # gold 0: positive .45 < .55 negative: binary right; fine 3, wrong
                      [.0, .35, .40, .25, .0],     # gold 1: .25 < .35: binary right; fine 2, wrong
                      [.0, .0, 1., .0, .0],        # gold 2: neutral, left out of binary; fine right
                      [.30, .30, .0, .40, .0],     # gold 3: .40 < .60: binary wrong; fine right
                      [.0, .0, .6, .0, .4]])       # gold 4: .4 > 0: binary right; fine 2, wrong
    task = TreeTask({}, TrainConfig(), examples_assets)
    out = task.batch_loss(FixedLogits(p.clamp_min(1e-6).log()), examples, train=False)
    m = task.metrics(out.loss_sum, out.count, out.stats)
    assert m["binary_accuracy"] == pytest.approx(3 / 4)
    assert m["accuracy"] == pytest.approx(2 / 5)
    assert out.count == 5          # every node labelled: one node per tree here


def test_tree_network_dropout_is_off_in_eval_and_on_in_training():
    torch.manual_seed(0)
    net = TreeNetwork(5, 4, 3, "treelstm", dropout=0.5)
    batch = TreeBatch.from_trees([Tree("a", (Tree("b"), Tree("c")))], {"a": 1, "b": 2, "c": 3})
    net.eval()
    plain = TreeNetwork(5, 4, 3, "treelstm")
    plain.load_state_dict(net.state_dict())
    assert torch.equal(net(batch), plain(batch))
    net.train()
    assert not torch.allclose(net(batch), plain(batch))


# ------------------------------------------------------------------------------------ commands
TRAIN = ["(3 (3 (2 a) (3 good)) (2 film))", "(1 (2 a) (1 (1 dull) (2 film)))", "(4 (4 great) (2 fun))",
         "(0 (0 (0 awful) (2 a)) (1 bore))", "(3 (3 good) (2 fun))", "(1 (1 dull) (2 (2 a) (2 film)))"]


def tree_folder(tmp_path):
    folder = tmp_path / "trees"
    folder.mkdir()
    (folder / "train.txt").write_text("\n".join(TRAIN * 3) + "\n", encoding="utf-8")
    (folder / "dev.txt").write_text("\n".join(TRAIN[:3]) + "\n", encoding="utf-8")
    (folder / "test.txt").write_text("\n".join(TRAIN[3:] + ["(2 (2 unseen) (2 words))"]) + "\n",
                                     encoding="utf-8")
    return folder


@pytest.mark.parametrize("architecture", ["treelstm", "recursive", "chain"])
def test_train_evaluate_predict_through_the_command_line(tmp_path, capsys, architecture):
    folder, run = tree_folder(tmp_path), tmp_path / "run"
    assert main(["train", "--task", "tree", "--data", str(folder), "--architecture", architecture,
                 "--hidden-size", "8", "--embed-size", "6", "--epochs", "2", "--threads", "1",
                 "--no-progress", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "test: loss" in out and "binary_accuracy" in out
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["trees"] == 4 and 0 <= result["accuracy"] <= 1
    assert result["binary_accuracy"] in (0.0, 1 / 3, 2 / 3, 1.0)           # 3 polar roots
    assert ("phrase_accuracy" in result) == (architecture != "chain")
    words = json.loads((run / "tree_words.json").read_text())
    assert words["words"][:2] == ["<unk>", "<phrase>"] and "good" in words["words"]
    (tmp_path / "in.txt").write_text("(3 (2 a) (3 good))\n\na good fun film\nunseen\u2028word\n",
                                     encoding="utf-8")
    assert main(["predict", str(run), "--input", str(tmp_path / "in.txt")]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[1] == "" and len(lines) == 5
    for line in (lines[0], lines[2], lines[3]):
        label, p = line.split("\t")
        assert label in "01234" and 0.2 <= float(p) <= 1
    if architecture != "chain":
        assert main(["predict", str(run), "--input", str(tmp_path / "in.txt"), "--tree", "true"]) == 0
        lines = capsys.readouterr().out.split("\n")
        first = parse_tree(lines[0], "out")
        assert first.leaves == ["a", "good"] and first.words.height == 1
        plain = parse_tree(lines[2], "out")
        assert plain.leaves == ["a", "good", "fun", "film"] and plain.words.height == 2
        assert parse_tree(lines[3], "out").leaves == ["unseen\u2028word"]
    (tmp_path / "bad.txt").write_text("(3 (2 a) (3 good)\n", encoding="utf-8")
    assert main(["predict", str(run), "--input", str(tmp_path / "bad.txt")]) == 2
    err = capsys.readouterr().err
    assert "line 1: expected ')' closing the node opened at column 1" in err and err.count("\n") == 1


class OwnWordClassifier(nn.Module):
    """A stand-in tree model that labels each node by its own word: word k of the vocabulary
    (from index 2) as class k - 2, a phrase as class 2."""

    def __init__(self):
        super().__init__()
        self.config = type("C", (), {"is_tree": True})()

    def forward(self, batch):
        idx = batch.labels[1:]                                               # (N,)
        cls = torch.where(idx >= 2, idx - 2, torch.full_like(idx, 2))
        return 10.0 * torch.nn.functional.one_hot(cls, 5).float()           # (N, 5)


def test_predicted_tree_puts_each_nodes_prediction_at_that_node():
    from rnnlab.tasks.recipe import LoadedRun
    from rnnlab.tasks.trees import RECIPE, TreeDataConfig
    from rnnlab.models.sentiment_trees import TreeModelConfig
    assets = TreeAssets(["<unk>", "<phrase>", "zero", "one", "two", "three", "four"], 5, False)
    run = LoadedRun(Path("."), RECIPE, TreeDataConfig(), TreeModelConfig(), TrainConfig(), assets,
                    OwnWordClassifier())
    lines = ["(0 (0 (0 one) (0 four)) (0 zero))", "one four zero three", "four"]
    out = list(RECIPE.predict(run, lines, {"tree": True}))
    assert out == ["(2 (2 (1 one) (4 four)) (0 zero))",
                   "(2 (2 (1 one) (4 four)) (2 (0 zero) (3 three)))", "(4 four)"]
    assert list(RECIPE.predict(run, lines, {"tree": False})) == ["2\t0.9998", "2\t0.9998", "4\t0.9998"]


def test_bad_trees_stop_training_with_one_line_and_nothing_written(tmp_path, capsys):
    folder, run = tree_folder(tmp_path), tmp_path / "run"
    (folder / "dev.txt").write_text("(3 (2 a) (3 good))\n(3 (2 a) (9 good))\n", encoding="utf-8")
    assert main(["train", "--task", "tree", "--data", str(folder), "--epochs", "1",
                 "--no-progress", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{folder / 'dev.txt'}:2: expected a label 0-4, found 9 at column 11" in err
    assert err.count("\n") == 1 and not run.exists()
    assert main(["train", "--task", "tree", "--no-progress", "--out", str(run)]) == 2
    assert "--task tree needs --data" in capsys.readouterr().err and not run.exists()


def test_binary_runs_learn_two_sides_and_leave_neutral_roots_out(tmp_path, capsys):
    from rnnlab.tasks.trees import IGNORE, target_index
    assert target_index(5, True) == {"0": 0, "1": 0, "2": IGNORE, "3": 1, "4": 1}
    assert target_index(5, False) == {str(k): k for k in range(5)}
    folder, run = tree_folder(tmp_path), tmp_path / "run"
    assert main(["train", "--task", "tree", "--data", str(folder), "--binary", "true", "--root-only",
                 "true", "--hidden-size", "8", "--epochs", "1", "--threads", "1", "--no-progress",
                 "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["trees"] == 3 and "binary_accuracy" not in result     # the neutral root left out
    (tmp_path / "in.txt").write_text("great fun\n", encoding="utf-8")
    assert main(["predict", str(run), "--input", str(tmp_path / "in.txt")]) == 0
    assert capsys.readouterr().out.split("\t")[0] in ("0", "1")
    assert main(["train", "--task", "tree", "--data", str(folder), "--binary", "true", "--classes",
                 "4", "--no-progress", "--out", str(tmp_path / "r2")]) == 2
    assert "binary needs an odd number of classes" in capsys.readouterr().err


def test_phrases_of_trees_are_every_distinct_labelled_subtree():
    from rnnlab.tasks.trees import phrases_of
    trees = [parse_tree("(3 (2 (2 a) (3 good)) (2 a))", "t"), parse_tree("(2 (2 a) (3 good))", "t"),
             parse_tree("(1 (1 a) (3 good))", "t")]
    assert [tree_text(p) for p in phrases_of(trees)] == [
        "(2 a)", "(3 good)", "(2 (2 a) (3 good))", "(3 (2 (2 a) (3 good)) (2 a))", "(1 a)",
        "(1 (1 a) (3 good))"]


def test_select_keeps_the_weights_of_the_best_valid_figure_it_names(tmp_path, capsys):
    folder = tree_folder(tmp_path)
    for select, figure in (("mean_accuracy", lambda r: (r["accuracy"] + r["binary_accuracy"]) / 2),
                           ("binary_accuracy", lambda r: r["binary_accuracy"])):
        run = tmp_path / select
        assert main(["train", "--task", "tree", "--data", str(folder), "--select", select,
                     "--hidden-size", "8", "--embed-size", "6", "--epochs", "6", "--lr", "0.02",
                     "--validate-every", "1", "--threads", "1", "--no-progress", "--out", str(run)]) == 0
        capsys.readouterr()
        valid = [json.loads(line) for line in (run / "metrics.jsonl").read_text().split("\n")
                 if line and json.loads(line).get("split") == "valid"]
        assert len(valid) == 6
        if select == "mean_accuracy":
            for r in valid:
                assert r["mean_accuracy"] == pytest.approx((r["accuracy"] + r["binary_accuracy"]) / 2)
        else:
            assert all("mean_accuracy" not in r for r in valid)
        scores = [figure(r) for r in valid]
        best = valid[scores.index(max(scores))]                        # the first of the best
        summary = json.loads((run / "summary.json").read_text())
        assert summary["best_step"] == best["step"]
        assert summary["valid"]["accuracy"] == pytest.approx(best["accuracy"])
        assert main(["evaluate", str(run), "--data", str(folder / "dev.txt"), "--json"]) == 0
        again = json.loads(capsys.readouterr().out)                     # the kept weights on dev
        assert again["binary_accuracy"] == pytest.approx(best["binary_accuracy"])
    assert main(["train", "--task", "tree", "--data", str(folder), "--select", "binary", "--no-progress",
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "select takes one of 'accuracy', 'binary_accuracy'" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()
    assets = TreeAssets(["<unk>", "<phrase>"], 5, False)     # no binary figure: the accuracy selects
    config = TrainConfig()
    assert TreeTask({}, config, assets, select="mean_accuracy").selection == ("mean_accuracy", "max")
    for other in (TreeAssets(["<unk>", "<phrase>"], 5, False, binary=True),
                  TreeAssets(["<unk>", "<phrase>"], 4, False)):
        assert TreeTask({}, config, other, select="mean_accuracy").selection == ("accuracy", "max")
