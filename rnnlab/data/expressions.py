r"""Arithmetic expression trees over the digits 0-9, generated from a seed, with their values mod 10.

An expression is a :class:`~rnnlab.recursive.tree.Tree`: leaves are digits ``0`` .. ``9``,
internal nodes the binary operators ``+``, ``-``, ``*``. Its value is computed exactly and
taken mod 10 (Python's ``%``, so in 0..9): a 10-way classification. Since reduction mod 10
commutes with +, - and *, reducing at every node (what :func:`evaluate` does) gives the same
value as evaluating the whole expression and reducing once (what Python's ``eval(...) % 10``
gives).

**Depth.** :func:`random_expression` draws a tree of exactly the height asked for: the root's
operator is uniform; one child, on a uniform side, has height d - 1, the other a height uniform in
0 .. d - 1; leaves are uniform digits. Height d means d nested operations on the longest path, and
d + 1 compositions for a tree network; the same expression as a token sequence is far longer (a
fully parenthesised infix form has 4 n_op + 1 tokens).

**Sequence forms** of the same tree (:func:`tokens`): ``infix`` fully parenthesised,
``( ( 3 + 4 ) * 2 )``; ``prefix`` (Polish), ``* + 3 4 2``; ``postfix`` (reverse Polish), ``3 4 + 2 *``.

**Text form**, one expression per line (:func:`parse`, :func:`read_expressions`,
:func:`write_expressions`): infix with the usual precedence (``*`` before ``+`` and ``-``, left to
right within a level), parentheses and spaces optional, e.g. ``3 + 4 * 2`` or ``((3+4)*2)``;
numbers are single digits, there is no unary minus. A line may end with ``= V`` (the value, 0..9),
which the reader checks against the exact value. The writer writes fully parenthesised infix.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import ConfigError, DataError
from ..recursive.tree import Tree, postorder
from .lines import split_lines

DIGITS = tuple("0123456789")
OPERATORS = ("+", "-", "*")
PARENTHESES = ("(", ")")
#: every symbol of every form, in a fixed order: the vocabulary of the models
SYMBOLS = DIGITS + OPERATORS + PARENTHESES
INDEX: Dict[str, int] = {s: i for i, s in enumerate(SYMBOLS)}
MODULUS = 10
FORMS = ("infix", "prefix", "postfix")
#: parentheses nested deeper than this are refused (the reader recurses once per level)
MAX_NESTING = 100


def apply(op: str, a: int, b: int) -> int:
    """``a op b`` mod 10."""
    if op == "+":
        return (a + b) % MODULUS
    if op == "-":
        return (a - b) % MODULUS
    if op == "*":
        return (a * b) % MODULUS
    raise DataError(f"expected an operator among {' '.join(OPERATORS)}, found {op!r}")


def evaluate(tree: Tree) -> int:
    """The value of ``tree`` mod 10, computed exactly, children before parents (no recursion)."""
    values: Dict[int, int] = {}
    for node in postorder(tree):
        if node.is_leaf:
            if node.label not in DIGITS:
                raise DataError(f"expected a digit 0-9 at a leaf, found {node.label!r}")
            values[id(node)] = int(node.label)
        elif len(node.children) != 2:
            raise DataError(f"expected 2 operands of {node.label!r}, found {len(node.children)}")
        else:
            left, right = node.children
            values[id(node)] = apply(node.label, values[id(left)], values[id(right)])
    return values[id(tree)]


def check_operators(operators: str) -> Tuple[str, ...]:
    """The operators of a setting such as ``"+-*"``; a ConfigError unless a non-empty subset."""
    ops = tuple(dict.fromkeys(operators)) if isinstance(operators, str) else ()
    if not ops or any(op not in OPERATORS for op in ops):
        raise ConfigError(f"operators must be a non-empty string of {''.join(OPERATORS)!r}, "
                          f"got {operators!r}")
    return ops


def random_expression(height: int, rng: random.Random, operators: Sequence[str] = OPERATORS) -> Tree:
    """A random expression of exactly ``height`` (module docstring)."""
    if height == 0:
        return Tree(rng.choice(DIGITS))
    op = rng.choice(list(operators))
    tall = random_expression(height - 1, rng, operators)
    other = random_expression(rng.randrange(height), rng, operators)
    return Tree(op, (tall, other) if rng.random() < 0.5 else (other, tall))


def tokens(tree: Tree, form: str = "infix") -> List[str]:
    """``tree`` as a token sequence in ``form`` (module docstring), without recursion."""
    if form == "prefix":
        out, stack = [], [tree]
        while stack:
            node = stack.pop()
            out.append(node.label)
            stack.extend(reversed(node.children))
        return out
    if form == "postfix":
        return [node.label for node in postorder(tree)]
    if form != "infix":
        raise ConfigError(f"form takes one of {', '.join(map(repr, FORMS))}; got {form!r}")
    out, stack = [], [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif item.is_leaf:
            out.append(item.label)
        else:
            left, right = item.children
            stack.extend([")", right, item.label, left, "("])
    return out


def infix(tree: Tree) -> str:
    """The fully parenthesised infix text of ``tree``, e.g. ``((3+4)*2)``."""
    return "".join(tokens(tree, "infix"))


# ------------------------------------------------------------------------------ reading text
def _scan(text: str, where: str) -> List[str]:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in DIGITS:
            j = i
            while j < len(text) and text[j] in DIGITS:
                j += 1
            if j - i > 1:
                raise DataError(f"{where}: expected single digits 0-9, found the number {text[i:j]!r}")
            out.append(ch)
            i = j
            continue
        if ch in OPERATORS or ch in PARENTHESES:
            out.append(ch)
            i += 1
            continue
        raise DataError(f"{where}: expected a digit 0-9, an operator {' '.join(OPERATORS)} or a "
                        f"parenthesis, found {ch!r}")
    return out


class _Parser:
    """Recursive descent: expr := term (('+' | '-') term)*; term := factor ('*' factor)*;
    factor := digit | '(' expr ')'."""

    def __init__(self, symbols: List[str], where: str):
        self.symbols, self.where, self.i, self.nesting = symbols, where, 0, 0

    def peek(self) -> Optional[str]:
        return self.symbols[self.i] if self.i < len(self.symbols) else None

    def fail(self, expected: str):
        found = self.peek()
        raise DataError(f"{self.where}: expected {expected}, found "
                        f"{'the end of the line' if found is None else repr(found)}")

    def expression(self) -> Tree:
        left = self.term()
        while self.peek() in ("+", "-"):
            op = self.symbols[self.i]
            self.i += 1
            left = Tree(op, (left, self.term()))
        return left

    def term(self) -> Tree:
        left = self.factor()
        while self.peek() == "*":
            self.i += 1
            left = Tree("*", (left, self.factor()))
        return left

    def factor(self) -> Tree:
        symbol = self.peek()
        if symbol is not None and symbol in DIGITS:
            self.i += 1
            return Tree(symbol)
        if symbol != "(":
            self.fail("a digit or '('")
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise DataError(f"{self.where}: expected parentheses nested at most {MAX_NESTING} "
                            f"deep, found {self.nesting}")
        self.i += 1
        inside = self.expression()
        if self.peek() != ")":
            self.fail("an operator or ')'")
        self.i += 1
        self.nesting -= 1
        return inside


def parse(text: str, where: str = "expression") -> Tree:
    """The tree of one infix expression (module docstring); a DataError naming ``where`` if the
    text is not one."""
    symbols = _scan(text, where)
    if not symbols:
        raise DataError(f"{where}: expected an expression, found an empty line")
    parser = _Parser(symbols, where)
    tree = parser.expression()
    if parser.peek() is not None:
        parser.fail("an operator or the end of the line")
    return tree


def parse_line(line: str, where: str) -> Tuple[Tree, Optional[int]]:
    """An expression line, optionally ending ``= V``: (tree, V or None). V must be the exact value."""
    text, eq, answer = line.partition("=")
    tree = parse(text, where)
    if not eq:
        return tree, None
    answer = answer.strip()
    if answer not in DIGITS:
        raise DataError(f"{where}: expected a value 0-9 after '=', found {answer!r}")
    value = evaluate(tree)
    if int(answer) != value:
        raise DataError(f"{where}: expected the value of {infix(tree)} mod 10, {value}, found {answer}")
    return tree, int(answer)


def read_expressions(path) -> List[Tree]:
    """The expressions of a text file, one per line (blank lines and lines starting with ``#``
    skipped); a DataError naming the file and line of the first one that is not an expression."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"expected a file of expressions, one per line, at {p}; "
                        f"{'found a folder' if p.is_dir() else 'nothing is there'}")
    data = p.read_bytes()
    try:
        lines = split_lines(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{p}:{line}: expected UTF-8 text, found a byte it cannot decode "
                        f"({data[e.start:e.end]!r} at byte {e.start})") from None
    trees = []
    for number, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#"):
            trees.append(parse_line(line, f"{p}:{number}")[0])
    if not trees:
        raise DataError(f"{p}: expected expressions, one per line, found none")
    return trees


def write_expressions(path, trees: Iterable[Tree], values: bool = False) -> None:
    """One fully parenthesised expression per line, with ``= V`` if ``values``."""
    lines = [infix(t) + (f" = {evaluate(t)}" if values else "") for t in trees]
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
