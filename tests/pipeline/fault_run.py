"""``python fault_run.py C:N CONFIG``: ``rlaif run CONFIG`` that SIGKILLs itself at the start of the N-th
engine call made while feedback chunk C (0-based) is processed, i.e. at an exact point mid-stage.

The hook lives here, with the tests, and patches the run's engine view and its feedback stage from
outside: production code carries no fault state.
"""

from __future__ import annotations

import os
import signal
import sys

from rlaif.pipeline import context, feedback_stage


def install(point: str) -> None:
    target = tuple(int(x) for x in point.split(":"))
    state = {"chunk": -1, "calls": 0}
    run_source, generate = feedback_stage.run_source, context.AdapterBoundEngine.generate

    def counting_source(spec, prompts, engine, options, source_context, **kw):
        state.update(chunk=source_context.chunk, calls=0)
        return run_source(spec, prompts, engine, options, source_context, **kw)

    def killing_generate(self, *args, **kw):
        state["calls"] += 1
        if (state["chunk"], state["calls"]) == target:
            os.kill(os.getpid(), signal.SIGKILL)
        return generate(self, *args, **kw)

    feedback_stage.run_source = counting_source
    context.AdapterBoundEngine.generate = killing_generate


if __name__ == "__main__":
    install(sys.argv[1])
    from rlaif.cli import main

    sys.argv = ["rlaif", "run", *sys.argv[2:]]
    sys.exit(main())
