"""Reading documents (text, Markdown, HTML, PDF) and chunking them by tokens with overlap."""

from __future__ import annotations

from pathlib import Path

import pytest

from genlab.apps.providers import word_offsets
from genlab.apps.rag.chunk import chunk_text
from genlab.apps.rag.ingest import IngestError, find_files, read_document
from genlab.errors import InvalidValueError


def make_pdf(path: Path, pages: list[str]) -> Path:
    """A small valid PDF with one line of Helvetica text per page (objects and xref written by hand)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {len(objects)} 0 R "
                       "/Resources << /Font << /F1 3 0 R >> >> >>")  # fmt: skip
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


def test_text_markdown_and_html_are_read_with_titles(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("plain words", encoding="utf-8")
    (tmp_path / "guide.md").write_text("intro\n\n## Refund policy ##\n\nThirty days.", encoding="utf-8")
    (tmp_path / "page.html").write_text(
        "<html><head><title>Shipping</title><style>p{color:red}</style></head><body>"
        "<p>We ship&nbsp;worldwide.</p><script>steal()</script><ul><li>Fast</li><li>Cheap</li></ul></body></html>",
        encoding="utf-8",
    )
    text = read_document(tmp_path / "notes.txt")
    assert (text.text, text.format, text.title) == ("plain words", "text", "notes")
    markdown = read_document(tmp_path / "guide.md")
    assert markdown.format == "markdown" and markdown.title == "Refund policy" and "Thirty days." in markdown.text
    html = read_document(tmp_path / "page.html")
    assert html.title == "Shipping" and html.text == "We ship\xa0worldwide.\nFast\nCheap"
    assert len(text.sha256) == 64


def test_pdf_text_comes_page_by_page(tmp_path: Path) -> None:
    document = read_document(make_pdf(tmp_path / "manual.pdf", ["First page text", "Second page text"]))
    assert document.format == "pdf"
    assert "First page text" in document.text and "Second page text" in document.text
    assert document.page_at(document.text.index("Second")) == 2 and document.page_at(0) == 1


def test_folders_are_walked_recursively_skipping_hidden_and_unknown_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    for name in ("b.md", "sub/a.txt", ".git/config.txt", ".hidden.txt", "image.png"):
        (tmp_path / name).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in find_files(tmp_path)] == ["b.md", "sub/a.txt"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "missing", "no such file or folder"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "holds no text, Markdown, HTML or PDF files"),
        (lambda d: (d / "x.png").write_bytes(b"\x89PNG") and d / "x.png", "is not a text, Markdown, HTML or PDF file"),
    ],
)
def test_unusable_paths_fail_in_one_sentence(tmp_path: Path, setup, message: str) -> None:
    with pytest.raises(IngestError, match=message):
        find_files(setup(tmp_path))


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(IngestError, match=r"latin1.txt is not UTF-8 text"):
        read_document(tmp_path / "latin1.txt")
    (tmp_path / "fake.pdf").write_text("not a pdf at all")
    with pytest.raises(IngestError, match=r"cannot read PDF .*fake.pdf: it is not a PDF file"):
        read_document(tmp_path / "fake.pdf")
    broken = make_pdf(tmp_path / "broken.pdf", ["text"]).read_bytes()
    (tmp_path / "broken.pdf").write_bytes(broken[: len(broken) // 3])
    with pytest.raises(IngestError, match=r"cannot read PDF .*broken.pdf"):
        read_document(tmp_path / "broken.pdf")


def test_chunks_have_at_most_size_tokens_overlap_exactly_and_cover_the_text() -> None:
    text = " ".join(f"w{i}" for i in range(100))  # no sentence ends: windows are exact
    chunks = chunk_text(text, word_offsets, size=30, overlap=10)
    assert [c.start_token for c in chunks] == [0, 20, 40, 60, 80]
    assert all(c.n_tokens <= 30 for c in chunks) and chunks[-1].n_tokens == 20
    assert chunks[1].text.split()[:10] == chunks[0].text.split()[-10:]  # the overlap
    assert all(text[c.start_char : c.end_char] == c.text for c in chunks)  # exact quotes of the source
    assert chunks[-1].text.endswith("w99")


def test_chunks_prefer_to_end_at_a_sentence_or_line() -> None:
    text = "One two three four five six seven. Eight nine ten eleven twelve"
    chunks = chunk_text(text, word_offsets, size=10, overlap=2)
    assert chunks[0].text == "One two three four five six seven."  # 8 tokens with the full stop, not 10


def test_chunking_settings_are_checked() -> None:
    with pytest.raises(InvalidValueError, match="overlap=5 is not allowed"):
        chunk_text("a b c", word_offsets, size=5, overlap=5)
    with pytest.raises(InvalidValueError, match="chunk_size=0"):
        chunk_text("a b c", word_offsets, size=0, overlap=0)
    assert chunk_text("   ", word_offsets, size=5, overlap=1) == []
