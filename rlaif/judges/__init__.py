"""AI judges: turn responses into scores and preference labels, with every judgment recorded.

- :class:`PointwiseJudge` - rubric scores, K sampled judgments per response, averaged, re-asked on
  parse failure;
- :class:`PairwiseJudge` - A/B in both orders, soft labels from choice-token probabilities, position
  consistency flag, optional chain-of-thought;
- :class:`PrincipleJudge` - the pairwise judge conditioned on a principle sampled per comparison;
- small-model aids (:mod:`rlaif.judges.calibration`): guided answers, logit-space position-bias
  calibration and a self-check that refuses a batch whose order agreement is at chance; the
  ``pairwise_fewshot`` and ``rubric_fewshot`` templates switch them on;
- :func:`from_template` - a judge class built from Python through the spec (the template's front-matter
  defaults included; the bare constructors take none);
- :func:`load_judge` - a built-in name, a template file, ``"package.module:function"`` or a
  :data:`~rlaif.judges.spec.JudgeSpec` (one union on ``kind``; see :mod:`rlaif.judges.spec`).

Every judge sends one ``engine.generate`` call per round (first round, each retry round), so vLLM
batches the whole stage. A judgment that cannot be parsed is recorded as invalid with its reason and
never turned into a label.
"""

from rlaif.judges.custom import CallableJudge
from rlaif.judges.loading import from_template, load_judge
from rlaif.judges.pairwise import JudgeUnreliableError, PairwiseJudge, PairwiseResult, combine_orders
from rlaif.judges.parsers import Parsed, parse_completion
from rlaif.judges.pointwise import PointwiseJudge, PointwiseResult
from rlaif.judges.principle import Principle, PrincipleJudge, load_principles

__all__ = [
    "CallableJudge",
    "JudgeUnreliableError",
    "PairwiseJudge",
    "PairwiseResult",
    "Parsed",
    "PointwiseJudge",
    "PointwiseResult",
    "Principle",
    "PrincipleJudge",
    "combine_orders",
    "from_template",
    "load_judge",
    "load_principles",
    "parse_completion",
]
