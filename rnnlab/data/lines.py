"""Lines of a text file: split at ``\\n`` (a ``\\r`` before it dropped), and nowhere else.

``str.splitlines()`` also splits at U+0085, U+2028, U+2029, \\x0b, \\x0c and \\x1c-\\x1e, which real
text holds inside its lines (cp1252 text read as Latin-1 turns its ellipses into U+0085): every
reader of rnnlab takes its lines from :func:`split_lines`, so such a character stays in its line.
"""
from __future__ import annotations

from typing import List


def split_lines(text: str) -> List[str]:
    """The lines of ``text``: split at ``\\n`` and ``\\r\\n`` only; no empty last line for a text
    that ends with a newline (as ``splitlines``)."""
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]
