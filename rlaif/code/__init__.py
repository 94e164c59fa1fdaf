"""Code-model alignment with real test execution (RLCF).

- :mod:`~rlaif.code.problems`: HumanEval / MBPP / MBPP+ loaders into :class:`~rlaif.records.CodeProblem`;
- :mod:`~rlaif.code.jobs`: problem + completion -> sandbox job (program and tests);
- :mod:`~rlaif.code.rewards`: binary / fraction / CodeRL / RLTF rewards, and a TRL reward function;
- :mod:`~rlaif.code.validate`: broken problems found up front (the reference must pass, a None body fail);
- :mod:`~rlaif.code.passk`: the unbiased pass@k estimator;
- :mod:`~rlaif.code.evaluate`: ``rlaif eval-code``.

Execution itself is :mod:`rlaif.sandbox`; test-gated pairs (RLCF) are :mod:`rlaif.feedback.rlcf`,
the code task :mod:`rlaif.tasks.code`.
"""
