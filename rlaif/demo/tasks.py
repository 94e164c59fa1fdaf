"""Synthetic Python function tasks with unit tests, for the demo's from-scratch code model.

Why synthetic: the demo must learn on 2 CPU cores in minutes with no downloads, so the tasks are
small and the model is tiny, yet the feedback is real: every candidate program is executed against
its asserts in the sandbox. Each task family is parameterised by a constant ``k`` that the model must
copy from the prompt into the code; held-out problems use (family, k) combinations never seen in
training, so a pass there is generalisation, not memorisation.

A plug-in: importing this module registers the problem set ``demo_code`` and the pre-training corpus
``demo:code`` (:mod:`rlaif.tasks.catalog`); the pipeline knows only those names.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rlaif.records import CodeProblem
from rlaif.tasks.catalog import register_corpus, register_problem_set


@dataclass(frozen=True)
class Family:
    name: str  # function name pattern, {k} filled in
    arg: str
    spec: str  # task text, {name} and {k} filled in
    body: str  # return expression
    inputs: tuple  # test inputs


FAMILIES = [
    Family("add_{k}", "x", "Write a function {name}(x) that returns x plus {k}.", "x + {k}", (1, 7, -3)),
    Family("sub_{k}", "x", "Write a function {name}(x) that returns x minus {k}.", "x - {k}", (10, 2, -5)),
    Family("times_{k}", "x", "Write a function {name}(x) that returns x times {k}.", "x * {k}", (2, 5, -1)),
    Family(
        "above_{k}",
        "x",
        "Write a function {name}(x) that returns True if x is greater than {k}.",
        "x > {k}",
        (0, 50, 12),
    ),
    Family("mod_{k}", "x", "Write a function {name}(x) that returns x modulo {k}.", "x % {k}", (17, 40, 9)),
    Family(
        "repeat_{k}",
        "s",
        "Write a function {name}(s) that returns s repeated {k} times.",
        "s * {k}",
        ("ab", "x", ""),
    ),
    Family(
        "sum_plus_{k}",
        "xs",
        "Write a function {name}(xs) that returns the sum of xs plus {k}.",
        "sum(xs) + {k}",
        ([1, 2], [], [5, -5, 3]),
    ),
]


def _solution(fam: Family, k: int) -> tuple[str, str]:
    name = fam.name.format(k=k)
    return name, f"def {name}({fam.arg}):\n    return {fam.body.format(k=k)}\n"


def make_problem(fam: Family, k: int) -> CodeProblem:
    name, code = _solution(fam, k)
    env: dict = {}
    exec(code, env)  # our own reference solution, to compute expected outputs
    tests = [f"assert {name}({inp!r}) == {env[name](inp)!r}" for inp in fam.inputs]
    return CodeProblem(
        task_id=f"demo/{name}",
        prompt=fam.spec.format(name=name, k=k),
        entry_point=name,
        tests=tests,
        reference_solution=code,
        source_format="native",
        metadata={"family": fam.name, "k": k},
    )


def demo_problems(
    k_max: int = 40, heldout_fraction: float = 0.3, seed: int = 0
) -> tuple[list[CodeProblem], list[CodeProblem]]:
    """(train, held-out) problems; the split is random over (family, k) pairs and fixed by ``seed``."""
    problems = [make_problem(f, k) for f in FAMILIES for k in range(2, k_max + 1)]
    rng = random.Random(seed)
    rng.shuffle(problems)
    cut = int(len(problems) * heldout_fraction)
    return problems[cut:], problems[:cut]


def sft_corpus(problems: list[CodeProblem], chat_template_render) -> str:
    """Chat-formatted prompt → reference solution examples, one per line block, for pre-training."""
    blocks = []
    for p in problems:
        convo = [
            {"role": "user", "content": p.prompt},
            {"role": "assistant", "content": p.reference_solution},
        ]
        blocks.append(chat_template_render(convo))
    return "\n".join(blocks)


def _demo_split(split: str) -> list[CodeProblem]:
    train, held = demo_problems()
    return {"train": train, "heldout": held, "all": train + held}[split]


def _demo_corpus(render) -> str:
    train, _ = demo_problems()
    return sft_corpus(train, render)


# the demo is a plug-in: the pipeline reads these by name (rlaif.tasks.catalog), never imports this module
register_problem_set("demo_code", _demo_split)
register_corpus("demo:code", _demo_corpus)
