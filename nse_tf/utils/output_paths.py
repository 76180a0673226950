"""Where a tool writes: checked before its long work, and an OS error on it said in one line naming the path.

Why: a run directory that is an existing file, sits on a read-only mount or is not ours, and a disk that fills,
otherwise surface as FileExistsError, PermissionDeniedError or h5py tracebacks, some only after an hour of work
(``evaluate.py --output`` wrote its report after the whole measurement)."""

from __future__ import annotations

import errno
import os
import tempfile

# The errors of a path that cannot be written, and what to do about each.
ADVICE = {
    errno.ENOSPC: "free some space and rerun",
    errno.EDQUOT: "free some space (the disk quota is reached) and rerun",
    errno.EROFS: "it is on a read-only file system: choose a writable path",
    errno.EACCES: "this user may not write there: choose another path or fix its permissions",
    errno.EPERM: "this user may not write there: choose another path or fix its permissions",
    errno.ENOTDIR: "a part of the path is a file, not a directory: choose another path",
    errno.EEXIST: "a file of that name is in the way: choose another path",
    errno.EISDIR: "it is a directory: name a file",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
}
DISK_ERRORS = frozenset(ADVICE)


class OutputError(ValueError):
    """A path a tool must write cannot be written; the message names it, says why and what to do."""


def describe(path: str, err: OSError) -> str:
    """``<path>: cannot write there (<reason>); <advice>``: one line for an OS error on ``path``."""
    reason = err.strerror or str(err) or type(err).__name__
    advice = ADVICE.get(err.errno or -1, "check the path and the disk, then rerun")
    return f"{path}: cannot write there ({reason}); {advice}"


def check_dir(path: str, create: bool = True) -> str:
    """``path`` as a directory this process can create files in, or OutputError now, before any work: the one
    probe that sees read-only mounts, permissions (also under root's exceptions) and files in the way alike is to
    create a file there. With ``create`` an absent ``path`` is made; without, its nearest existing ancestor is
    probed instead, so that a check leaves nothing behind."""
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputError(f"{path}: exists and is not a directory; choose another path or move the file away")
    probed = path
    try:
        if create:
            os.makedirs(path, exist_ok=True)
        else:
            while not os.path.isdir(probed):
                if os.path.lexists(probed):
                    raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
                parent = os.path.dirname(os.path.abspath(probed))
                if parent == os.path.abspath(probed):
                    break
                probed = parent
        fd, probe = tempfile.mkstemp(dir=probed, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(describe(path, err)) from None
    return path


def check_file(path: str) -> str:
    """``path`` as a file that can be written (atomically, so its directory must take a new file), or
    OutputError now: for tools that write their output only at the end."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OutputError(f"{path}: is a directory; name a file")
    check_dir(os.path.dirname(os.path.abspath(path)), create=False)
    return path


# TensorFlow raises its own errors for a write the OS refused (ResourceExhaustedError for a full disk,
# FailedPreconditionError or PermissionDeniedError for a read-only or foreign directory); their messages carry the
# OS's words, by which they are told from TensorFlow's other errors of those classes.
_TF_WRITE_ERRORS = ("ResourceExhaustedError", "FailedPreconditionError", "PermissionDeniedError", "UnknownError",
                    "InternalError", "NotFoundError", "AlreadyExistsError")


def disk_error(err: BaseException) -> OSError | None:
    """``err`` as the OSError of a write the disk refused (full, read-only, not permitted, a file in the way),
    whether raised by Python, h5py or TensorFlow; None for any other error, which stays a bug to report."""
    if isinstance(err, OSError):
        return err if err.errno in DISK_ERRORS else None
    if type(err).__name__ in _TF_WRITE_ERRORS:
        text = str(getattr(err, "message", None) or err)
        for code in sorted(DISK_ERRORS):
            if os.strerror(code) in text:
                return OSError(code, os.strerror(code))
    return None


def write_failure(path: str, err: BaseException) -> OutputError | None:
    """The one-line OutputError naming ``path`` for a write the disk refused (``disk_error``); None otherwise."""
    refused = disk_error(err)
    return None if refused is None else OutputError(describe(path, refused))


def output_error(err: BaseException, path: str) -> OutputError | None:
    """``err`` as the OutputError of a tool whose output ``path`` is in use, unusable or full (an OutputError
    itself, or a write the disk refused); None for any other error, which a tool re-raises."""
    return err if isinstance(err, OutputError) else write_failure(path, err)


def output_error_line(err: BaseException, flag: str, path: str) -> str | None:
    """``output_error`` as a tool's ``--<flag>: ...`` line; None for any other error."""
    failure = output_error(err, path)
    return None if failure is None else f"--{flag}: {failure}"
