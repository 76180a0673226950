"""What the command-line tools share: one-line flag errors that name the flag, with exit code 2."""

from __future__ import annotations

import re
import sys
from typing import Callable

from absl import flags


class FlagError(ValueError):
    """A flag value the tool cannot use; printed as ``<tool>: error: --<flag>: <message>``."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"--{flag}: {message}")
        self.flag = flag


def flags_parser(prog: str) -> Callable[[list[str]], list[str]]:
    """absl's parser for ``app.run``, except that a flag it rejects (unknown name, bad literal) ends with
    one line and exit code 2 like every other flag error, not absl's FATAL banner and exit code 1."""

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
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
