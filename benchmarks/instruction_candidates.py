"""The candidates ``instruction_judge_agreement.py`` measures judges on: sampled with the policy
exactly as the pipeline does (the ``instruction_contrast`` source itself is called), saved as JSONL,
or read back from a previous save.

Guarantees: a saved file is read whole and checked before any engine starts; the first bad record is
one :class:`InputError` line naming the file and the record; a source never filters pairs, so every
sampled prompt's pair is kept (drops are counted by the source and reported).
"""

from __future__ import annotations

import time
from pathlib import Path

SAMPLE_KV_CACHE_BYTES = 1 << 29


class InputError(Exception):
    """A bad argument or file: one line on stderr and exit 2, no traceback."""


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
    from rlaif.judges.checker_pairs import follows

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
