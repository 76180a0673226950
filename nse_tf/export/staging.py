"""Write-then-rename: every artifact is staged beside its final name and renamed only once it is checked."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator


def _replace_dir(staged: str, final: str) -> None:
    """Moves a finished directory into place; an older one is renamed away first (a directory cannot be
    replaced by os.replace), so ``final`` is at every moment either the old or the new, complete tree."""
    old = None
    if os.path.lexists(final):
        old = tempfile.mkdtemp(dir=os.path.dirname(final), prefix=".old-")
        os.rmdir(old)
        os.rename(final, old)
    os.rename(staged, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged(path: str) -> Iterator[str]:
    """A temp path in a hidden staging directory beside ``path``; on a clean exit whatever was written
    there (a file or a directory) replaces ``path`` in one rename, otherwise it is deleted. Callers check
    the artifact inside the block, so only artifacts that load and run ever appear under their name."""
    path = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    staging = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        temp = os.path.join(staging, os.path.basename(path))
        yield temp
        if os.path.isdir(temp):
            _replace_dir(temp, path)
        else:
            os.replace(temp, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_synced(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
