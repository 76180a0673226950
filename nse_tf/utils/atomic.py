"""Write-then-rename, the one way this project writes anything a reader may open: a crash mid-write never
leaves a half-written state file, checkpoint, TFLite file or zoo entry under its name.

``atomic_write_*`` write bytes; ``staged`` hands out a temporary path for a file or a directory that other code
writes (Keras weights, a converter, a whole zoo entry) and renames it into place once the block succeeds."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def staging_path(path: str) -> str:
    """The hidden directory beside ``path`` in which ``staged`` builds it."""
    return os.path.join(os.path.dirname(path), f".staging-{os.path.basename(path)}")


def previous_path(path: str) -> str:
    """Where a directory being replaced waits, between the two renames of ``staged``."""
    return os.path.join(os.path.dirname(path), f".previous-{os.path.basename(path)}")


def restore_interrupted_replace(path: str) -> None:
    """A process killed between the two renames of a directory replacement left the old tree in
    ``previous_path(path)`` and nothing at ``path``: put the old tree back."""
    previous = previous_path(path)
    if os.path.isdir(previous) and not os.path.lexists(path):
        os.replace(previous, path)


def _replace_dir(staged_dir: str, final: str) -> None:
    """Moves a finished directory into place; an older one is renamed away first (a directory cannot be
    replaced by one rename), so ``final`` is at every moment the old tree, the new one, or (after a kill
    between the renames) absent with the old one in ``previous_path(final)``."""
    previous = previous_path(final)
    shutil.rmtree(previous, ignore_errors=True)
    if os.path.lexists(final):
        os.replace(final, previous)
    os.replace(staged_dir, final)
    shutil.rmtree(previous, ignore_errors=True)


@contextlib.contextmanager
def staged(path: str | os.PathLike, overwrite: bool = True) -> Iterator[str]:
    """A temporary path (same base name) in the hidden ``staging_path(path)`` beside ``path``; on a clean exit
    whatever was written there, a file or a directory, replaces ``path``, otherwise it is deleted. Callers
    check the artifact inside the block, so only artifacts that load and run appear under their name.
    With ``overwrite=False`` an existing ``path`` is a ``FileExistsError`` before anything is written."""
    path = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    restore_interrupted_replace(path)
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(path)
    staging = staging_path(path)  # one name per target: a killed write's leftovers go with the next write
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
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
    """Bytes on disk before the rename that publishes them."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
