"""Shared plumbing: atomic writes, command-line errors, memory settings, metrics."""
