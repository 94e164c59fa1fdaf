"""The run's stage blocks: prompts, feedback, pairs, SFT, the final RL round and evaluation.

Each ``options`` mapping here is the stage's own config, validated against the stage's model when the
run is resolved (:mod:`rlaif.pipeline.resolve`): this layer knows no component. Guarantees: unknown
keys are refused; paths are not checked here (the run's compile step reads every data file).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from rlaif.config.base import Strict


class PromptSource(Strict):
    """Where prompts or problems come from."""

    kind: Literal["jsonl", "hh", "mtbench", "code", "hf_dataset", "demo_code"] = Field(
        ...,
        description="File format: JSONL prompts, HH transcripts, MT-Bench questions, code problems, "
        "a local HF datasets directory, or the demo's synthetic code tasks.",
    )
    path: str | None = Field(None, description="File or directory (not needed for demo_code).")
    limit: int | None = Field(None, description="Use only the first N records.")
    split: Literal["train", "heldout", "all"] = Field("all", description="For demo_code: which split.")
    id_range: tuple[int, int] | None = Field(
        None,
        description="Keep records whose id ends in a number within [lo, hi] (e.g. MBPP train = [601, 974]).",
    )
    malformed: Literal["skip", "error"] = Field(
        "skip",
        description="A malformed record (HH turns not alternating, a missing field): skip it and count it "
        "(shown by validate, in stats and in the report) or stop with an error naming file and line. "
        "Applies to jsonl, hh and mtbench files; code problems are always strict.",
    )


class FeedbackConfig(Strict):
    """The feedback source of each round: which one and its own options."""

    source: str = Field(
        ..., description="Built-in source (rlcd, sl_cai, rl_cai, self_rewarding, rlcf) or module:function."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="The source's own config (validated against it)."
    )
    chunk_size: int = Field(
        16, ge=1, description="Prompts per resumable chunk (each chunk is written atomically)."
    )


class PairsStageConfig(Strict):
    """The pairs stage: the one place a run filters pairs (validated against rlaif.pairs.PairFilterConfig)."""

    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Pair filters (min_margin, dedup, drop_identical, max_length_ratio, min_length_ratio, "
        "require_consistent_order).",
    )


class SFTStageConfig(Strict):
    """Supervised fine-tuning before the DPO rounds on the records a feedback source writes (SL-CAI's
    revisions), as Constitutional AI trains its SL stage before RL."""

    feedback: FeedbackConfig = Field(..., description="The source writing SFT records (e.g. sl_cai).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="The SFT trainer's own config (rlaif.train.sft.SFTConfig)."
    )


class FinalRoundConfig(Strict):
    """An optional RL round (PPO, GRPO or RLOO) after the DPO rounds, and what rewards it."""

    kind: Literal["none", "ppo", "grpo", "rloo"] = Field("none", description="Final RL round.")
    reward: Literal["sandbox", "verifier", "reward_model", "judge"] = Field(
        "sandbox",
        description="What scores rollouts: sandbox (code problems' tests), verifier (the prompts' own "
        "verifier: the sandbox for code, the instruction checker for prompts listing 'instructions'), "
        "reward_model (trained on the run's pairs) or judge (the run's score judge).",
    )
    reward_kind: str = Field(
        "fraction", description="Verifier reward map (sandbox, verifier): binary, fraction, coderl, rltf."
    )
    require_answer: bool = Field(
        False,
        description="Verifier reward on instruction prompts: a rollout that does not answer its request "
        "(fewer than 5 words of its own, or none of the request's words) fails and scores 0, so the "
        "checker cannot be won by replies like '<<Title>> Sure.'.",
    )
    prompts: Literal["all", "varied"] = Field(
        "all",
        description="Which of the run's prompts the round trains on: all, or varied (code runs whose last "
        "round's feedback ran programs in the sandbox, e.g. rlcf): only the problems whose programs in that "
        "feedback did not all earn the same final.reward_kind reward. A group of rollouts that all score "
        "alike gives GRPO and RLOO no gradient. The programs were sampled by the policy before the last "
        "DPO round.",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="The trainer's own config.")


class InstructionEvalConfig(Strict):
    """Held-out verifiable instructions (rlaif.instructions): pass rate checked by code, not a judge."""

    prompts: PromptSource = Field(..., description="Prompts whose records list their 'instructions'.")
    samples: int = Field(1, ge=1, description="Replies per prompt.")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy replies.")
    more_sets: dict[str, PromptSource] = Field(
        default_factory=dict,
        description="More held-out sets checked the same way (name -> prompts, e.g. paraphrased: held-out "
        "wordings and values); their metrics are named <name>_instruction_pass_rate, ...",
    )


class SampledCodeEvalConfig(Strict):
    """A second, sampled code evaluation on ``eval.code_problems`` beside the greedy one: greedy pass@1
    says what the policy answers; sampled pass@k says what it can reach in k tries, which the RLCF
    papers report too and which a round can move while greedy pass@1 stands still."""

    samples: int = Field(10, ge=1, description="Samples per held-out problem (n of the unbiased estimator).")
    temperature: float = Field(
        0.8, gt=0.0, description="Sampling temperature (> 0: greedy is the main eval)."
    )
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling cut-off.")
    ks: list[int] = Field(
        default_factory=lambda: [1, 5, 10],
        min_length=1,
        validate_default=True,  # the default ks need samples >= 10: checked against samples too
        description="Report sampled_pass@k for each k (every k between 1 and samples).",
    )

    @field_validator("ks")
    @classmethod
    def _ks_within_samples(cls, ks: list[int], info: ValidationInfo) -> list[int]:
        n = info.data.get("samples")
        bad = [k for k in ks if k < 1 or (n is not None and k > n)]
        if bad:
            raise ValueError(f"every k must be between 1 and samples={n}; got {bad}")
        return sorted(set(ks))


class EvalConfig(Strict):
    """Evaluation after every round: code pass@k, win rate against the previous round, instructions."""

    code_problems: PromptSource | None = Field(None, description="Held-out code problems for pass@k.")
    code_samples: int = Field(4, description="Samples per held-out problem for pass@1 (unbiased estimator).")
    code_temperature: float = Field(1.0, description="Sampling temperature for pass@k.")
    win_rate_prompts: PromptSource | None = Field(None, description="Prompts for round k vs k-1 win rate.")
    win_rate_limit: int = Field(32, description="Prompts used for the win rate.")
    win_rate_judge: str | None = Field(
        None,
        description="Pairwise judge for the win rate when judge.template is not one (built-in name, "
        "template file, or module:function); default: judge.template, else the built-in 'pairwise'.",
    )
    max_tokens: int = Field(128, description="Max tokens for evaluation samples.")
    instructions: InstructionEvalConfig | None = Field(
        None, description="Held-out verifiable-instruction prompts: pass rate per round."
    )
    code_sampled: SampledCodeEvalConfig | None = Field(
        None,
        description="A second code evaluation on code_problems, sampled: sampled_pass@k per k, with a "
        "paired per-problem change (e.g. {samples: 10, temperature: 0.8, top_p: 0.95, ks: [1, 5, 10]}).",
    )

    @model_validator(mode="after")
    def _sampled_needs_problems(self) -> EvalConfig:
        if self.code_sampled is not None and self.code_problems is None:
            raise ValueError("eval.code_sampled needs eval.code_problems (the problems it samples)")
        return self
