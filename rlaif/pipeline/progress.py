"""Chunk progress of a pipeline stage, with an ETA on stderr (:mod:`rlaif.progress`).

Chunks read back from an earlier run are shown as ``(cached)``; the clock starts before the first chunk,
so the ETA counts only chunks run now. Non-guarantee: nothing is drawn when a stage has no chunk.
Evaluation generates in single engine calls; :func:`engine_progress` shows those calls' requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rlaif.progress import StepProgress, generation_label


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


@contextmanager
def engine_progress(engine: Any, label: str) -> Iterator[None]:
    """Progress lines (requests done, ETA, output tok/s) for the engine calls inside the block.

    Why a switch: pipeline engines are built with progress off, because chunked stages draw their own
    chunk progress; a stage that generates in one call (evaluation) turns it on here. Engines without
    a progress display (OpenAI-compatible servers) draw nothing."""
    target = engine
    while "engine" in getattr(target, "__dict__", {}):  # views such as AdapterBoundEngine
        target = target.engine
    if "progress" not in getattr(target, "__dict__", {}):
        yield
        return
    before = target.progress
    target.progress = True
    try:
        with generation_label(label):
            yield
    finally:
        target.progress = before
