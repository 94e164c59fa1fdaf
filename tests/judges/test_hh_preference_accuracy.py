"""benchmarks/hh_preference_accuracy.py on the tiny model: its scores are the log-probs of exactly the
final reply plus the end-of-turn token after the chat-templated dialogue, checked against vLLM's prompt
log-probs computed here from token ids built independently; its accuracy is the fraction of pairs
whose chosen reply is more likely; bad input is one line and exit 2."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark


def _script():
    return load_benchmark("hh_preference_accuracy")


def _pairs(shared_data: Path, n: int = 4):
    """The ``n`` shortest of the first 40 HH harmless test pairs (they fit the tiny model's context)."""
    from rlaif.judges.eval import load_eval_pairs

    pairs, _ = load_eval_pairs(shared_data / "hh-rlhf" / "harmless-base_test.jsonl.gz", limit=40)
    size = lambda p: sum(len(m.content) for m in p.prompt) + len(p.chosen) + len(p.rejected)  # noqa: E731
    return sorted(pairs, key=size)[:n]


def _direct_logprobs(engine, messages, reply: str) -> list[float]:
    """log p(token) of the reply's tokens and the end-of-turn token, from one vLLM call on token ids
    built here: the dialogue rendered by the chat template with its generation prompt, then the reply
    tokenised alone, then the tokenizer's eos token id."""
    from vllm import SamplingParams

    tok = engine.tokenizer
    conv = [m.model_dump() for m in messages]
    head_text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    head = tok.encode(head_text, add_special_tokens=False)
    tail = tok.encode(reply, add_special_tokens=False) + [tok.eos_token_id]
    # the scored text is the final reply and the end of its turn, after the dialogue, as the chat
    # template would write the whole conversation
    whole = tok.apply_chat_template(conv + [{"role": "assistant", "content": reply}], tokenize=False)
    assert whole.startswith(tok.decode(head + tail)), (whole, tok.decode(head + tail))
    out = engine.llm.generate(
        [{"prompt_token_ids": head + tail}],
        SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0),
        use_tqdm=False,
    )[0]
    return [out.prompt_logprobs[len(head) + k][t].logprob for k, t in enumerate(tail)]


def test_scores_are_the_final_reply_and_its_end_and_accuracy_counts_them(scoring_engine, shared_data):
    script = _script()
    pairs = _pairs(shared_data)
    scored = script.score_pairs(scoring_engine, pairs)
    assert all(s is not None for s in scored), scored  # every chosen pair fits the context
    sums = []
    for pair, (chosen, rejected) in zip(pairs, scored, strict=True):
        for mine, reply in ((chosen, pair.chosen), (rejected, pair.rejected)):
            direct = _direct_logprobs(scoring_engine, pair.prompt, reply)
            assert len(mine) == len(direct)
            assert math.isclose(sum(mine), sum(direct), rel_tol=1e-5, abs_tol=1e-4)
        sums.append((sum(chosen), sum(rejected)))
    # without the end of turn, each reply loses exactly its last token's log-prob
    bare = script.score_pairs(scoring_engine, pairs, with_end=False)
    for (chosen, rejected), (bc, br) in zip(scored, bare, strict=True):
        assert (len(bc), len(br)) == (len(chosen) - 1, len(rejected) - 1)
        assert math.isclose(sum(bc), sum(chosen[:-1]), rel_tol=1e-5, abs_tol=1e-4)

    named = [("a", "dir-a"), ("b", "dir-b")]
    keep, results, verdicts = script.summarise(named, {"a": scored, "b": scored})
    assert keep == list(range(len(pairs)))
    expected_sum = sum(c > r for c, r in sums) / len(pairs)
    expected_mean = sum(sum(c) / len(c) > sum(r) / len(r) for c, r in scored) / len(pairs)
    assert results[0]["sum"]["accuracy"] == round(expected_sum, 4)
    assert results[0]["mean"]["accuracy"] == round(expected_mean, 4)
    assert verdicts["sum"][0] == {str(i): c > r for i, (c, r) in enumerate(sums)}
    change = results[1]["sum"]["vs_first"]  # the same scores twice: nothing changes
    assert (change["gained"], change["lost"], change["paired"]) == (0, 0, len(pairs))


def test_pairs_that_cannot_be_scored_or_span_further_turns_are_left_out():
    from rlaif.judges.eval import EvalPair
    from rlaif.records import Message

    script = _script()
    user = [Message(role="user", content="hi")]
    one = EvalPair(id="1", line=1, prompt=user, chosen="a", rejected="b")
    more = EvalPair(id="2", line=2, prompt=user, chosen="a\n\nHuman: and?\n\nAssistant: c", rejected="b")
    assert script.single_turn_pairs([one, more]) == ([one], 1)
    scored = {
        "a": [([-1.0], [-2.0]), None, ([-3.0], [-1.0])],
        "b": [([-1.0], [-2.0]), ([-1.0], [-2.0]), None],
    }
    keep, results, _ = script.summarise([("a", "x"), ("b", "y")], scored)
    assert keep == [0] and results[0]["sum"]["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "start=/nonexistent"], "--models: 'start=/nonexistent' is not NAME=DIR"),
        (["--data", "/nonexistent.jsonl"], "--data: /nonexistent.jsonl: file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_model_dir, capsys, args, message):
    code = _script().main(["--models", f"tiny={tiny_model_dir}", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().startswith(message) and "\n" not in err.strip(), err
