"""Run a tool and SIGKILL it at the moment a file is about to be renamed into place: the worst instant of an
atomic write (the new content exists only as a temporary file).

    python tests/kill_at_replace.py SUFFIX N tools/<tool>.py [flags...]

kills the process at the N-th ``os.replace`` whose destination ends with SUFFIX.
"""

import os
import runpy
import signal
import sys

suffix, nth = sys.argv[1], int(sys.argv[2])
real_replace = os.replace
seen = 0


def replace(src, dst, *args, **kwargs):
    global seen
    if os.fspath(dst).endswith(suffix):
        seen += 1
        if seen == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)


os.replace = replace
sys.argv = sys.argv[3:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
runpy.run_path(sys.argv[0], run_name="__main__")
