"""Run a tool and SIGKILL it at the N-th call of one function: a crash at a chosen point of its work.

    python tests/kill_at_call.py MODULE:ATTRIBUTE.PATH N tools/<tool>.py [flags...]

e.g. ``nse_tf.search.round_trainer:RoundTrainer.evaluate 2`` kills it while it evaluates its second
architecture (before the call runs).
"""

import functools
import importlib
import os
import runpy
import signal
import sys

target, nth = sys.argv[1], int(sys.argv[2])
module_name, _, path = target.partition(":")
owner = importlib.import_module(module_name)
*parents, name = path.split(".")
for part in parents:
    owner = getattr(owner, part)
real = getattr(owner, name)
calls = 0


@functools.wraps(real)
def killing(*args, **kwargs):
    global calls
    calls += 1
    if calls == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)


setattr(owner, name, killing)
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
