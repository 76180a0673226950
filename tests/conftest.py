"""Shared pytest setup (the repository root is on sys.path through pyproject's `pythonpath`)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
