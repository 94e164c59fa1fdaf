"""Verifiable tasks: records plus a verifier that says whether a completion does what the record asks.

- :mod:`~rlaif.tasks.base`: :class:`Task`, :class:`Verdict`, :func:`completion_text`;
- :mod:`~rlaif.tasks.code`: :class:`CodeTask` (tests run in the sandbox);
- :mod:`~rlaif.tasks.instruction`: :class:`InstructionTask` (the verifiable-instruction checker);
- :mod:`~rlaif.tasks.metric`: one verified metric (pass@k, the instruction pass rate) and the paired
  sign-test change between two evaluations;
- :mod:`~rlaif.tasks.rewards`: one verifier reward (a TRL-style reward function from any task);
- :mod:`~rlaif.tasks.catalog`: named problem sets and corpora that plug-ins (the demo) register.

The verifier-gated feedback source built on tasks is :mod:`rlaif.feedback.verified`.

Submodules are imported on use, so ``import rlaif.tasks`` stays light.
"""
