"""Does a Self-Rewarding policy judge better after each round? Agreement of the instruction-likelihood
self-judge (rlaif/judges/instruction_likelihood.py) with the programmatic checker, per model, on ONE
fixed set of candidates, so the models are compared on exactly the same labelled pairs.

The candidates are sampled once by the first model (N per held-out prompt, T=0.8); then every model
(e.g. the start, round 1 and round 2 policies of a run) scores all of them with the judge. A labelled
pair is two candidates of one prompt on which the checker disagrees; a judge is right when it scores
the following one higher. Reported per model: agreement with its Wilson interval, the paired change
against the first and the previous model (pairs newly right / newly wrong, exact sign test), how often
the candidate it picks follows the instruction (against a random pick), and the prefer-shorter
baseline on the same pairs.

    PYTHONPATH=. .venv/bin/python benchmarks/self_judge_agreement.py \\
        --models models/smollm2-135m-instruct runs/self_rewarding_smollm2/round_1/train/model ... \\
        [--prompts prompts/instructions/heldout.jsonl --candidates 4 --limit 200]

Progress goes to stderr (each model's start, the candidate and pair counts, its engine's requests and
the seconds it took); stdout holds one JSON line per model, then the summary.

Caveat: pairs from one prompt share that prompt, so the pair-level interval is somewhat too narrow.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def say(message: str) -> None:
    """Progress on stderr (stdout holds the JSON results): a run over several models takes an hour."""
    print(message, file=sys.stderr, flush=True)


def sample_candidates(
    engine, prompts, n: int, temperature: float, max_tokens: int, seed: int
) -> list[list[str]]:
    from rlaif.engines.base import Sampling
    from rlaif.records import derive_seed

    samplings = [
        Sampling(n=n, temperature=temperature, max_tokens=max_tokens, seed=derive_seed(seed, "agree", p.id))
        for p in prompts
    ]
    out = engine.generate([p.messages for p in prompts], samplings)
    return [[c.text for c in comps] for comps in out]


def score_all(engine, prompts, texts: list[list[str]]) -> list[list[float | None]]:
    from rlaif.judges.instruction_likelihood import instruction_likelihood

    flat = [(p.messages, t) for p, row in zip(prompts, texts, strict=True) for t in row]
    values = instruction_likelihood([m for m, _ in flat], [t for _, t in flat], engine=engine)
    values = [v if isinstance(v, float) else None for v in values]
    it = iter(values)
    return [[next(it) for _ in row] for row in texts]


def labelled(prompts, texts) -> list[tuple[int, int, int]]:
    """(prompt index, following candidate, breaking candidate) for every pair the checker splits."""
    from rlaif.instructions import check_all

    out = []
    for pi, (p, row) in enumerate(zip(prompts, texts, strict=True)):
        ok = [check_all(t, p.metadata["instructions"]) for t in row]
        for a, b in itertools.combinations(range(len(row)), 2):
            if ok[a] != ok[b]:
                out.append((pi, a, b) if ok[a] else (pi, b, a))
    return out


def judge_figures(prompts, texts, scores, pairs) -> tuple[dict, dict[str, bool]]:
    from rlaif.instructions import check_all, wilson_interval

    right = {
        f"{pi}:{g}>{b}": scores[pi][g] > scores[pi][b]
        for pi, g, b in pairs
        if scores[pi][g] is not None and scores[pi][b] is not None
    }
    k, n = sum(right.values()), len(right)
    lo, hi = wilson_interval(k, n)
    picked = mean = 0.0
    for p, row, sc in zip(prompts, texts, scores, strict=True):
        ok = [check_all(t, p.metadata["instructions"]) for t in row]
        ranked = [(s if s is not None else float("-inf"), -i) for i, s in enumerate(sc)]
        picked += ok[-max(ranked)[1]]
        mean += sum(ok) / len(ok)
    return {
        "agreement": round(k / n, 4) if n else None,
        "ci95": [round(lo, 4), round(hi, 4)],
        "scored_pairs": n,
        "picked_candidate_follows": round(picked / len(prompts), 4),
        "random_candidate_follows": round(mean / len(prompts), 4),
    }, right


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, help="model directories, in round order")
    ap.add_argument("--prompts", default=str(REPO / "prompts" / "instructions" / "heldout.jsonl"))
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=80)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--save", default=None, help="also write candidates, checks and scores as JSON")
    ap.add_argument("--kv-cache-mb", type=int, default=512, help="each engine's KV cache")
    args = ap.parse_args()
    # vLLM's INFO and WARNING lines (each engine start) would bury the progress; VLLM_LOGGING_LEVEL=INFO
    # brings them back
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

    from rlaif.engines.vllm import VLLMEngine
    from rlaif.feedback import load_prompts
    from rlaif.instructions import wilson_interval
    from rlaif.progress import generation_label
    from rlaif.tasks.metric import paired_change

    prompts = load_prompts(args.prompts, format="jsonl")[: args.limit]
    texts: list[list[str]] = []
    per_model, rights, start = [], [], time.perf_counter()
    for k, model in enumerate(args.models):
        began = time.perf_counter()
        say(f"model {k + 1}/{len(args.models)}: {model}: starting its engine")
        kv = args.kv_cache_mb << 20
        with VLLMEngine(model, max_model_len=1024, kv_cache_memory_bytes=kv, progress=True) as engine:
            if k == 0:
                say(f"sampling {args.candidates} candidates for each of {len(prompts)} prompts")
                with generation_label("candidates"):
                    texts = sample_candidates(
                        engine, prompts, args.candidates, args.temperature, args.max_tokens, args.seed
                    )
                pairs = labelled(prompts, texts)
                say(f"{len(pairs)} labelled pairs (candidates of one prompt the checker splits)")
            say(f"scoring {sum(map(len, texts))} candidates with model {k + 1}'s self-judge")
            with generation_label("scores"):
                scores = score_all(engine, prompts, texts)
        figures, right = judge_figures(prompts, texts, scores, pairs)
        figures["seconds"] = round(time.perf_counter() - began, 1)
        say(f"model {k + 1}/{len(args.models)} done in {figures['seconds']:.0f} s")
        if rights:
            figures["change_vs_first"] = paired_change(rights[0], right)
            figures["change_vs_previous"] = paired_change(rights[-1], right)
        rights.append(right)
        per_model.append({"model": model, **figures})
        print(json.dumps(per_model[-1]), flush=True)
    shorter = sum(len(texts[pi][g]) < len(texts[pi][b]) for pi, g, b in pairs)
    lo, hi = wilson_interval(shorter, len(pairs))
    summary = {
        "prompts_file": args.prompts,
        "prompts": len(prompts),
        "candidates": args.candidates,
        "labelled_pairs": len(pairs),
        "baseline_prefer_shorter": {
            "agreement": round(shorter / len(pairs), 4) if pairs else None,
            "ci95": [round(lo, 4), round(hi, 4)],
        },
        "judges": per_model,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=2))
    if args.save:
        Path(args.save).write_text(json.dumps({"texts": texts, "pairs": pairs, **summary}))
    print(
        "note: pairs from one prompt are not independent, so the pair-level interval is somewhat too narrow."
    )


if __name__ == "__main__":
    main()
