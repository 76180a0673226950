"""What the command-line tools share: one-line flag errors that name the flag, with exit code 2."""

from __future__ import annotations

import re
import sys
from types import TracebackType
from typing import Callable

from absl import flags


class FlagError(ValueError):
    """A flag value the tool cannot use; printed as ``<tool>: error: --<flag>: <message>``."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"--{flag}: {message}")
        self.flag = flag


def _flagfile_being_read(tb: TracebackType | None) -> str | None:
    """The flagfile absl was reading where ``tb`` was raised (the innermost one, when nested)."""
    name = None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_get_flag_file_lines":
            name = tb.tb_frame.f_locals.get("filename", name)
        tb = tb.tb_next
    return name


def _undecodable(flagfile: str | None, err: UnicodeDecodeError) -> str:
    """What is wrong with ``flagfile``: where it stops being UTF-8 (``err`` counts from absl's read buffer)."""
    if flagfile is None:
        return f"a flagfile is not text in the {err.encoding} encoding ({err.reason})"
    try:
        with open(flagfile, "rb") as f:
            f.read().decode("utf-8")
    except UnicodeDecodeError as utf8:
        return f"{flagfile} is not UTF-8 text ({utf8.reason} at byte {utf8.start})"
    except OSError:
        pass
    return f"{flagfile} is not text in the {err.encoding} encoding ({err.reason}); run with PYTHONUTF8=1"


def flags_parser(prog: str) -> Callable[[list[str]], list[str]]:
    """absl's parser for ``app.run``, except that a flag it rejects (unknown name, bad literal) or a flagfile that
    is not UTF-8 text ends with one line and exit code 2 like every other flag error, not absl's FATAL banner
    and exit code 1 or a traceback."""

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
        except UnicodeDecodeError as err:  # absl opens flagfiles in the locale's encoding and does not catch this
            print(f"{prog}: error: --flagfile: {_undecodable(_flagfile_being_read(err.__traceback__), err)}",
                  file=sys.stderr)
            sys.exit(2)
        except flags.Error as err:
            flagname = getattr(err, "flagname", None)
            if isinstance(err, flags.UnrecognizedFlagError) and flagname:
                message = f"--{flagname}: unknown flag"
            else:  # absl says "flag --epochs=ten: invalid literal ...": lead with the flag, as every error does
                bad_value = re.match(r"flag --([\w.-]+)=(.*?): (.*)", str(err), re.S)
                message = (f"--{bad_value[1]}: {bad_value[3]} (got {bad_value[2]!r})" if bad_value
                           else str(err))
            print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
            sys.exit(2)

    return parse
