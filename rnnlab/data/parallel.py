"""Parallel text for translation: line i of the source file and line i of the target file are one
sentence and its translation.

A data folder holds, for each split, one file per language, named by the split and ending in the
language code, as Multi30k does: ``train.en`` / ``train.de``, ``val.en`` / ``val.de``,
``test_2016_flickr.en`` / ``test_2016_flickr.de``. The split is read from the name as for text
corpora (``train``; ``valid``, ``val`` or ``dev``; ``test``). With ``tokenized`` the files come from
the folder's ``tok/`` subfolder instead (Multi30k's lowercased, Moses-tokenized copies,
``train.lc.norm.tok.en``). A pair of files can also be named by its common prefix: ``PREFIX`` stands
for ``PREFIX.en`` and ``PREFIX.de``.

Sentences are split on whitespace. A line that is blank in both files is skipped; a line blank in
only one of them, files of different line counts, or bytes that are not the encoding are a
DataError naming the file, the line and what was expected.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from ..errors import DataError
from .corpus import SPLIT_NAMES, read_text

#: subfolder of the tokenized files
TOKENIZED_FOLDER = "tok"


@dataclass
class SentencePair:
    """One aligned pair: the source and target words, and the line they were read from (1-based)."""
    source: List[str]
    target: List[str]
    line: int


def read_lines(path, encoding: str = "utf-8") -> List[str]:
    """The lines of a text file, split on newlines only (``\\r`` stripped, no empty last line after
    a final newline), so that line numbers are those of any editor and of ``wc -l``."""
    lines = read_text(path, encoding).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def read_parallel(source_path, target_path, encoding: str = "utf-8") -> List[SentencePair]:
    """The sentence pairs of two aligned files; see the module docstring for what is refused."""
    src, tgt = read_lines(source_path, encoding), read_lines(target_path, encoding)
    if len(src) != len(tgt):
        raise DataError(f"{source_path} has {len(src)} lines and {target_path} has {len(tgt)}; "
                        f"expected aligned files, one sentence per line in each")
    pairs = []
    for n, (s, t) in enumerate(zip(src, tgt), 1):
        s_words, t_words = s.split(), t.split()
        if not s_words and not t_words:
            continue
        for words, path, other in ((s_words, source_path, target_path),
                                   (t_words, target_path, source_path)):
            if not words:
                raise DataError(f"{path}:{n}: expected a sentence (the translation of {other}:{n}), "
                                f"found an empty line")
        pairs.append(SentencePair(s_words, t_words, n))
    if not pairs:
        raise DataError(f"{source_path} and {target_path}: expected sentence pairs, found none")
    return pairs


def split_of(name: str):
    """The split a file name says (``train``, ``valid``, ``test``), or None."""
    stem = name.lower()
    parts = stem.replace("-", ".").replace("_", ".").split(".")
    for split, keys in SPLIT_NAMES.items():
        if any(k in parts or stem.startswith(k) for k in keys):
            return split
    return None


def language_files(folder: Path, language: str) -> Dict[str, Path]:
    """split -> the file of that split ending in ``.language`` in ``folder``."""
    found: Dict[str, Path] = {}
    for f in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if not f.name.endswith("." + language):
            continue
        split = split_of(f.name)
        if split is None:
            continue
        if split in found:
            raise DataError(f"{folder}: two {language} files for the {split} split: {found[split].name} "
                            f"and {f.name}; keep one, or give the pair by its prefix "
                            f"({folder / f.name[:-len(language) - 1]})")
        found[split] = f
    return found


def data_folder(folder, tokenized: bool) -> Path:
    """The folder the files are read from: ``folder`` or, when ``tokenized``, its ``tok/``."""
    folder = Path(folder)
    if not tokenized:
        return folder
    tok = folder / TOKENIZED_FOLDER
    if not tok.is_dir():
        raise DataError(f"{folder}: expected a {TOKENIZED_FOLDER}/ subfolder of tokenized files "
                        f"(tokenized is on); found none; turn tokenized off to read the files in "
                        f"{folder} itself")
    return tok


def parallel_files(folder, source: str, target: str, tokenized: bool = False
                   ) -> Dict[str, Tuple[Path, Path]]:
    """split -> (source file, target file) of a data folder; every split found for one language
    must have its file for the other."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"expected a folder of parallel files at {folder}; "
                        f"{'found a file' if folder.exists() else 'nothing is there'}")
    root = data_folder(folder, tokenized)
    src, tgt = language_files(root, source), language_files(root, target)
    for split in sorted(set(src) | set(tgt)):
        if split not in src or split not in tgt:
            have, lang, missing = (src[split], source, target) if split in src else (tgt[split], target, source)
            raise DataError(f"{root}: expected the {missing} file aligned with {have.name} ({split} "
                            f"split, {lang}), found none ending in .{missing}")
    return {split: (src[split], tgt[split]) for split in src}


def pair_paths(path, source: str, target: str, tokenized: bool = False, split: str = "test"
               ) -> Tuple[Path, Path]:
    """The two files ``path`` names: a folder's ``split`` pair, or ``PREFIX.source``,
    ``PREFIX.target`` for a prefix."""
    p = Path(path)
    if p.is_dir():
        files = parallel_files(p, source, target, tokenized)
        if split not in files:
            raise DataError(f"{data_folder(p, tokenized)}: expected a {split} pair of files "
                            f"(*{split}*.{source}, *{split}*.{target}); found none")
        return files[split]
    s, t = Path(f"{p}.{source}"), Path(f"{p}.{target}")
    if not s.is_file() or not t.is_file():
        raise DataError(f"expected a folder of parallel files, or a prefix of two files {s} and {t}, "
                        f"at {p}; found {'a file' if p.exists() else 'neither'}")
    return s, t


def read_parallel_splits(folder, source: str, target: str, tokenized: bool = False,
                         encoding: str = "utf-8") -> Dict[str, List[SentencePair]]:
    """{"train", "valid"?, "test"?} -> sentence pairs of a data folder; it needs a training pair."""
    files = parallel_files(folder, source, target, tokenized)
    if "train" not in files:
        root = data_folder(folder, tokenized)
        names = ", ".join(sorted(p.name for p in root.iterdir())) or "nothing"
        raise DataError(f"{root}: expected a training pair (train*.{source}, train*.{target}); "
                        f"found {names}")
    return {split: read_parallel(s, t, encoding) for split, (s, t) in files.items()}


# ---------------------------------------------------------------- new input, as the tok/ files
_SPLIT = re.compile(r'([&"!?;:()\[\]{}])')
_COMMA = re.compile(r",(?!\d)|(?<!\d),")
_FINAL_STOP = re.compile(r"\.(?=\s|$)")
_CLITIC = re.compile(r"(\w)'(\w)")
_APOS = re.compile(r"'(?!\w)|(?<!\s)'(?=\s|$)|^'")
_ESCAPES = {"&": "&amp;", '"': "&quot;", "'": "&apos;"}


def tokenize_like_tok(line: str) -> List[str]:
    """The words of a raw sentence written as Multi30k's ``tok/`` files write them: lowercased,
    punctuation split off, ``&``, ``"`` and ``'`` escaped as ``&amp;``, ``&quot;``, ``&apos;``
    (the Moses tokenizer's conventions; a close approximation, not the tokenizer itself):
    ``A kid's "toy".`` -> ``a kid &apos;s &quot; toy &quot; .``"""
    text = _SPLIT.sub(r" \1 ", line.lower())
    text = _COMMA.sub(" , ", text)
    text = _FINAL_STOP.sub(" .", text)
    text = _CLITIC.sub(r"\1 '\2", text)
    text = _APOS.sub(" ' ", text)
    return ["".join(_ESCAPES.get(ch, ch) for ch in w) for w in text.split()]


def untokenize_entities(words: List[str]) -> str:
    """Words joined by spaces, with the escapes of :func:`tokenize_like_tok` turned back into
    characters (``&apos;`` -> ``'``)."""
    return html.unescape(" ".join(words))
