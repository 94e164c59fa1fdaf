"""Code-model alignment with real test execution (RLCF).

- :mod:`~rlaif.code.problems`: HumanEval / MBPP / MBPP+ loaders into :class:`~rlaif.records.CodeProblem`;
- :mod:`~rlaif.code.jobs`: problem + completion -> sandbox job (program and tests);
- :mod:`~rlaif.code.rewards`: binary / fraction / CodeRL / RLTF rewards, and a TRL reward function;
- :mod:`~rlaif.code.passk`: the unbiased pass@k estimator;
- :mod:`~rlaif.code.pairs`: test-gated preference pairs from k sampled candidates;
- :mod:`~rlaif.code.evaluate`: ``rlaif eval-code``.

Execution itself is :mod:`rlaif.sandbox`.
"""
