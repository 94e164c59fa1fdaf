"""How well does the policy judge its own instruction following? Agreement of the contrastive-likelihood
self-judge used by ``instruction_contrast`` (``candidates: N``) with the programmatic checker, against
two baselines measured on the same candidates in the same run: a coin (0.5) and "prefer the shorter
reply".

For every prompt, N replies are sampled with the instruction reminded, exactly as the pipeline does
(the source itself is called). Among each prompt's candidates, every two replies on which the checker
disagrees (one follows the instruction, one does not) is a labelled pair; the judge agrees when it
gives the following reply the higher contrast. Also reported: how often the candidate the judge picks
follows the instruction, against the mean over candidates (what a random pick gives).

    .venv/bin/python benchmarks/instruction_judge_agreement.py \\
        [--model models/smollm2-135m-instruct --prompts prompts/instructions/heldout.jsonl --candidates 4]

Caveat printed with the figures: pairs from one prompt share that prompt, so the Wilson interval
(which assumes independent pairs) is somewhat too narrow; the per-prompt figures do not have that issue.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def agreement(pairs) -> dict:
    """Labelled candidate pairs -> agreement of the contrast and of prefer-shorter with the checker."""
    from rlaif.instructions import check_all, wilson_interval
    from rlaif.tasks.metric import paired_change

    judge_right: dict[str, bool] = {}
    shorter_right: dict[str, bool] = {}
    picked = mean_pass = prompts = 0.0
    scored = candidates = 0
    for pair in pairs:
        c = pair.metadata["candidates"]
        specs = pair.metadata["instructions"]
        ok = [check_all(t, specs) for t in c["texts"]]
        prompts += 1
        picked += ok[c["chosen"]]
        mean_pass += sum(ok) / len(ok)
        candidates += len(ok)
        scored += sum(v is not None for v in c["contrast"])
        for a, b in itertools.combinations(range(len(ok)), 2):
            if ok[a] == ok[b] or c["contrast"][a] is None or c["contrast"][b] is None:
                continue
            good, bad = (a, b) if ok[a] else (b, a)
            key = f"{pair.id}:{good}>{bad}"
            judge_right[key] = c["contrast"][good] > c["contrast"][bad]
            shorter_right[key] = len(c["texts"][good]) < len(c["texts"][bad])
    labelled, judge, shorter = len(judge_right), sum(judge_right.values()), sum(shorter_right.values())
    # the same labelled pairs: right only by the judge ("gained") / only by length ("lost")
    versus = paired_change(shorter_right, judge_right)

    def rate(k: int) -> dict:
        lo, hi = wilson_interval(k, labelled)
        return {
            "agreement": round(k / labelled, 4) if labelled else None,
            "ci95": [round(lo, 4), round(hi, 4)],
        }

    return {
        "candidates_scored": f"{scored}/{candidates}",
        "labelled_pairs": labelled,
        "contrast_judge": rate(judge),
        "baseline_prefer_shorter": rate(shorter),
        "judge_vs_shorter": {
            "only_judge_right": versus["gained"],
            "only_shorter_right": versus["lost"],
            "sign_test_p": versus["sign_test_p"],
        },
        "prompts": int(prompts),
        "picked_candidate_follows": round(picked / prompts, 4) if prompts else None,
        "random_candidate_follows": round(mean_pass / prompts, 4) if prompts else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--prompts", default=str(REPO / "prompts" / "instructions" / "heldout.jsonl"))
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=80)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--save", default=None, help="also write the pairs (with every candidate) as JSONL")
    args = ap.parse_args()

    from rlaif.engines.vllm import VLLMEngine
    from rlaif.feedback import SourceContext, load_prompts, run_source

    prompts = load_prompts(args.prompts, format="jsonl")[: args.limit]
    options = {
        "num_generations": args.candidates,
        "sampling": {"temperature": args.temperature, "max_tokens": args.max_tokens},
    }  # a source never filters pairs: every candidate's pair is kept
    with VLLMEngine(args.model, max_model_len=1024, kv_cache_memory_bytes=1 << 29, progress=False) as engine:
        start = time.perf_counter()
        result = run_source(
            "rlaif.feedback.instruction_contrast:instruction_contrast", prompts, engine, options,
            SourceContext(seed=args.seed, round=0, adapter=None, chunk=0),
        )  # fmt: skip
        seconds = time.perf_counter() - start
    if args.save:
        from rlaif.records import write_jsonl

        write_jsonl(args.save, result.pairs)
    summary = {
        "model": Path(args.model).name,
        "prompts_file": args.prompts,
        "candidates": args.candidates,
        "seed": args.seed,
        "prompts_in": result.stats.prompts_in,
        "pairs": len(result.pairs),
        "dropped": result.stats.drops,
        "seconds": round(seconds, 1),
        **agreement(result.pairs),
    }
    print(json.dumps(summary, indent=2))
    print(
        "note: candidate pairs from one prompt are not independent, so the pair-level interval is "
        "somewhat too narrow; picked_candidate_follows vs random_candidate_follows is per prompt."
    )


if __name__ == "__main__":
    main()
