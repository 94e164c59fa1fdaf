"""Generation engines: in-process vLLM and any OpenAI-compatible server.

``VLLMEngine`` and ``OpenAIEngine`` are imported lazily so that importing this package never imports
vllm or torch.
"""

from rlaif.engines.base import Engine, PromptInput, Sampling

__all__ = ["Engine", "PromptInput", "Sampling", "VLLMEngine", "OpenAIEngine", "ScriptedEngine"]


def __getattr__(name: str):
    if name == "VLLMEngine":
        from rlaif.engines.vllm import VLLMEngine

        return VLLMEngine
    if name == "OpenAIEngine":
        from rlaif.engines.openai import OpenAIEngine

        return OpenAIEngine
    if name == "ScriptedEngine":
        from rlaif.engines.scripted import ScriptedEngine

        return ScriptedEngine
    raise AttributeError(name)
