"""How gradient checkpointing runs when it is on: non-reentrant (no ``enable_input_require_grads`` hack; it works
with frozen k-bit embeddings). Whether it is on (``train.gradient_checkpointing`` auto | true | false) is decided
by :func:`studio.modeling.memory.decide_checkpointing`, the one policy the memory estimate and the speed plan share;
its words are in :mod:`studio.config_values`.
"""
from __future__ import annotations

CHECKPOINT_KWARGS = {"use_reentrant": False}
