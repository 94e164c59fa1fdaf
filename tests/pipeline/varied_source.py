"""A code feedback source for the ``final.prompts: varied`` tests (plugged in as
``varied_source:reference_and_wrong``): each problem's reference solution and a wrong program run in
the run's real sandbox pool, so the executions the final round selects by are real. The chunk's
first problem runs the wrong program twice: its programs all earn one reward."""

from __future__ import annotations

import re

from rlaif.feedback.registry import feedback_source
from rlaif.feedback.result import pair_id
from rlaif.feedback.rlcf import CodeFeedbackResult, CodePairStats
from rlaif.pairs import PairStats
from rlaif.records import PreferencePair
from rlaif.tasks.code import CodeTask


def _fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


def wrong_program(problem) -> str:
    name = re.search(r"def (\w+)", problem.reference_solution).group(1)
    return _fenced(f"def {name}(*args):\n    return None")


@feedback_source(config=None, needs=("sandbox",), writes=("pairs", "judgments", "dropped", "executions"))
def reference_and_wrong(problems, engine, options, context, *, judge_engine=None, sandbox=None):
    task = CodeTask(problems, pool=sandbox)
    first = problems[0].task_id
    items = []
    for p in problems:
        wrong = wrong_program(p)
        items += [(p, wrong), (p, wrong if p.task_id == first else _fenced(p.reference_solution))]
    verdicts = task.verify_many(items)
    executions = [v.evidence for v in verdicts if v.evidence is not None]
    pairs = [
        PreferencePair(
            id=pair_id("reference", 0, p.task_id, right, wrong),
            prompt=task.prompt(p),
            chosen=right,
            rejected=wrong,
            source="reference",
            metadata={"prompt_id": p.task_id},
        )
        for (p, wrong), (_, right) in zip(items[2::2], items[3::2], strict=True)
    ]
    stats = PairStats(source="reference", prompts_in=len(problems), pairs_out=len(pairs))
    code_stats = CodePairStats(
        source="reference",
        problems=len(problems),
        problems_with_pass=len(pairs),
        problems_with_pair=len(pairs),
        pairs=len(pairs),
        candidates=len(items),
        executions=len(executions),
        no_pair={"all_failed": 1},
    )
    result = CodeFeedbackResult(pairs=pairs, stats=stats, executions=executions, code_stats=code_stats)
    result.drop(first, "all_failed")
    return result
