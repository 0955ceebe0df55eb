"""Inference: prompts in a run's training format, streamed answers, base vs tuned on one copy of the weights.

- :class:`ChatEngine` (``from_run``, ``load_adapter``, ``set_adapter``, ``stream``, ``stream_compare``, ``stop``,
  ``generate_batch``, ``loss``)
- :class:`GenerationParams` (deterministic defaults), :class:`Prompt` (with the trimming notice)
"""
from studio.inference.batch import generate_texts, mean_loss, token_nll
from studio.inference.engine import BASE, AdapterInfo, ChatEngine
from studio.inference.params import GREEDY, GenerationParams, SeededSampler, StopOnEvents, StopScanner, cut_at_stop
from studio.inference.prompt import (Prompt, PromptBuilder, PromptTooLong, flatten_content, normalize_history,
                                     run_prompt_setup)
from studio.inference.sources import adapter_name_for, resolve_adapter_source
from studio.inference.streams import CompareStream, Reply, ReplyStream

__all__ = [
    "BASE", "AdapterInfo", "ChatEngine", "CompareStream", "Reply", "ReplyStream", "adapter_name_for",
    "resolve_adapter_source", "run_prompt_setup", "GREEDY", "GenerationParams", "SeededSampler", "StopOnEvents",
    "StopScanner", "cut_at_stop", "Prompt", "PromptBuilder", "PromptTooLong", "flatten_content", "normalize_history",
    "generate_texts", "mean_loss", "token_nll",
]
