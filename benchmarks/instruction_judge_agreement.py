"""Can a judge tell which of two replies follows the user's instruction? Agreement of a judge with the
programmatic instruction checker, against two baselines measured on the same pairs in the same run: a
coin (0.5) and "prefer the shorter reply".

For every prompt, N replies are sampled with the instruction reminded, exactly as the pipeline does
(the ``instruction_contrast`` source itself is called), or read back from a previous ``--save``
(``--candidates-from``). Among each prompt's candidates, every two replies on which the checker
disagrees (one follows the instruction, one does not) is a labelled pair.

Without ``--judge`` the judge is the contrastive-likelihood self-judge that ``instruction_contrast``
(``candidates: N``) uses: the contrast it stored for each candidate; it agrees when the following
reply has the higher contrast. Also reported: how often the candidate it picks follows the
instruction, against the mean over candidates (what a random pick gives).

With ``--judge SPEC`` any judge the toolkit builds (a template name or path, ``package.module:function``,
or a JSON mapping such as ``{"kind": "likelihood", "template": ..., "positive": ..., "negative": ...}``)
runs on ``--judge-model`` (default: ``--model``), in its own engine started after the sampling engine
is closed (one engine at a time). A score judge scores every candidate alone and is right on a pair
when the following reply scores higher; a compare judge (pairwise, principle) judges every labelled
pair (in both orders when it does so), the two replies put in a random order drawn from ``--seed`` so
a position-biased judge is not flattered, and its position consistency is reported. Ties and invalid
judgments are counted, never guessed: the agreement is over the decided pairs, and the prefer-shorter
baseline and the paired sign test are computed on exactly those pairs.

The arithmetic is the library's (``rlaif.judges.checker_pairs``, ``rlaif.judges.checker_eval``); the
candidates are sampled, saved and read back by ``instruction_candidates.py`` next to this script.

The default measurement (SmolLM2's own contrast; ``--save`` keeps the candidates for the others):

    .venv/bin/python benchmarks/instruction_judge_agreement.py \\
        [--model models/smollm2-135m-instruct --prompts prompts/instructions/heldout.jsonl --candidates 4] \\
        [--limit 200 --save runs/cands200.jsonl]

Other judges on the same saved candidates (each runs 3-6 minutes on 2 CPU cores):

    # SmolLM2, label probability "Does the reply follow every instruction ...? Yes/No"
    .venv/bin/python benchmarks/instruction_judge_agreement.py --candidates-from runs/cands200.jsonl \\
        --judge instruction_yesno --judge-model models/smollm2-135m-instruct
    # Qwen2.5-Coder-0.5B-Instruct, the same template
    .venv/bin/python benchmarks/instruction_judge_agreement.py --candidates-from runs/cands200.jsonl \\
        --judge instruction_yesno --judge-model models/qwen2.5-coder-0.5b-instruct
    # Qwen, principle multiple choice (the five instruction principles), both orders, calibrated
    .venv/bin/python benchmarks/instruction_judge_agreement.py --candidates-from runs/cands200.jsonl \\
        --judge '{"template": "cai_principle_choice", "principles": "instruction_principles", "calibrate": true}' \\
        --judge-model models/qwen2.5-coder-0.5b-instruct
    # SmolLM2, contrastive likelihood with a generic descriptor (follows every instruction vs ignores them)
    .venv/bin/python benchmarks/instruction_judge_agreement.py --candidates-from runs/cands200.jsonl \\
        --judge instruction_follow_contrast --judge-model models/smollm2-135m-instruct

Caveat printed with the figures: pairs from one prompt share that prompt, so the Wilson interval
(which assumes independent pairs) is somewhat too narrow; the per-prompt figures do not have that issue.
Non-guarantee: a judge's figure is for these candidates (one policy's replies); another policy's
replies may be easier or harder to tell apart.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from instruction_candidates import InputError, load_candidates, sampled_pairs

REPO = Path(__file__).resolve().parents[1]
JUDGE_MAX_MODEL_LEN = 2048  # the pairwise prompts hold the request and two replies
JUDGE_KV_CACHE_BYTES = 1 << 30


def parse_judge(text: str):
    """``--judge`` as a judge spec: a JSON mapping, or a name / path / ``package.module:function``."""
    from rlaif.judges.spec import judge_spec

    value: object = text
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"--judge: not a valid JSON mapping ({exc.msg})") from None
    return judge_spec(value, where="--judge")


def run_judge(spec, args, pairs) -> dict:
    """Build the judge on its own engine (started now: the sampling engine is closed) and measure it."""
    from rlaif.engines.vllm import VLLMEngine
    from rlaif.judges.spec import build_judge

    model = args.judge_model or args.model
    if spec.kind == "length":  # a baseline: no model is asked
        model, (result, seconds) = None, timed_measure(build_judge(spec, None), pairs, args.seed)
    else:
        with VLLMEngine(
            model,
            max_model_len=JUDGE_MAX_MODEL_LEN,
            kv_cache_memory_bytes=JUDGE_KV_CACHE_BYTES,
            progress=True,
        ) as engine:
            result, seconds = timed_measure(build_judge(spec, engine, seed=args.seed), pairs, args.seed)
    return {
        "judge": {
            "spec": spec.model_dump(exclude_none=True),
            "slot": spec.slot,
            "model": None if model is None else Path(model).name,
        },
        "judge_seconds": seconds,
        **result,
    }


def timed_measure(judge, pairs, seed: int) -> tuple[dict, float]:
    """The measurement and its seconds, engine start-up excluded (as the sampling ``seconds``)."""
    from rlaif.judges.checker_eval import measure_judge

    start = time.perf_counter()
    result = measure_judge(judge, pairs, seed)
    return result, round(time.perf_counter() - start, 1)


def measure(args) -> dict:
    from rlaif.judges.checker_pairs import contrast_agreement

    spec = parse_judge(args.judge) if args.judge else None  # a bad spec fails before any engine starts
    if args.candidates_from:
        if args.save:
            raise InputError("--save: nothing is sampled with --candidates-from (the file is already saved)")
        pairs = load_candidates(args.candidates_from, need_contrast=spec is None)[: args.limit]
        head = {"candidates_from": args.candidates_from, "seed": args.seed, "pairs": len(pairs)}
    else:
        pairs, head = sampled_pairs(args)
    if spec is None:
        return {**head, **contrast_agreement(pairs)}
    return {**head, **run_judge(spec, args, pairs)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--prompts", default=str(REPO / "prompts" / "instructions" / "heldout.jsonl"))
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None, help="only the first N prompts (or saved pairs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=80)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--save", default=None, help="also write the pairs (with every candidate) as JSONL")
    ap.add_argument("--candidates-from", default=None, help="reuse the pairs a previous --save wrote")
    ap.add_argument("--judge", default=None, help="a judge spec (default: the stored contrast)")
    ap.add_argument("--judge-model", default=None, help="the model the judge runs on (default: --model)")
    args = ap.parse_args(argv)
    from rlaif.errors import RlaifError

    try:
        summary = measure(args)
    except (InputError, RlaifError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    print(
        "note: candidate pairs from one prompt are not independent, so the pair-level interval is "
        "somewhat too narrow; picked_candidate_follows vs random_candidate_follows is per prompt."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
