"""Progress with step counts and ETA for long loops (generation and judging chunks, training steps).

Why one helper: every long stage should look the same to a user. On a terminal it is a rich bar
(description, bar, ``done/total``, elapsed, remaining time); when stderr is a file or a pipe (logs, CI)
it is plain lines, ``feedback: 3/20 chunks, 0:00:12 elapsed, ETA 0:00:58``, at most one per
:data:`PLAIN_INTERVAL_S` seconds plus the last one, so a log stays readable. A display that is not
resumed in chunks (an engine call's requests) also writes a ``0/N`` line when it starts, since its
first request may take minutes to finish. Steps that were not done now but read back from an earlier
run are counted as ``(cached)`` and left out of the ETA.

Guarantees: writes only to stderr; never raises from a display problem into the caller's loop.
Non-guarantees: the ETA assumes the remaining steps take as long as the ones done so far in this run.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta

PLAIN_INTERVAL_S = 10.0
_now = time.monotonic  # the clock (a seam for tests)
_generation_label: ContextVar[str] = ContextVar("generation_label", default="generating")
_OUTPUT_SPEED = re.compile(r"output:\s*([0-9.]+)\s*toks/s")


def tokens_per_s(tokens: float, seconds: float) -> str:
    """The throughput note every progress line uses: ``"123 tok/s"``."""
    return f"{tokens / max(seconds, 1e-9):.0f} tok/s"


@contextmanager
def generation_label(label: str) -> Iterator[None]:
    """Name the engine progress lines drawn inside the block (``eval/code: 3/40 requests, ...``)."""
    token = _generation_label.set(label)
    try:
        yield
    finally:
        _generation_label.reset(token)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(max(0.0, seconds))))


class StepProgress:
    """``with StepProgress("feedback", total=20, unit="chunks") as p: ... p.advance(cached=False)``.

    ``announce``: a plain display writes ``0/N`` on entering, for work whose first step is slow; off by
    default because the chunked stages enter the display only once their first chunk is done."""

    def __init__(self, description: str, total: int, unit: str = "steps", stream=None, announce=False):
        self.description = description
        self.announce = announce
        self.total = max(0, int(total))
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.cached = 0
        self.start = _now()
        self._last_plain = 0.0
        self._bar = None
        self._task = None

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> StepProgress:
        if self._is_terminal():
            try:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                    TimeRemainingColumn,
                )

                self._bar = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn(self.unit),
                    TimeElapsedColumn(),
                    TextColumn("ETA"),
                    TimeRemainingColumn(),
                    console=Console(file=self.stream),
                    transient=False,
                )
                self._bar.start()
                self._task = self._bar.add_task(self.description, total=self.total or None)
            except Exception:  # a display problem must never stop the work
                self._bar = None
        if self._bar is None and self.announce:  # a log shows the work began before its first step ends
            self._plain(force=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            try:
                self._bar.stop()
            except Exception:
                pass
            self._bar = None
        elif self.done and self.done != self.total:  # stopped early: say where
            self._plain(force=True)

    # -- updates ----------------------------------------------------------------------------------
    def advance(self, n: int = 1, cached: bool = False, note: str = "") -> None:
        """Count ``n`` steps done; ``cached``: read back from an earlier run rather than done now."""
        self.done += n
        if cached:
            self.cached += n
        if self._bar is not None:
            try:
                desc = self.description + (f" ({self.cached} cached)" if self.cached else "")
                self._bar.update(self._task, advance=n, description=desc + (f" {note}" if note else ""))
            except Exception:
                pass
            return
        self._plain(force=cached or self.done >= self.total, note=note, cached_now=cached)

    def eta_seconds(self) -> float | None:
        """Remaining time from the pace of the steps done in this run (cached ones excluded)."""
        fresh = self.done - self.cached
        if fresh <= 0 or self.total <= self.done:
            return None if fresh <= 0 else 0.0
        return (_now() - self.start) / fresh * (self.total - self.done)

    def line(self, note: str = "", cached_now: bool = False) -> str:
        elapsed = _now() - self.start
        parts = [f"{self.description}: {self.done}/{self.total} {self.unit}"]
        if cached_now:
            parts[0] += " (cached)"
        parts.append(f"{_clock(elapsed)} elapsed")
        eta = self.eta_seconds()
        if eta is not None and self.done < self.total:
            parts.append(f"ETA {_clock(eta)}")
        if note:
            parts.append(note)
        return ", ".join(parts)

    # -- helpers ----------------------------------------------------------------------------------
    def _is_terminal(self) -> bool:
        try:
            return self.stream.isatty()
        except Exception:
            return False

    def _plain(self, force: bool = False, note: str = "", cached_now: bool = False) -> None:
        now = _now()
        if not force and now - self._last_plain < PLAIN_INTERVAL_S and self.done > 1:
            return
        self._last_plain = now
        try:
            self.stream.write(self.line(note, cached_now) + "\n")
            self.stream.flush()
        except Exception:
            pass


class TqdmLike:
    """The part of tqdm's interface vLLM's ``LLM.generate(use_tqdm=callable)`` uses, drawn by
    :class:`StepProgress`, so engine progress looks like every other progress display. vLLM writes its
    token speeds into ``postfix``; the output speed becomes the line's ``tok/s`` note. The description
    is the one :func:`generation_label` set around the call, if any. vLLM also wraps its prompt list
    (``tqdm(prompts, desc="Rendering prompts")``): that pass is iterated without a display."""

    def __init__(self, iterable=None, *, total: int = 0, desc: str | None = None, **_):
        self._iterable = iterable
        self.n = 0
        self._postfix = ""
        self._note = ""
        self._progress = None
        if iterable is None:
            label = _generation_label.get()
            bar = StepProgress(label, total=total or 0, unit="requests", announce=True)
            self._progress = bar.__enter__()

    def __iter__(self):
        return iter(self._iterable if self._iterable is not None else ())

    @property
    def postfix(self) -> str:
        return self._postfix

    @postfix.setter
    def postfix(self, text: str) -> None:
        self._postfix = str(text)
        match = _OUTPUT_SPEED.search(self._postfix)
        if match:
            self._note = f"{float(match.group(1)):.0f} tok/s"

    @property
    def format_dict(self) -> dict:
        start = self._progress.start if self._progress is not None else _now()
        return {"elapsed": max(_now() - start, 1e-9), "n": self.n}

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._progress is not None:
            self._progress.advance(n, note=self._note)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
