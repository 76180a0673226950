"""One process per run directory (and per zoo entry being written): a lock file created atomically (O_CREAT |
O_EXCL) holding the owner's pid, host and process start time.

Why: two trainings in one run directory both exit 0 with every epoch twice in history.csv, two searches train and
save the same round, and two zoo writes of one name delete each other's staging folder. A lock whose process is
gone (kill -9, a crash, a reboot) is taken over with one line; a live one refuses with one line naming the
directory and its holder. The lock file is removed when the work ends, whatever the outcome."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import time
from typing import Any, Callable, Iterator

from nse_tf.utils.output_paths import OutputError, check_dir, describe

LOCK_NAME = ".lock"
TAKEOVER_SUFFIX = ".takeover"
# A lock file still empty after this long was left by a process killed between creating and writing it.
EMPTY_GRACE_S = 2.0
# A takeover takes milliseconds; a ``.takeover`` file older than this was left by a process killed in one.
TAKEOVER_GRACE_S = 30.0
_ATTEMPTS = 50
# lock path -> the text this process wrote into it, and whether its acquire made the directory
_held: dict[str, tuple[str, bool]] = {}


class RunLockError(OutputError):
    """The directory is locked by another live process (or cannot be locked); the message names both."""


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks after boot, from /proc), so a reused pid is not taken for the
    lock's owner; None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_record(tool: str | None = None) -> dict[str, Any]:
    """What a lock says about its owner: this process."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": process_start(os.getpid()),
            "tool": tool or os.path.basename(sys.argv[0] or "python"),
            "since": datetime.datetime.now().isoformat(timespec="seconds")}


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _parse(text: str) -> dict[str, Any] | None:
    try:
        owner = json.loads(text)
    except ValueError:
        return None
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int) or not isinstance(owner.get("host"), str):
        return None
    return owner


def _age(path: str) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0


def holder_alive(owner: dict[str, Any]) -> bool | None:
    """Whether the lock's owner still runs: True or False on this host, None (unknown) on another."""
    if owner["host"] != socket.gethostname():
        return None
    pid = owner["pid"]
    if pid <= 0:
        return False
    if pid == os.getpid():  # this process holds no such lock (``acquire`` checks first): an earlier one's
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        pass
    except OSError:
        return False
    start = owner.get("start")
    now = process_start(pid)
    return not (start is not None and now is not None and now != start)  # a reused pid: another process


def describe_holder(owner: dict[str, Any]) -> str:
    return (f"{owner.get('tool') or 'a process'} (pid {owner['pid']} on {owner['host']}"
            f"{', since ' + str(owner['since']) if owner.get('since') else ''})")


def _take_over(path: str, stale: str) -> None:
    """Remove the stale lock at ``path`` if it still holds ``stale``: one process at a time (the one that creates
    the ``.takeover`` file), so two newcomers never both remove a lock, nor one remove the other's new lock."""
    breaker = path + TAKEOVER_SUFFIX
    try:
        fd = os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        if _age(breaker) > TAKEOVER_GRACE_S:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(breaker)
        else:
            time.sleep(0.05)
        return
    try:
        if _read(path) == stale:
            os.unlink(path)
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(breaker)


def acquire(directory: str, name: str = LOCK_NAME, tool: str | None = None, what: str = "run directory",
            log: Callable[[str], None] = _log, subject: str | None = None) -> str:
    """Lock ``directory`` (made if absent) by creating ``directory/name``; its path. RunLockError when a live
    process holds it (or one on another host, whose liveness cannot be told), OutputError when the directory
    cannot be written. Messages name ``subject`` (default: the directory) and advise another ``what``."""
    created = not os.path.isdir(directory)
    check_dir(directory)
    subject = subject or directory
    path = os.path.join(directory, name)
    if path in _held:
        raise RunLockError(f"{subject}: this process already holds its lock ({path}); one {what} serves one "
                           "run at a time")
    text = json.dumps(owner_record(tool), sort_keys=True) + "\n"
    announced: set[str] = set()  # the stale locks already said to be taken over
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            current = _read(path)
            if current is None:
                continue  # released just now: try again
            owner = _parse(current)
            if owner is None:  # being written this very moment, or left empty by a process killed right then
                if _age(path) > EMPTY_GRACE_S:
                    _take_over(path, current)
                else:
                    time.sleep(0.1)
                continue
            alive = holder_alive(owner)
            if alive is False:
                if current not in announced:
                    log(f"{subject}: taking over the lock of {describe_holder(owner)}, which is no longer running")
                    announced.add(current)
                _take_over(path, current)
                continue
            remedy = (f"if it is no longer running there, delete {path}" if alive is None
                      else "wait for it to finish, or use another " + what)
            raise RunLockError(f"{subject} is in use by {describe_holder(owner)}; {remedy}")
        except OSError as err:
            raise OutputError(describe(directory, err)) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:  # a full disk: nothing of ours stays behind
            with contextlib.suppress(OSError):
                os.unlink(path)
            if created:
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
            raise OutputError(describe(directory, err)) from None
        _held[path] = (text, created)
        return path
    raise RunLockError(f"{subject}: could not take its lock {path} after {_ATTEMPTS} tries (other processes keep "
                       "taking it); rerun")


def release(path: str) -> None:
    """Remove the lock at ``path`` if it is still this process's (a takeover by another never loses its lock), and
    the directory if the lock made it and nothing else was written there (a tool refused after the lock)."""
    held = _held.pop(path, None)
    if held is None:
        return
    text, created = held
    if _read(path) == text:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    if created:
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))


@contextlib.contextmanager
def run_lock(directory: str, name: str = LOCK_NAME, tool: str | None = None, what: str = "run directory",
             log: Callable[[str], None] = _log, subject: str | None = None) -> Iterator[str]:
    """``directory`` locked for the block (``acquire``); released when it ends, however it ends."""
    path = acquire(directory, name, tool, what, log, subject)
    try:
        yield path
    finally:
        release(path)


def shard_lock_name(shard: str) -> str:
    """The lock of a search's verification shard ``i/n``: shard 0 (which also runs the search itself) takes the
    run directory's own lock, shard k > 0 its own, so the shards of one run directory run side by side while a
    second process of the same shard is refused."""
    index = shard.split("/", 1)[0].strip()
    return LOCK_NAME if index in ("", "0") else f"{LOCK_NAME}-verify-{index}"


def entry_lock_name(entry: str) -> str:
    """The lock of zoo entry ``entry``, beside it in the zoo folder (the entry folder itself is replaced by a
    rename, so a lock inside it would go with it)."""
    return f"{LOCK_NAME}-{entry}"


def search_lock_name(verify_shard: str, tf_config: str | None = None) -> str:
    """The lock a search process takes in its run directory: its verification shard's (``shard_lock_name``), and
    for a worker of a multi-worker search (``TF_CONFIG``'s task) other than the chief, one of its own: the workers
    of one search share its run directory by design."""
    name = shard_lock_name(verify_shard)
    try:
        config = json.loads(tf_config) if tf_config else {}
        task, cluster = config.get("task") or {}, config.get("cluster") or {}
        kind, index = task.get("type"), int(task.get("index", 0))
    except (ValueError, TypeError, AttributeError):
        return name  # TensorFlow refuses such a TF_CONFIG itself
    if not cluster or kind is None or kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster):
        return name
    return f"{name}-{kind}-{index}"

