"""Which of a list of jobs this process runs (``i/n``), so that several processes share the cores or several
machines share the list; each job is its own resumable run directory, so shards need no coordination."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Shard:
    """Jobs ``index``, ``index + count``, ... of a list."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> "Shard":
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"must be i/n (for example 0/2), got {text!r}") from None
        if not 0 <= index < count:
            raise ValueError(f"must be i/n with 0 <= i < n, got {text!r}")
        return cls(index, count)

    def takes(self, job: int) -> bool:
        return job % self.count == self.index
