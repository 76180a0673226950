"""JSON read with a bounded nesting depth: Python's parser recurses once per level, so a file nested 100,000 deep
ends in RecursionError; here it is a ValueError naming the depth, found by a scan that does not recurse."""

from __future__ import annotations

import json
import os
import re
from typing import Any

MAX_DEPTH = 64  # the project's files nest at most 5 deep; Python's parser copes with about 1,000
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # strings whole (their brackets do not count), brackets


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """ValueError if ``text`` opens more than ``max_depth`` arrays or objects inside one another."""
    depth = 0
    for token in _TOKENS.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels")
        elif char in "]}":
            depth -= 1


def loads(text: str, max_depth: int = MAX_DEPTH) -> Any:
    check_depth(text, max_depth)
    return json.loads(text)


def load(path: str | os.PathLike, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON of ``path``; ValueError (JSONDecodeError, UnicodeDecodeError, or too deep) when it is not."""
    with open(path, encoding="utf-8") as f:
        return loads(f.read(), max_depth)
