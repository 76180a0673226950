"""Reading an absl flagfile as data (``--name=value`` lines), for tools that take another tool's flagfile: the
latency table tool prices the space a search flagfile describes without defining the search's flags."""

from __future__ import annotations


class FlagfileError(ValueError):
    """A flagfile that cannot be read; the message names it."""


def read_flagfile(path: str, seen: tuple[str, ...] = ()) -> dict[str, str]:
    """``--name=value`` lines of a flagfile (comments and blank lines skipped, nested ``--flagfile`` followed;
    later lines win, as absl reads them)."""
    if path in seen:
        raise FlagfileError(f"{path} includes itself")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise FlagfileError(f"cannot read {path} ({err.strerror})") from None
    values: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line.startswith("--"):
            continue
        name, _, value = line[2:].partition("=")
        if name == "flagfile":
            values.update(read_flagfile(value, seen + (path,)))
        else:
            values[name] = value
    return values
