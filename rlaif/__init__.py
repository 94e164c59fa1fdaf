"""rlaif: make a model better from AI feedback.

Importing the package is cheap on purpose: torch, vllm and trl are imported inside the functions
that need them, so ``rlaif --help`` and config validation stay fast.
"""

__version__ = "0.1.0"
