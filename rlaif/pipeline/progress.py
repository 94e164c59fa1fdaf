"""Chunk progress of a pipeline stage, with an ETA on stderr (:mod:`rlaif.progress`).

Chunks read back from an earlier run are shown as ``(cached)``; the clock starts before the first chunk,
so the ETA counts only chunks run now. Non-guarantee: nothing is drawn when a stage has no chunk.
"""

from __future__ import annotations

from collections.abc import Callable

from rlaif.progress import StepProgress


def chunk_progress(what: str) -> Callable[[int, int, bool], None]:
    """A ``progress(done, total, cached)`` callback for :func:`rlaif.pipeline.manifest.run_chunks`."""

    bar = StepProgress(f"  {what}", total=0, unit="chunks")  # the clock starts before chunk 1

    def report(done: int, total: int, cached: bool = False) -> None:
        if done == 1:
            bar.total = total
            bar.__enter__()
        bar.advance(cached=cached)
        if done >= total:
            bar.__exit__(None, None, None)

    return report
