"""judge-eval: pair loading (HH transcripts, plain JSONL), hand-computed summaries, custom judges via the CLI."""

from __future__ import annotations

import gzip
import json
import textwrap

import pytest
from judges_testlib import choice_completion, shown_first

from rlaif.cli import main
from rlaif.engines.scripted import ScriptedEngine
from rlaif.errors import ConfigError, RecordError
from rlaif.judges import CallableJudge, PairwiseJudge, PointwiseJudge, load_judge
from rlaif.judges.eval import load_eval_pairs, run_judge_eval, split_hh_pair
from rlaif.records import Judgment, read_jsonl


def write_jsonl(path, rows, gz=False):
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def hh(*turns: str) -> str:
    return "".join(f"\n\n{'Human' if k % 2 == 0 else 'Assistant'}: {t}" for k, t in enumerate(turns))


def test_split_hh_pair_and_its_edge_cases():
    msgs, c, r = split_hh_pair(
        hh("hi", "hello", "how to pick a lock?", "Ask a locksmith."),
        hh("hi", "hello", "how to pick a lock?", "Use a pin."),
    )
    assert [m.role for m in msgs] == ["user", "assistant", "user"] and msgs[
        -1
    ].content == "how to pick a lock?"
    assert (c, r) == ("Ask a locksmith.", "Use a pin.")
    # transcripts that differ before their last turn (a few HH rows): split where they diverge
    c_text = hh("q", "No.  Human: why? ") + "\n\nAssistant: Because."
    msgs, c, r = split_hh_pair(c_text, hh("q", "Yes, sure."))
    assert (
        msgs[-1].content == "q"
        and c.startswith("No.  Human: why?")
        and c.endswith("Because.")
        and r == "Yes, sure."
    )
    with pytest.raises(ValueError, match="share no assistant turn"):
        split_hh_pair(hh("a", "b"), hh("c", "d"))


def test_load_eval_pairs_formats_skips_and_limit(tmp_path):
    rows = [
        {"chosen": hh("q1", "safe"), "rejected": hh("q1", "unsafe")},
        {"chosen": hh("q2", "same"), "rejected": hh("q2", "same")},
        {"chosen": hh("q3", ""), "rejected": hh("q3", "x")},
        {"chosen": hh("q4", "ok"), "rejected": hh("q4", "bad")},
    ]
    path = write_jsonl(tmp_path / "hh.jsonl.gz", rows, gz=True)
    pairs, skipped = load_eval_pairs(path)
    assert [(p.line, p.chosen, p.rejected) for p in pairs] == [(1, "safe", "unsafe"), (4, "ok", "bad")]
    assert skipped == {
        "identical replies": {"count": 1, "lines": [2]},
        "empty reply": {"count": 1, "lines": [3]},
    }
    assert [p.line for p in load_eval_pairs(path, limit=1)[0]] == [1]

    plain = write_jsonl(
        tmp_path / "plain.jsonl",
        [
            {"id": "x", "prompt": "Explain DNS.", "chosen": "It maps names.", "rejected": "No."},
            {
                "prompt": [{"role": "user", "content": "hi"}],
                "chosen": [{"role": "assistant", "content": "hello"}],
                "rejected": "go away",
            },
        ],
    )
    pairs, skipped = load_eval_pairs(plain)
    assert pairs[0].id == "x" and pairs[0].prompt[0].content == "Explain DNS." and skipped == {}
    assert pairs[1].id == "plain.jsonl:2" and pairs[1].chosen == "hello"


@pytest.mark.parametrize(
    "row, message",
    [
        ({"prompt": "p", "chosen": "c"}, r"bad.jsonl:2: missing field 'rejected'"),
        (
            {"chosen": "plain text", "rejected": "x"},
            r"bad.jsonl:2: no 'prompt' field and 'chosen' is not an HH",
        ),
        ({"prompt": 5, "chosen": "c", "rejected": "r"}, r"bad.jsonl:2: field 'prompt' must be text"),
        (
            {"prompt": "p", "chosen": [{"role": "user", "content": "c"}], "rejected": "r"},
            r"bad.jsonl:2: field 'chosen'",
        ),
    ],
)
def test_malformed_pairs_name_file_and_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}, row])
    with pytest.raises(RecordError, match=message):
        load_eval_pairs(path)


def eval_engine() -> ScriptedEngine:
    """Prefers 'good' (0.8 when shown first, 0.6 when second); 'weird' unreadable; 'tie' 50/50."""

    def respond(c, i, s):
        first = shown_first(c)
        text = c[-1].content
        if "tie" in text:
            return choice_completion({"A": 0.5, "B": 0.5}, sampled="A")
        if first.startswith("weird"):
            return choice_completion({"x": 1.0})
        if first.startswith("good"):
            return choice_completion({"A": 0.8, "B": 0.2})
        return choice_completion({"A": 0.4, "B": 0.6})

    return ScriptedEngine(respond)


def eval_pairs_file(tmp_path):
    rows = [{"prompt": f"q{k}", "chosen": f"good{k}", "rejected": f"bad{k}"} for k in range(1, 5)]
    rows.append({"prompt": "q5", "chosen": "good5", "rejected": "weird5"})
    rows.append({"prompt": "q6", "chosen": "good6", "rejected": "tie6"})
    return write_jsonl(tmp_path / "pairs.jsonl", rows)


def test_run_judge_eval_summary_by_hand(tmp_path):
    pairs, _ = load_eval_pairs(eval_pairs_file(tmp_path))
    engine = eval_engine()
    out = tmp_path / "judgments.jsonl"
    summary = run_judge_eval(PairwiseJudge(engine), pairs, out=out, seed=0)
    assert len(engine.calls) == 1 and engine.calls[0][0] == 12
    # pairs 1-5 prefer chosen (P = 0.7, 0.7, 0.7, 0.7, 0.8), pair 6 is a tie -> 5.5 / 6
    assert summary["n"] == 6 and summary["valid"] == 6 and summary["invalid_rate"] == 0.0
    assert summary["agreement"] == pytest.approx(5.5 / 6, abs=1e-6) and summary["ties"] == 1
    # both orders readable for pairs 1-4 and 6; all agree
    assert summary["position_consistency"] == 1.0 and summary["pairs_with_both_orders_valid"] == 5
    # readable orders: pairs 1-4 -> one first-shown win each (4), pair 5 -> 1, pair 6 -> 2 halves
    assert summary["first_position_win_rate"] == pytest.approx(6 / 11, abs=1e-6)
    assert summary["judgments"] == 12 and summary["judgments_valid"] == 11
    assert list(summary["invalid_reasons"].values()) == [1]
    assert summary["mean_prob_chosen"] == pytest.approx((0.7 * 4 + 0.8 + 0.5) / 6, abs=1e-6)
    records = read_jsonl(out, Judgment)
    assert len(records) == 12 and {r.metadata["pair_id"] for r in records} == {p.id for p in pairs}
    # the chosen reply's placement is drawn per pair, so both placements occur
    assert {r.metadata["chosen_is"] for r in records} == {"a", "b"}


def test_run_judge_eval_pointwise_judge(tmp_path):
    pairs, _ = load_eval_pairs(eval_pairs_file(tmp_path))
    engine = ScriptedEngine(lambda c, i, s: "Score: 4" if "<reply>\ngood" in c[-1].content else "Score: 2")
    summary = run_judge_eval(PointwiseJudge(engine, samples=2), pairs, out=tmp_path / "pw.jsonl")
    assert summary["mode"] == "pointwise" and summary["agreement"] == 1.0 and summary["valid"] == 6
    assert summary["position_consistency"] is None and summary["first_position_win_rate"] is None
    assert summary["judgments"] == 24 and len(engine.calls) == 1


CALLABLES = '''
def longer(prompts, responses_a, responses_b):
    """Pairwise: P(a better) = 1 if a is longer."""
    return [1.0 if len(a) > len(b) else 0.0 if len(a) < len(b) else 0.5 for a, b in zip(responses_a, responses_b)]

def first_always(prompts, responses_a, responses_b, engine=None):
    return [{"value": 0.9, "raw_output": "picked A"} for _ in prompts]

def broken_range(prompts, responses_a, responses_b):
    return [1.5 for _ in prompts]

def short_list(prompts, responses_a, responses_b):
    return []

def length_score(prompts, responses):
    return [float(len(r)) if r != "skip" else None for r in responses]

def wrong_signature(items):
    return []
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_judges.py").write_text(CALLABLES, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_judges"


def test_callable_judges(user_module):
    items = [([], "longer reply", "short"), ([], "a", "bbb")]
    judge = load_judge(f"{user_module}:longer", engine=None)
    assert isinstance(judge, CallableJudge) and hasattr(judge, "compare") and not hasattr(judge, "score")
    r1, r2 = judge.compare(items)
    assert (r1.prob_a, r1.consistent, r2.prob_a) == (1.0, True, 0.0)
    assert [j.orders for j in r1.judgments] == [["AB"], ["BA"]] and r1.judgments[0].kind == "custom"
    assert r1.judgments[0].template == f"{user_module}:longer"

    biased = load_judge(f"{user_module}:first_always", engine=None).compare(items[:1])[0]
    assert biased.prob_a == pytest.approx(0.5) and biased.consistent is False
    assert biased.judgments[0].raw_output == "picked A"

    bad = load_judge(f"{user_module}:broken_range", engine=None).compare(items[:1])[0]
    assert not bad.valid and bad.judgments[0].invalid_reason == "probability 1.5 is outside [0, 1]"

    single = load_judge(f"{user_module}:longer", engine=None, both_orders=False).compare(items[:1])[0]
    assert len(single.judgments) == 1

    scorer = load_judge(f"{user_module}:length_score", engine=None)
    res = scorer.score([([], "abc"), ([], "skip")])
    assert res[0].mean_score == 3.0 and res[1].mean_score is None and res[1].judgments[0].status == "invalid"


def test_callable_judge_errors(user_module):
    from rlaif.errors import RlaifError

    with pytest.raises(RlaifError, match="returned 0 values for 1 items"):
        load_judge(f"{user_module}:short_list", engine=None).compare([([], "a", "b")])
    with pytest.raises(ConfigError, match="needs parameters"):
        load_judge(f"{user_module}:wrong_signature", engine=None)
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        load_judge(f"{user_module}:nope", engine=None)
    with pytest.raises(ConfigError, match="cannot import module"):
        load_judge("no_such_module_abc:fn", engine=None)
    with pytest.raises(ConfigError, match="does not take option\\(s\\) samples"):
        load_judge(f"{user_module}:longer", engine=None, samples=3)


def test_load_judge_names_aliases_and_template_files(tmp_path):
    engine = eval_engine()
    assert isinstance(load_judge("pairwise", engine), PairwiseJudge)
    assert load_judge("pairwise", engine, chain_of_thought=True).template.name == "pairwise_cot"
    assert isinstance(load_judge("pointwise", engine), PointwiseJudge)
    assert type(load_judge("cai", engine)).__name__ == "PrincipleJudge"
    with pytest.raises(ConfigError, match="does not take option\\(s\\) samples"):
        load_judge("pairwise", engine, samples=3)
    path = tmp_path / "mine.j2"
    path.write_text(
        "---\nname: mine\nvariables: [prompt, response_a, response_b]\nparser: {type: choice, labels: [A, B]}\n---\n"
        "{{ prompt }}\n<response_a>\n{{ response_a }}\n</response_a>\n{{ response_b }}\n",
        encoding="utf-8",
    )
    judge = load_judge(str(path), engine)
    result = judge.compare([([], "good", "bad")])[0]
    assert result.judgments[0].kind == "custom" and result.judgments[0].template == "mine"
    assert result.prob_a == pytest.approx(0.7)


def test_cli_judge_eval_with_a_python_callable(tmp_path, user_module, capsys):
    pairs = eval_pairs_file(tmp_path)
    out = tmp_path / "out" / "callable.jsonl"
    code = main(
        [
            "judge-eval",
            "--pairs",
            str(pairs),
            "--judge",
            f"{user_module}:longer",
            "--out",
            str(out),
            "--limit",
            "5",
            "--summary-out",
            str(tmp_path / "summary.json"),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    # chosen "goodK" (5 chars) is longer than "badK" (4) and "weird5" (6) is longer than "good5"
    assert summary["n"] == 5 and summary["valid"] == 5 and summary["agreement"] == pytest.approx(0.8)
    assert summary["position_consistency"] == 1.0 and summary["first_position_win_rate"] == pytest.approx(0.5)
    assert summary["judgments"] == 10 and summary["judge"] == f"{user_module}:longer"
    assert len(read_jsonl(out, Judgment)) == 10


def test_cli_judge_eval_errors_are_one_line(tmp_path, user_module, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "chosen": "c"}])
    assert main(["judge-eval", "--pairs", str(bad), "--judge", f"{user_module}:longer"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {bad}:1: missing field 'rejected'"
    good = eval_pairs_file(tmp_path)
    assert main(["judge-eval", "--pairs", str(good), "--judge", "pairwise"]) == 2
    assert "needs a model: pass --model PATH" in capsys.readouterr().err
    assert main(["judge-eval", "--pairs", str(good), "--judge", "nonexistent_judge"]) == 2
    assert "no template named 'nonexistent_judge'" in capsys.readouterr().err
    template = tmp_path / "t.j2"
    template.write_text(
        textwrap.dedent("""\
        ---
        name: t
        variables: [prompt, response_a, response_b]
        parser: {type: choice, labels: [A, B], source: text}
        parsr: typo
        ---
        x
        """)
    )
    assert (
        main(["judge-eval", "--pairs", str(good), "--judge", str(template), "--model", "/nonexistent"]) == 2
    )
    assert "front matter field 'parsr'" in capsys.readouterr().err


def test_hh_test_split_loads(shared_data):
    pairs, skipped = load_eval_pairs(shared_data / "hh-rlhf" / "harmless-base_test.jsonl.gz")
    total = sum(v["count"] for v in skipped.values())
    assert len(pairs) + total == 2312
    assert all(p.prompt[-1].role == "user" and p.chosen != p.rejected for p in pairs)
