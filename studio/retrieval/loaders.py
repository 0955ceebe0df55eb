"""Documents from files or a folder: text, Markdown, HTML (tags stripped) and PDF (its text layer, via pypdf).
URLs need the internet: offline they are refused with a sentence."""
from __future__ import annotations

import html.parser
from dataclasses import dataclass
from pathlib import Path

from studio.errors import DataError

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")


@dataclass(frozen=True)
class Document:
    source: str
    """The file's path as given (relative to the folder for a folder's files)."""
    text: str


def load_documents(path: str | Path) -> list[Document]:
    """Every supported file at ``path`` (a file, or a folder searched recursively), in name order.

    Raises:
        DataError: the path does not exist, the folder holds no supported file, a file type is not supported,
            a PDF has no text layer, or a URL is given while offline.
    """
    text = str(path).strip()
    if text.startswith(("http://", "https://")):
        return [_load_url(text)]
    p = Path(text).expanduser()
    if not p.exists():
        raise DataError(f"documents path {text} does not exist")
    if p.is_file():
        return [_load_file(p, p.name)]
    files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    picked = [f for f in files if f.suffix.lower() in SUPPORTED]
    if not picked:
        what = f"only {', '.join(sorted({f.suffix or f.name for f in files}))} files" if files else "no files"
        raise DataError(f"the folder {text} has {what}; supported: {', '.join(SUPPORTED)}")
    docs = [_load_file(f, str(f.relative_to(p))) for f in picked]
    return [d for d in docs if d.text.strip()] or _empty(text)


def _empty(where: str) -> list[Document]:
    raise DataError(f"the documents in {where} hold no text")


def _load_file(path: Path, source: str) -> Document:
    kind = path.suffix.lower()
    if kind not in SUPPORTED:
        raise DataError(f"{path.name}: file type {kind or '(none)'} is not supported; supported: "
                        f"{', '.join(SUPPORTED)}")
    if kind == ".pdf":
        return Document(source, _pdf_text(path))
    raw = path.read_text(encoding="utf-8", errors="replace")
    return Document(source, html_text(raw) if kind in (".html", ".htm") else raw)


def _pdf_text(path: Path) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:  # pragma: no cover - pypdf comes with the rag extra
        raise DataError(f"{path.name}: reading PDFs needs pypdf (pip install 'fine-tune-studio[rag]')") from None
    try:
        text = "\n\n".join((page.extract_text() or "") for page in PdfReader(str(path)).pages)
    except (PdfReadError, ValueError, KeyError) as exc:
        raise DataError(f"{path.name}: not a readable PDF ({str(exc).splitlines()[0][:160]})") from None
    if not text.strip():
        raise DataError(f"{path.name}: the PDF has no text layer (a scan?); convert it to text first")
    return text


class _Text(html.parser.HTMLParser):
    SKIP = {"script", "style", "head", "nav", "noscript"}
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "pre"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_text(raw: str) -> str:
    """The visible text of an HTML page (scripts, styles and the head dropped; blocks become paragraphs)."""
    parser = _Text()
    parser.feed(raw)
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


def _load_url(url: str) -> Document:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - a URL the user asked for
            raw = resp.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"{url} could not be fetched ({exc}); offline, save the page and pass the file") from None
    return Document(url, html_text(raw))
