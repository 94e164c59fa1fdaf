"""The CPU demo: a from-scratch code model improved by test-gated feedback (RLCF) and DPO/PPO."""
