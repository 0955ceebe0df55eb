"""The notebook's prompt around the retrieved chunks, and asking the chat engine with it (base and tuned on the
same chunks)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from studio.retrieval.index import TOP_K, DocIndex, Hit

RAG_TEMPLATE = """Answer the question based only on the following context:
{context}

Question: {question}
"""
"""The seed notebook's ChatPromptTemplate, word for word."""


def grounded_message(question: str, hits: list[Hit]) -> str:
    """The user message the model is given: the chunks (best first, blank-line separated) and the question."""
    return RAG_TEMPLATE.format(context="\n\n".join(h.text for h in hits), question=question)


@dataclass
class Grounding:
    """One question's retrieval: the chunks, the message built from them, and how long retrieval took."""

    question: str
    hits: list[Hit]
    message: str
    seconds: float
    notice: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def retrieve(cls, index: DocIndex, question: str, k: int = TOP_K) -> "Grounding":
        t0 = time.perf_counter()
        hits = index.search(question, k)
        return cls(question, hits, grounded_message(question, hits), time.perf_counter() - t0, index.notice)

    def table(self) -> list[list[Any]]:
        """Rows ``[rank, source, score, text]`` for the Chat tab."""
        return [[h.rank, h.source, round(h.score, 4), h.text] for h in self.hits]


def context_budget(engine: Any, max_new_tokens: int) -> int | None:
    """The prompt-token limit for a grounded question: the model's context less the answer (the run's training
    length is too short for a page of context)."""
    ctx = getattr(getattr(engine.model, "config", None), "max_position_embeddings", None)
    return max(1, int(ctx) - int(max_new_tokens)) if ctx else None
