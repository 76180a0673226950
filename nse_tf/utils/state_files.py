"""The one reader of the state and result files runs leave behind (train_config.json, result.json, checkpoint.json,
qat_state.json, evolution_state.json, a search's config.json, a zoo entry's metadata.json).

Why: such a file, truncated by a full disk, emptied, or edited by hand (``[]`` where an object belongs,
``"history": [1]``, ``5``), ended in a JSONDecodeError, AttributeError or KeyError traceback far from the file. Here
it is one line naming the file, what is wrong with it and what to do (delete it, rerun the step, resume from the
previous checkpoint), raised as the caller's own error class so each tool's one-line handling applies."""

from __future__ import annotations

import os
from typing import Any, Mapping

from nse_tf.utils import bounded_json

# What to do about a damaged file, in the words the messages use.
DELETE_AND_RERUN = "delete it and rerun the same command"
RERUN_STEP = "rerun the step that writes it"

# The JSON types a field may be required to have; ``NUMBER`` takes ints and floats but not booleans.
NUMBER = (int, float)
Types = type | tuple[type, ...]


class StateFileError(ValueError):
    """A state or result file that is damaged or not of the expected shape; the message names it."""


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages: 'an object', 'an array', 'a number', ..."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null" if value is None else type(value).__name__


def _type_name(types: Types) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "null"}
    types = types if isinstance(types, tuple) else (types,)
    if set(types) >= {int, float}:
        types = tuple(t for t in types if t is not int)
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def is_a(value: Any, types: Types) -> bool:
    """``isinstance`` with JSON's sense of numbers: a boolean is not a number, an integral float is an integer."""
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, float) and int in types and float not in types:
        return value.is_integer()
    return isinstance(value, types)


def damaged(path: str, problem: str, fix: str, error: type[Exception] = StateFileError,
            label: str = "damaged") -> Exception:
    """The one-line error of a damaged ``path``: ``<path>: <label> (<problem>); <fix>``."""
    return error(f"{path}: {label} ({' '.join(problem.split())}); {fix}")


def check_fields(data: Mapping[str, Any], fields: Mapping[str, Types], path: str, fix: str,
                 error: type[Exception] = StateFileError, label: str = "damaged") -> None:
    """Each of ``fields`` present in ``data`` with its type (None in a type tuple allows null)."""
    for key, types in fields.items():
        if key not in data:
            raise damaged(path, f"it has no {key!r}", fix, error, label)
        if not is_a(data[key], types):
            raise damaged(path, f"{key!r} is {json_type(data[key])}, not {_type_name(types)}", fix, error, label)


def read_json(path: str | os.PathLike, fix: str, *, expect: Types = dict, fields: Mapping[str, Types] | None = None,
              error: type[Exception] = StateFileError, label: str = "damaged", missing: str | None = None) -> Any:
    """The JSON of ``path``, which must be ``expect`` (an object by default) holding ``fields``; otherwise one
    ``error`` line naming the file, what is wrong and ``fix``. An absent file is ``error`` too, with ``missing``
    as its advice when given (else FileNotFoundError, for callers to whom absence means something)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if missing is None:
            raise
        raise error(f"{path}: missing; {missing}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a file; {fix}") from None
    except OSError as err:
        raise error(f"{path}: cannot read it ({err.strerror or err}); {fix}") from None
    if not raw.strip():
        raise damaged(path, "the file is empty: a write cut short?", fix, error, label)
    try:
        data = bounded_json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise damaged(path, f"not UTF-8 text: {err.reason} at byte {err.start}", fix, error, label) from None
    except ValueError as err:  # JSONDecodeError, or nested too deep
        raise damaged(path, f"not valid JSON: {err}", fix, error, label) from None
    if not is_a(data, expect):
        raise damaged(path, f"it holds {json_type(data)}, not {_type_name(expect)}", fix, error, label)
    if fields:
        check_fields(data, fields, path, fix, error, label)
    return data
