"""What the command-line tools share: one-line flag errors that name the flag, with exit code 2."""

from __future__ import annotations

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
            unknown = isinstance(err, flags.UnrecognizedFlagError) and flagname
            print(f"{prog}: error: {f'--{flagname}: unknown flag' if unknown else err}", file=sys.stderr)
            sys.exit(2)

    return parse
