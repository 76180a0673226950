"""The NSE search: gates, supernet, a round's trainer, the evolution across rounds, the resumable run, its report, and stand-alone checks of a finished search."""
