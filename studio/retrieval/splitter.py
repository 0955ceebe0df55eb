"""Recursive character splitting, as LangChain's ``RecursiveCharacterTextSplitter()`` does it in the seed notebook
(its defaults: 4000 characters a chunk, 200 of overlap, separators paragraph, line, space, character; separators
kept at the start of the next piece, chunks stripped)."""
from __future__ import annotations

import re

CHUNK_SIZE = 4000
CHUNK_OVERLAP = 200
SEPARATORS = ("\n\n", "\n", " ", "")


def split_text(text: str, chunk_size: int = CHUNK_SIZE, chunk_overlap: int = CHUNK_OVERLAP) -> list[str]:
    """``text`` in chunks of at most ``chunk_size`` characters (a single longer word excepted), neighbours sharing
    up to ``chunk_overlap`` characters."""
    if chunk_size < 1 or not 0 <= chunk_overlap < chunk_size:
        raise ValueError(f"chunk_overlap ({chunk_overlap}) must be >= 0 and below chunk_size ({chunk_size})")
    return _split(text, list(SEPARATORS), chunk_size, chunk_overlap)


def _split(text: str, separators: list[str], size: int, overlap: int) -> list[str]:
    separator, rest = separators[-1], []
    for i, s in enumerate(separators):
        if s == "":
            separator = s
            break
        if re.search(re.escape(s), text):
            separator, rest = s, separators[i + 1:]
            break
    chunks: list[str] = []
    good: list[str] = []
    for piece in _pieces(text, separator):
        if len(piece) < size:
            good.append(piece)
            continue
        if good:
            chunks.extend(_merge(good, size, overlap))
            good = []
        chunks.extend(_split(piece, rest, size, overlap) if rest else [piece])
    if good:
        chunks.extend(_merge(good, size, overlap))
    return chunks


def _pieces(text: str, separator: str) -> list[str]:
    """``text`` cut before each ``separator`` (kept at the start of the following piece)."""
    if not separator:
        return [c for c in text if c]
    parts = re.split(f"({re.escape(separator)})", text)
    out = [parts[0]] + [parts[i] + parts[i + 1] for i in range(1, len(parts) - 1, 2)]
    if len(parts) % 2 == 0:
        out += parts[-1:]
    return [p for p in out if p]


def _merge(pieces: list[str], size: int, overlap: int) -> list[str]:
    docs: list[str] = []
    current: list[str] = []
    total = 0
    for piece in pieces:
        n = len(piece)
        if total + n > size and current:
            doc = "".join(current).strip()
            if doc:
                docs.append(doc)
            while total > overlap or (total + n > size and total > 0):
                total -= len(current[0])
                current = current[1:]
        current.append(piece)
        total += n
    doc = "".join(current).strip()
    if doc:
        docs.append(doc)
    return docs
