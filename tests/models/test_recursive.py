"""Recursive (tree-structured) networks and ``--task expressions``.

The level-batched tree network equals a plain recursion over the tree, node by node, written here
from the equations of the docstrings (values and gradients, float64); the expression generator's
values equal Python's own arithmetic; the reader names the file and line of a bad expression; the
task trains, evaluates and predicts through the Python API and the command line.
"""
import json
import random

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.data import expressions as ex
from rnnlab.errors import ConfigError, DataError
from rnnlab.recursive import Nodes, RecursiveCell, Tree, TreeBatch, TreeLSTMCell, TreeNetwork, postorder

LABELS = {s: i for i, s in enumerate("0123456789+-*fgh")}


def leaf(d):
    return Tree(str(d))


def node(op, *children):
    return Tree(op, children)


#: hand-built binary trees: a leaf, a balanced tree, left and right spines, a unary node
BINARY = [
    leaf(7),
    node("+", leaf(3), leaf(4)),
    node("*", node("+", leaf(1), leaf(2)), node("-", leaf(9), leaf(5))),
    node("-", node("-", node("-", leaf(1), leaf(2)), leaf(3)), leaf(4)),
    node("*", leaf(8), node("+", leaf(6), node("*", leaf(0), leaf(2)))),
    node("f", node("+", leaf(3), leaf(3))),
]
#: hand-built trees of up to 3 children
TERNARY = BINARY + [
    node("g", leaf(1), leaf(2), leaf(3)),
    node("h", node("g", leaf(4), node("f", leaf(5)), leaf(6)), leaf(7), node("+", leaf(8), leaf(9))),
]


# ------------------------------------------------------------------------------ references
def reference_recursive(net, tree):
    """h_j = tanh(W_ih x_j + sum_k W_hh^(k) h_jk + b), recursing over the tree, node by node."""
    cell, H = net.cell, net.hidden_size
    x = net.embedding.weight[LABELS[tree.label]]
    a = cell.weight_ih @ x + cell.bias
    for k, child in enumerate(tree.children):
        a = a + cell.weight_hh[:, k * H:(k + 1) * H] @ reference_recursive(net, child)
    return torch.tanh(a)


def reference_treelstm(net, tree):
    """The N-ary Tree-LSTM of Tai et al. (2015), one node at a time: returns (h, c)."""
    cell, H, N = net.cell, net.hidden_size, net.arity
    x = net.embedding.weight[LABELS[tree.label]]
    kids = [reference_treelstm(net, child) for child in tree.children]

    def pre(block):                                    # W^(g) x + sum_l U^(g)_l h_l + b^(g)
        rows = slice(block * H, (block + 1) * H)
        a = cell.weight_ih[rows] @ x + cell.bias[rows]
        for l, (h_l, _) in enumerate(kids):
            a = a + cell.weight_hh[rows, l * H:(l + 1) * H] @ h_l
        return a

    i = torch.sigmoid(pre(0))
    u = torch.tanh(pre(1 + N))
    o = torch.sigmoid(pre(2 + N))
    c = i * u
    for k, (_, c_k) in enumerate(kids):
        c = c + torch.sigmoid(pre(1 + k)) * c_k        # f_jk, one forget gate per child
    return o * torch.tanh(c), c


def postorder_nodes(trees, arity):
    """The trees as Nodes numbered in postorder, tree after tree, a node a level (not
    TreeBatch's level order)."""
    labels, children, roots = [], [], []
    for tree in trees:
        number = {}
        for n in postorder(tree):
            labels.append(LABELS[n.label])
            kids = [number[id(c)] for c in n.children]
            children.append(kids + [0] * (arity - len(kids)))
            number[id(n)] = len(labels)
        roots.append(len(labels))
    return Nodes(torch.tensor(labels), torch.tensor(children), torch.arange(1, len(labels) + 1).view(-1, 1),
                 torch.tensor(roots))


def check_against_reference(composition, trees, arity, reference):
    """The level batches, and one node after another (:class:`Nodes`, export's form) in the
    level order and in postorder, against the recursion: values and gradients."""
    net = TreeNetwork(len(LABELS), 5, 6, composition, arity).double()
    with torch.no_grad():                              # non-zero forget biases differ per gate
        for p in net.parameters():
            p.normal_(0.0, 0.5)
    batch = TreeBatch.from_trees(trees, LABELS, arity)
    probe = torch.randn(len(trees), 6, dtype=torch.float64)
    want = torch.stack([reference(net, t) for t in trees])
    want_grads = torch.autograd.grad((want * probe).sum(), list(net.parameters()))
    for form in (batch, batch.nodes(), postorder_nodes(trees, arity)):
        got = net(form)                                                  # (B, H)
        grads = torch.autograd.grad((got * probe).sum(), list(net.parameters()))
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        for (name, _), g, w in zip(net.named_parameters(), grads, want_grads):
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12, msg=name)
        assert float(sum(g.abs().sum() for g in grads)) > 0


@pytest.mark.parametrize("composition", ["recursive", "treelstm"])
def test_torch_export_keeps_the_number_of_nodes_and_trees_dynamic(composition):
    net = TreeNetwork(len(LABELS), 5, 6, composition, 3).double().eval()
    dims = {"N": torch.export.Dim("N", min=1), "B": torch.export.Dim("B", min=1)}
    shapes = Nodes({0: dims["N"]}, {0: dims["N"]}, {0: torch.export.Dim("L", min=1), 1: torch.export.Dim("M", min=1)},
                   {0: dims["B"]})
    with torch.no_grad():
        program = torch.export.export(net, (TreeBatch.from_trees(TERNARY[1:4], LABELS, 3).nodes(),),
                                      dynamic_shapes=(shapes,))
        for trees in (TERNARY, TERNARY[:1], TERNARY[-1:]):
            batch = TreeBatch.from_trees(trees, LABELS, 3)
            for nodes in (batch.nodes(), postorder_nodes(trees, 3)):
                torch.testing.assert_close(program.module()(nodes), net(batch), rtol=1e-12, atol=1e-12)


def test_recursive_network_equals_the_recursion_binary():
    check_against_reference("recursive", BINARY, 2,
                            lambda net, t: reference_recursive(net, t))


def test_recursive_network_equals_the_recursion_ternary():
    check_against_reference("recursive", TERNARY, 3,
                            lambda net, t: reference_recursive(net, t))


def test_tree_lstm_equals_the_recursion_binary_and_ternary():
    check_against_reference("treelstm", BINARY, 2, lambda net, t: reference_treelstm(net, t)[0])
    check_against_reference("treelstm", TERNARY, 3, lambda net, t: reference_treelstm(net, t)[0])


def test_one_composition_per_level_and_order_of_children_matters():
    trees = BINARY[:5]
    batch = TreeBatch.from_trees(trees, LABELS)
    assert [lv.height for lv in batch.levels] == list(range(max(t.height for t in trees) + 1))
    assert batch.num_nodes == sum(t.size for t in trees) == 1 + 3 + 7 + 7 + 7
    assert batch.heights.tolist() == [0, 1, 2, 3, 3]
    for lv in batch.levels:                            # children are computed before their parents
        assert int(lv.children.max()) < lv.start
        assert lv.height > 0 or int(lv.children.abs().sum()) == 0
    net = TreeNetwork(len(LABELS), 4, 5, "treelstm").double()
    calls = []
    net.cell.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    root, (h, c) = net(batch, return_states=True)
    assert calls == [lv.end - lv.start for lv in batch.levels]
    assert h.shape == (batch.num_nodes + 1, 5) and float(h[0].detach().abs().sum()) == 0.0
    torch.testing.assert_close(root, h[batch.roots])
    swapped = TreeBatch.from_trees([node("-", leaf(5), leaf(3))], LABELS)
    a, b = net(TreeBatch.from_trees([node("-", leaf(3), leaf(5))], LABELS)), net(swapped)
    assert (a - b).abs().max() > 1e-6


def test_tree_batch_errors_and_cell_sizes():
    with pytest.raises(DataError, match="expected at most 2 children per node, found 3 under 'g'"):
        TreeBatch.from_trees([TERNARY[-2]], LABELS, 2)
    with pytest.raises(DataError, match="found 'q'"):
        TreeBatch.from_trees([node("+", leaf(1), Tree("q"))], LABELS)
    with pytest.raises(DataError, match="at least one tree"):
        TreeBatch.from_trees([], LABELS)
    with pytest.raises(ConfigError, match="hidden_size must be a positive whole number, got 0"):
        TreeLSTMCell(3, 0)
    with pytest.raises(ConfigError, match="composition takes one of"):
        TreeNetwork(10, 3, 3, "treelsm")
    cell = RecursiveCell(3, 4, arity=2)
    assert cell.weight_hh.shape == (4, 8) and cell.weight_ih.shape == (4, 3)
    lstm = TreeLSTMCell(3, 4, arity=2)
    assert lstm.weight_hh.shape == (20, 8) and lstm.bias[4:12].eq(1.0).all()


# ------------------------------------------------------------------------------ expressions
def stack_value(symbols, reverse=False):
    """Value mod 10 of a postfix (or, read backwards, prefix) sequence, with a stack."""
    stack = []
    for s in (reversed(symbols) if reverse else symbols):
        if s in ex.DIGITS:
            stack.append(int(s))
            continue
        a, b = (stack.pop(), stack.pop()) if reverse else reversed([stack.pop(), stack.pop()])
        stack.append({"+": a + b, "-": a - b, "*": a * b}[s] % 10)
    (value,) = stack
    return value


def test_generator_values_equal_python_eval_and_the_forms_agree():
    rng = random.Random(5)
    for i in range(400):
        height = i % 8
        tree = ex.random_expression(height, rng)
        assert tree.height == height
        text = ex.infix(tree)
        value = ex.evaluate(tree)
        assert value == eval(text) % 10                                   # Python's arithmetic
        assert ex.parse(text) == tree                                     # the reader inverts the writer
        assert stack_value(ex.tokens(tree, "postfix")) == value
        assert stack_value(ex.tokens(tree, "prefix"), reverse=True) == value
        assert len(ex.tokens(tree, "infix")) == 4 * (tree.size // 2) + 1
    plain = "3 + 4 * 2 - (1 - 2) * 3 - 9 - 8"                             # precedence, left to right
    assert ex.evaluate(ex.parse(plain)) == eval(plain) % 10 == (3 + 8 + 3 - 17) % 10
    a = [ex.infix(ex.random_expression(4, random.Random(1), "+-")) for _ in range(3)]
    b = [ex.infix(ex.random_expression(4, random.Random(1), "+-")) for _ in range(3)]
    assert a == b and "*" not in "".join(a)


@pytest.mark.parametrize("line, message", [
    ("3 + 12", "expected single digits 0-9, found the number '12'"),
    ("3 + x", "expected a digit 0-9, an operator + - * or a parenthesis, found 'x'"),
    ("(3 + 4", "expected an operator or ')', found the end of the line"),
    ("3 + 4)", "expected an operator or the end of the line, found ')'"),
    ("-3", "expected a digit or '(', found '-'"),
    ("3 4", "expected an operator or the end of the line, found '4'"),
    ("3 + 4 = 8", "expected the value of (3+4) mod 10, 7, found 8"),
    ("3 + 4 = ten", "expected a value 0-9 after '=', found 'ten'"),
    ("(" * 101 + "1" + ")" * 101, "expected parentheses nested at most 100 deep, found 101"),
])
def test_reader_names_file_line_and_what_it_found(tmp_path, line, message):
    path = tmp_path / "e.txt"
    path.write_text("# a comment\n1 + 2 = 3\n\n" + line + "\n")
    with pytest.raises(DataError) as e:
        ex.read_expressions(path)
    assert str(e.value) == f"{path}:4: {message}"


def test_reader_round_trip_and_file_errors(tmp_path):
    trees = [ex.random_expression(h, random.Random(h)) for h in range(5)]
    ex.write_expressions(tmp_path / "w.txt", trees, values=True)
    assert ex.read_expressions(tmp_path / "w.txt") == trees
    with pytest.raises(DataError, match="expected a file of expressions, one per line, at .*nothing is there"):
        ex.read_expressions(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n# only a comment\n")
    with pytest.raises(DataError, match="empty.txt: expected expressions, one per line, found none"):
        ex.read_expressions(tmp_path / "empty.txt")
    with pytest.raises(ConfigError, match="operators must be a non-empty string of '\\+-\\*', got '/'"):
        ex.check_operators("/")


# ------------------------------------------------------------------------------ the task
SMALL = dict(task="expressions", train_depth=2, test_depth=3, train_trees=300, valid_trees=60,
             test_per_depth=20, hidden_size=16, embed_size=8, batch_size=30, epochs=1, threads=1,
             progress=False)


def test_tree_lstm_learns_one_operator(tmp_path):
    s = rnnlab.train(out=str(tmp_path / "run"), **dict(SMALL, operators="+", train_depth=1, test_depth=1,
                                                       train_trees=1000, test_per_depth=200, epochs=8,
                                                       hidden_size=32, lr=1e-2, batch_size=50))
    assert s["test"]["accuracy"] > 0.8 > 4 * s["test"]["majority"]      # chance: about 1/10


@pytest.mark.parametrize("architecture", ["recursive", "treelstm", "chain"])
def test_train_evaluate_predict_through_the_api(tmp_path, architecture):
    s = rnnlab.train(out=str(tmp_path / "run"), architecture=architecture, **SMALL)
    assert set(s["test"]) == {"loss", "accuracy", "majority", "accuracy_depth_1", "accuracy_depth_2",
                              "accuracy_depth_3"}
    r = rnnlab.evaluate(tmp_path / "run")
    assert r["accuracy"] == pytest.approx(s["test"]["accuracy"]) and r["expressions"] == 60
    assert r["loss"] == pytest.approx(s["test"]["loss"], rel=1e-5)
    got = rnnlab.predict(tmp_path / "run", ["3 + 4 * 2", "", "((1-2)*3)"])
    assert got[1] == "" and got[0] in ex.DIGITS and got[2] in ex.DIGITS
    (tmp_path / "e.txt").write_text("3 + 4\n(1 * 2) - 3 = 9\n")
    r = rnnlab.evaluate(tmp_path / "run", data=str(tmp_path / "e.txt"))
    assert r["expressions"] == 2 and set(r) >= {"accuracy_depth_1", "accuracy_depth_2"}
    with pytest.raises(DataError, match="line 2: expected single digits 0-9, found the number '10'"):
        rnnlab.predict(tmp_path / "run", ["1", "10 + 1"])


@pytest.mark.slow
def test_same_seed_same_trees_and_settings_refused(tmp_path):
    from rnnlab.tasks.expressions import ExpressionsDataConfig, split_examples
    data = ExpressionsDataConfig(train_trees=40, test_per_depth=5)
    a, b = split_examples(data, "test"), split_examples(data, "test")
    assert [e.tree for e in a] == [e.tree for e in b] and [e.height for e in a] == sorted(e.height for e in a)
    more = split_examples(ExpressionsDataConfig(train_trees=400, test_per_depth=5), "test")
    assert [e.tree for e in more] == [e.tree for e in a]
    assert [e.tree for e in split_examples(data, "train")] != [e.tree for e in split_examples(data, "valid")]
    assert all(e.value == eval(ex.infix(e.tree)) % 10 for e in a)
    small = dict(task="expressions", train_trees=10, out=str(tmp_path / "r"))
    with pytest.raises(ConfigError, match="training reads no --data"):
        rnnlab.train(data="x.txt", **small)
    with pytest.raises(ConfigError, match="architecture takes one of 'recursive', 'treelstm', 'chain'"):
        rnnlab.train(architecture="tree", **small)
    with pytest.raises(ConfigError, match="layers applies to the chain architecture"):
        rnnlab.train(architecture="recursive", layers=2, **small)
    with pytest.raises(ConfigError, match="sequence takes one of"):
        rnnlab.train(sequence="rpn", **small)
    with pytest.raises(ConfigError, match="test_depth must be at most 40, got 41"):
        rnnlab.train(test_depth=41, **small)
    with pytest.raises(ConfigError, match="'symbols' is read from the data"):
        rnnlab.train(symbols=3, **small)
    assert not (tmp_path / "r").exists()


def test_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--task", "expressions", "--architecture", "chain", "--cell", "gru",
                 "--sequence", "postfix", "--train-trees", "100", "--valid-trees", "20",
                 "--test-per-depth", "10", "--train-depth", "2", "--test-depth", "4",
                 "--hidden-size", "8", "--epochs", "1", "--threads", "1", "--no-progress",
                 "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy by depth: 1:" in out and " 4:" in out
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["expressions"] == 40 and "accuracy_depth_4" in result
    (tmp_path / "in.txt").write_text("1 + 2\n\n9 * 9 - 1\n")
    assert main(["predict", str(run), "--input", str(tmp_path / "in.txt")]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[0] in ex.DIGITS and lines[1] == "" and lines[2] in ex.DIGITS
    (tmp_path / "bad.txt").write_text("1 + 2\n(3 +\n")
    assert main(["predict", str(run), "--input", str(tmp_path / "bad.txt")]) == 2
    assert "line 2: expected a digit or '(', found the end of the line" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--data", str(tmp_path / "bad.txt")]) == 2
    assert f"{tmp_path / 'bad.txt'}:2: expected a digit or '('" in capsys.readouterr().err
    assert main(["tasks", "expressions"]) == 0
    listed = capsys.readouterr().out
    assert "--architecture" in listed and "--train-depth" in listed and "--symbols" not in listed


def test_torch_compile_runs_the_tree_network_eagerly_whole():
    """The level loop follows each batch's trees; under torch.compile the network runs outside
    the graph, whole (the lookup and gather around the loop cost more compiled than eager), so
    no batch compiles anything, and values and gradients equal eager's."""
    from torch._dynamo.utils import counters
    rng = random.Random(0)

    def tree(h):
        return leaf(rng.randint(0, 9)) if h == 0 else node("+", tree(rng.randint(0, h - 1)), tree(h - 1))
    torch._dynamo.reset()
    net = TreeNetwork(len(LABELS), 5, 6, "treelstm").double()
    compiled = torch.compile(net)
    graphs, before = [], counters["stats"]["unique_graphs"]
    for k in range(10):
        batch = TreeBatch.from_trees([tree(rng.randint(1, 5)) for _ in range(3)], LABELS)
        got = compiled(batch)
        grads = torch.autograd.grad(got.sum(), list(net.parameters()))
        want = net(batch)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        for g, w in zip(grads, torch.autograd.grad(want.sum(), list(net.parameters()))):
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs == [before] * 10, (before, graphs)
