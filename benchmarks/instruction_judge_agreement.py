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
import itertools
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JUDGE_MAX_MODEL_LEN = 2048  # the pairwise prompts hold the request and two replies
JUDGE_KV_CACHE_BYTES = 1 << 30
SAMPLE_KV_CACHE_BYTES = 1 << 29
OUTCOMES = ("right", "wrong", "tied", "invalid")


class InputError(Exception):
    """A bad argument or file: one line on stderr and exit 2, no traceback."""


# -- the labelled pairs ----------------------------------------------------------------------------
def follows(pair) -> list[bool]:
    """The checker's verdict on each of a pair's candidates."""
    from rlaif.instructions import check_all

    c, specs = pair.metadata["candidates"], pair.metadata["instructions"]
    return [check_all(t, specs, where=f"pair {pair.id}") for t in c["texts"]]


def labelled(ok: list[bool]) -> list[tuple[int, int]]:
    """(following, not following) candidate indices for every two on which the checker disagrees."""
    return [
        (a, b) if ok[a] else (b, a) for a, b in itertools.combinations(range(len(ok)), 2) if ok[a] != ok[b]
    ]


def rate(k: int, n: int) -> dict:
    from rlaif.instructions import wilson_interval

    lo, hi = wilson_interval(k, n)
    return {"agreement": round(k / n, 4) if n else None, "ci95": [round(lo, 4), round(hi, 4)]}


def versus_shorter(shorter_right: dict[str, bool], judge_right: dict[str, bool]) -> dict:
    """On the same pairs: right only by the judge ("gained") / only by length ("lost")."""
    from rlaif.tasks.metric import paired_change

    versus = paired_change(shorter_right, judge_right)
    return {
        "only_judge_right": versus["gained"],
        "only_shorter_right": versus["lost"],
        "sign_test_p": versus["sign_test_p"],
    }


def agreement(pairs) -> dict:
    """Labelled candidate pairs -> agreement of the stored contrast and of prefer-shorter with the checker."""
    judge_right: dict[str, bool] = {}
    shorter_right: dict[str, bool] = {}
    picked = mean_pass = prompts = 0.0
    scored = candidates = 0
    for pair in pairs:
        c = pair.metadata["candidates"]
        ok = follows(pair)
        prompts += 1
        picked += ok[c["chosen"]]
        mean_pass += sum(ok) / len(ok)
        candidates += len(ok)
        scored += sum(v is not None for v in c["contrast"])
        for good, bad in labelled(ok):
            if c["contrast"][good] is None or c["contrast"][bad] is None:
                continue
            key = f"{pair.id}:{good}>{bad}"
            judge_right[key] = c["contrast"][good] > c["contrast"][bad]
            shorter_right[key] = len(c["texts"][good]) < len(c["texts"][bad])
    n = len(judge_right)
    return {
        "candidates_scored": f"{scored}/{candidates}",
        "labelled_pairs": n,
        "contrast_judge": rate(sum(judge_right.values()), n),
        "baseline_prefer_shorter": rate(sum(shorter_right.values()), n),
        "judge_vs_shorter": versus_shorter(shorter_right, judge_right),
        "prompts": int(prompts),
        "picked_candidate_follows": round(picked / prompts, 4) if prompts else None,
        "random_candidate_follows": round(mean_pass / prompts, 4) if prompts else None,
    }


# -- any judge -------------------------------------------------------------------------------------
def score_candidates(judge, pairs) -> list[list[float | None]]:
    """Every candidate scored alone, in one ``score`` call; None where the judgment is invalid."""
    items, owners = [], []
    for row, pair in enumerate(pairs):
        for j, text in enumerate(pair.metadata["candidates"]["texts"]):
            items.append((pair.prompt, text))
            owners.append((row, j))
    scores: list[list[float | None]] = [[] for _ in pairs]
    results = judge.score(items, ids=[f"{row}:{j}" for row, j in owners])
    for (row, _), result in zip(owners, results, strict=True):
        scores[row].append(result.mean_score)
    return scores


def score_outcomes(pairs, scores) -> tuple[dict[str, str], dict[str, bool]]:
    """Per labelled pair: the score judge's outcome, and whether the following reply is the shorter."""
    outcome: dict[str, str] = {}
    shorter: dict[str, bool] = {}
    for row, (pair, s) in enumerate(zip(pairs, scores, strict=True)):
        texts = pair.metadata["candidates"]["texts"]
        for good, bad in labelled(follows(pair)):
            key = f"{row}:{good}>{bad}"
            outcome[key] = _outcome(s[good], s[bad])
            shorter[key] = len(texts[good]) < len(texts[bad])
    return outcome, shorter


def _outcome(good: float | None, bad: float | None) -> str:
    if good is None or bad is None:
        return "invalid"
    return "tied" if good == bad else "right" if good > bad else "wrong"


def compare_plan(pairs, seed: int) -> list[tuple[int, int, int]]:
    """(row, shown as response_a, shown as response_b) for every labelled pair, the two replies put in
    an order drawn from ``seed`` (so the following reply is first about half the time)."""
    rng, plan = random.Random(seed), []
    for row, pair in enumerate(pairs):
        ok = follows(pair)
        for a, b in itertools.combinations(range(len(ok)), 2):
            if ok[a] == ok[b]:
                continue
            if rng.random() < 0.5:
                a, b = b, a
            plan.append((row, a, b))
    return plan


def compare_outcomes(judge, pairs, seed: int) -> tuple[dict[str, str], dict[str, bool], list[bool | None]]:
    """Per labelled pair: the compare judge's outcome, prefer-shorter's, and the position consistency
    of each judged pair (None where fewer than two orders could be read)."""
    plan = compare_plan(pairs, seed)
    items = [(pairs[r].prompt, _texts(pairs[r])[a], _texts(pairs[r])[b]) for r, a, b in plan]
    results = judge.compare(items, ids=[f"{r}:{a}:{b}" for r, a, b in plan]) if plan else []
    oks = [follows(pair) for pair in pairs]
    outcome: dict[str, str] = {}
    shorter: dict[str, bool] = {}
    for (row, a, b), result in zip(plan, results, strict=True):
        a_follows = oks[row][a]
        good, bad = (a, b) if a_follows else (b, a)
        key = f"{row}:{good}>{bad}"
        p = result.prob_a
        if p is None:
            outcome[key] = "invalid"
        else:
            outcome[key] = "tied" if p == 0.5 else "right" if (p > 0.5) == a_follows else "wrong"
        shorter[key] = len(_texts(pairs[row])[good]) < len(_texts(pairs[row])[bad])
    return outcome, shorter, [r.consistent for r in results]


def _texts(pair) -> list[str]:
    return pair.metadata["candidates"]["texts"]


def judge_summary(outcome: dict[str, str], shorter: dict[str, bool]) -> dict:
    """Agreement over the decided pairs; prefer-shorter and the sign test on exactly those pairs."""
    counts = Counter(outcome.values())
    decided = [k for k, v in outcome.items() if v in ("right", "wrong")]
    judge_right = {k: outcome[k] == "right" for k in decided}
    shorter_right = {k: shorter[k] for k in decided}
    return {
        "labelled_pairs": len(outcome),
        "judged": {o: counts.get(o, 0) for o in OUTCOMES},
        "decided_pairs": len(decided),
        "judge_agreement": rate(counts.get("right", 0), len(decided)),
        "right_of_labelled": round(counts.get("right", 0) / len(outcome), 4) if outcome else None,
        "baseline_prefer_shorter": rate(sum(shorter_right.values()), len(decided)),
        "judge_vs_shorter": versus_shorter(shorter_right, judge_right),
    }


def picks(pairs, scores) -> dict:
    """How often the best-scored candidate follows (ties: the first), against a random candidate, over
    the prompts where at least one candidate has a valid score."""
    picked = mean_pass = 0.0
    with_pick = 0
    for pair, s in zip(pairs, scores, strict=True):
        ranked = [(v, -j) for j, v in enumerate(s) if v is not None]
        if not ranked:
            continue
        ok = follows(pair)
        with_pick += 1
        picked += ok[-max(ranked)[1]]
        mean_pass += sum(ok) / len(ok)
    return {
        "prompts_with_a_pick": with_pick,
        "picked_candidate_follows": round(picked / with_pick, 4) if with_pick else None,
        "random_candidate_follows": round(mean_pass / with_pick, 4) if with_pick else None,
    }


def measure_judge(judge, pairs, seed: int) -> dict:
    """A built judge's agreement with the checker on the pairs' candidates (see the module docstring)."""
    if judge.slot == "score":
        scores = score_candidates(judge, pairs)
        outcome, shorter = score_outcomes(pairs, scores)
        valid = sum(v is not None for s in scores for v in s)
        return {
            "candidates_scored": f"{valid}/{sum(map(len, scores))}",
            **judge_summary(outcome, shorter),
            "prompts": len(pairs),
            **picks(pairs, scores),
        }
    outcome, shorter, consistent = compare_outcomes(judge, pairs, seed)
    both = [c for c in consistent if c is not None]
    return {
        **judge_summary(outcome, shorter),
        "position_consistency": {
            "consistent": sum(both),
            "both_orders_read": len(both),
            "rate": round(sum(both) / len(both), 4) if both else None,
        },
        "prompts": len(pairs),
    }


# -- inputs ----------------------------------------------------------------------------------------
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


def load_candidates(path: str, need_contrast: bool) -> list:
    """The pairs a previous ``--save`` wrote; the first bad record is one line naming file and record."""
    from rlaif.errors import RlaifError
    from rlaif.records import PreferencePair, read_jsonl

    try:
        pairs = read_jsonl(path, PreferencePair)
    except RlaifError as exc:
        raise InputError(f"--candidates-from: {exc}") from None
    if not pairs:
        raise InputError(f"--candidates-from {path}: no pairs in the file")
    for n, pair in enumerate(pairs, start=1):
        problem = candidates_problem(pair, need_contrast)
        if problem:
            raise InputError(f"--candidates-from {path}: record {n} ({pair.id}): {problem}")
    return pairs


def candidates_problem(pair, need_contrast: bool) -> str | None:
    """What keeps a pair from being measured (None: nothing)."""
    from rlaif.errors import RlaifError

    c = pair.metadata.get("candidates")
    if not isinstance(c, dict):
        return "no metadata.candidates (the file must come from --save with --candidates 2 or more)"
    texts = c.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return "metadata.candidates.texts must be a non-empty list of strings"
    if need_contrast:
        contrast, chosen = c.get("contrast"), c.get("chosen")
        if not isinstance(contrast, list) or len(contrast) != len(texts):
            return "metadata.candidates.contrast must hold one value per candidate text"
        if not isinstance(chosen, int) or not 0 <= chosen < len(texts):
            return "metadata.candidates.chosen must be the index of one candidate"
    if not isinstance(pair.metadata.get("instructions"), list) or not pair.metadata["instructions"]:
        return "metadata.instructions must be a non-empty list of instructions"
    try:
        follows(pair)
    except RlaifError as exc:
        return str(exc)
    return None


# -- the run ---------------------------------------------------------------------------------------
def sample_candidates(engine, prompts, candidates: int, temperature: float, max_tokens: int, seed: int):
    """The ``instruction_contrast`` source's result (every candidate in each pair's metadata)."""
    from rlaif.feedback import SourceContext, run_source

    options = {
        "num_generations": candidates,
        "sampling": {"temperature": temperature, "max_tokens": max_tokens},
    }  # a source never filters pairs: every candidate's pair is kept
    return run_source(
        "rlaif.feedback.instruction_contrast:instruction_contrast", prompts, engine, options,
        SourceContext(seed=seed, round=0, adapter=None, chunk=0),
    )  # fmt: skip


def sampled_pairs(args) -> tuple[list, dict]:
    """Sample with the policy engine (closed on return) and describe the sampling."""
    from rlaif.engines.vllm import VLLMEngine
    from rlaif.feedback import load_prompts

    prompts = load_prompts(args.prompts, format="jsonl")[: args.limit]
    with VLLMEngine(
        args.model, max_model_len=1024, kv_cache_memory_bytes=SAMPLE_KV_CACHE_BYTES, progress=False
    ) as engine:
        start = time.perf_counter()
        result = sample_candidates(
            engine, prompts, args.candidates, args.temperature, args.max_tokens, args.seed
        )
        seconds = time.perf_counter() - start
    if args.save:
        from rlaif.records import write_jsonl

        write_jsonl(args.save, result.pairs)
    return result.pairs, {
        "model": Path(args.model).name,
        "prompts_file": args.prompts,
        "candidates": args.candidates,
        "seed": args.seed,
        "prompts_in": result.stats.prompts_in,
        "pairs": len(result.pairs),
        "dropped": result.stats.drops,
        "seconds": round(seconds, 1),
    }


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
    start = time.perf_counter()
    result = measure_judge(judge, pairs, seed)
    return result, round(time.perf_counter() - start, 1)


def measure(args) -> dict:
    spec = parse_judge(args.judge) if args.judge else None  # a bad spec fails before any engine starts
    if args.candidates_from:
        if args.save:
            raise InputError("--save: nothing is sampled with --candidates-from (the file is already saved)")
        pairs = load_candidates(args.candidates_from, need_contrast=spec is None)[: args.limit]
        head = {"candidates_from": args.candidates_from, "seed": args.seed, "pairs": len(pairs)}
    else:
        pairs, head = sampled_pairs(args)
    if spec is None:
        return {**head, **agreement(pairs)}
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
