"""Per-round held-out metric: the pass rate of the policy's replies on verifiable instructions.

No judge is involved: each held-out prompt lists its instructions in ``metadata["instructions"]`` (the
format :mod:`rlaif.instructions` writes), and :func:`rlaif.instructions.check_all` decides each reply.
The training signal of an instruction-following run (e.g. RLCD affixes) never calls the checker, so
this is a metric the loop cannot optimise directly.

Guarantees: sampling seeds derive from the run seed and the prompt id only (a re-run gives the same
replies; greedy by default); a held-out file in which no prompt carries instructions is an error, and
prompts without instructions are counted (``instruction_unscored``), never silently dropped; a
malformed instruction is an error naming the prompt.
"""

from __future__ import annotations

from rlaif.engines.base import Sampling
from rlaif.errors import ConfigError
from rlaif.instructions import check_all, pass_summary
from rlaif.records import derive_seed


def instruction_eval(ctx, engine, rows: list[dict]) -> dict:
    """Generate one reply per sample for every held-out prompt, check it, append rows, return metrics."""
    from rlaif.pipeline.inputs import load_prompt_source

    ev = ctx.cfg.eval
    opts = ev.instructions
    prompts = load_prompt_source(opts.prompts, "eval.instructions.prompts")
    if not any(p.metadata.get("instructions") for p in prompts):
        raise ConfigError(
            f"eval.instructions.prompts: no prompt in {opts.prompts.path} has 'instructions' "
            "(build the sets with `python -m rlaif.instructions OUT_DIR`)"
        )
    sampling = [
        Sampling(
            n=opts.samples,
            temperature=opts.temperature,
            max_tokens=ev.max_tokens,
            seed=derive_seed(ctx.cfg.seed, "eval_instructions", p.id),
        )
        for p in prompts
    ]
    outputs = engine.generate([p.messages for p in prompts], sampling)
    results = []
    for p, comps in zip(prompts, outputs, strict=True):
        specs = p.metadata.get("instructions") or []
        for c in comps:
            ok = check_all(c.text, specs, where=f"prompt {p.id}") if specs else False
            results.append((specs, ok))
            rows.append(
                {
                    "kind": "instructions",
                    "id": p.id,
                    "sample": c.index,
                    "text": c.text,
                    "tokens": len(c.token_ids or []),
                    "instructions": specs,
                    "passed": ok,
                }
            )
    return pass_summary(results)
