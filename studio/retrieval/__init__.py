"""Answers grounded on documents (the seed's RAG notebook): load files, split them with recursive character
splitting, index the chunks (all-MiniLM-L6-v2 + faiss, or BM25 when no embedding model is installed), retrieve the
closest chunks and ask "based only on the following context".

- :func:`load_documents` (``loaders``), :func:`split_text` (``splitter``), :class:`DocIndex` / :func:`open_index`
  (``index``), :func:`grounded_message` / :class:`Grounding` (``grounding``).
"""
from studio.retrieval.grounding import RAG_TEMPLATE, Grounding, grounded_message
from studio.retrieval.index import DocIndex, Hit, open_index
from studio.retrieval.loaders import SUPPORTED, Document, load_documents
from studio.retrieval.splitter import CHUNK_OVERLAP, CHUNK_SIZE, split_text

__all__ = ["RAG_TEMPLATE", "Grounding", "grounded_message", "DocIndex", "Hit", "open_index", "SUPPORTED",
           "Document", "load_documents", "CHUNK_OVERLAP", "CHUNK_SIZE", "split_text"]
