"""Read documents: plain text, Markdown, HTML and PDF files, one file or a folder (recursively).

PDF text comes from ``pypdf``; HTML text from the standard library's ``html.parser`` (script, style
and other non-content elements are skipped, block elements end a line). Markdown stays as it is:
its markup is light and embedders read it well; its first heading is the title. Written here is
only the walk over the folder and the dispatch by suffix.

Every problem the user can fix is one sentence naming the path: a missing path, a folder with no
readable files, a file that is not UTF-8 text (or is binary: NUL bytes), a PDF that cannot be read.

Large files are read as a stream (:func:`open_document`): text and Markdown in blocks of
``BLOCK_BYTES``, after a first pass that checks the whole file decodes (so a bad byte near the end
fails before any of the file is embedded); HTML and PDF are read whole (their parsers need it).
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError

TEXT_SUFFIXES = {".txt", ".text", ".rst", ".log"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
PDF_SUFFIXES = {".pdf"}
BLOCK_BYTES = 1 << 18  # a streamed text file is decoded 256 KiB at a time
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", flags=re.MULTILINE)


class IngestError(GenlabError):
    """A path that cannot be ingested."""


@dataclass
class Document:
    path: str  # absolute path of the file
    text: str
    format: str  # "text", "markdown", "html" or "pdf"
    sha256: str  # of the file's bytes: re-ingesting skips files whose hash is unchanged
    title: str = ""
    page_starts: list[int] = field(default_factory=list)  # PDF: character offset where each page begins

    def page_at(self, offset: int) -> int | None:
        """1-based page holding character ``offset`` (PDF only)."""
        if not self.page_starts:
            return None
        return sum(1 for start in self.page_starts if start <= offset) or 1


def supported_suffixes() -> set[str]:
    return TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES


def find_files(path: str | Path) -> list[Path]:
    """The files to ingest under ``path`` (itself, if a file), sorted; hidden files and folders skipped."""
    root = Path(path).expanduser()
    if not root.exists():
        raise IngestError(f"no such file or folder: {root}.")
    if root.is_file():
        if root.suffix.lower() not in supported_suffixes():
            raise IngestError(f"{root} is not a text, Markdown, HTML or PDF file (by its suffix).")
        return [root.resolve()]
    files = sorted(
        p.resolve()
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in supported_suffixes()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise IngestError(f"the folder {root} holds no text, Markdown, HTML or PDF files.")
    return files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_document(path: str | Path, sha256: str | None = None) -> Document:
    """One file as a :class:`Document`, by its suffix."""
    path = Path(path).resolve()
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        raise IngestError(f"{path} is not a text, Markdown, HTML or PDF file (by its suffix).")
    try:
        fields = reader(path)
    except OSError as error:
        raise IngestError(f"cannot read {path}: {error.strerror or error}.") from None
    return Document(path=str(path), sha256=sha256 or file_sha256(path), **fields)


def _binary(path: Path) -> IngestError:
    return IngestError(f"{path} is not UTF-8 text: it holds NUL bytes (a binary file, or UTF-16/UTF-32 text).")


def _read_utf8(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise IngestError(f"{path} is not UTF-8 text.") from None
    if "\x00" in text:
        raise _binary(path)
    return text


def utf8_blocks(path: Path) -> Iterator[tuple[int, str]]:
    """(bytes read, decoded text) for each block of the file; an undecodable or NUL byte is an IngestError."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()  # strict: a bad byte raises
    try:
        with open(path, "rb") as handle:
            while block := handle.read(BLOCK_BYTES):
                text = decoder.decode(block)
                if "\x00" in text:
                    raise _binary(path)
                yield len(block), text
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise IngestError(f"{path} is not UTF-8 text.") from None
    except OSError as error:
        raise IngestError(f"cannot read {path}: {error.strerror or error}.") from None


def _read_text(path: Path) -> dict[str, Any]:
    return {"text": _read_utf8(path), "format": "text", "title": path.stem}


def _read_markdown(path: Path) -> dict[str, Any]:
    text = _read_utf8(path)
    heading = _HEADING.search(text)
    return {"text": text, "format": "markdown", "title": heading.group(1) if heading else path.stem}


class _HTMLText(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skipping:
            self.parts.append(data)


def _read_html(path: Path) -> dict[str, Any]:
    parser = _HTMLText()
    parser.feed(_read_utf8(path))
    parser.close()
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n"))
    text = "\n".join(line for line in lines if line)
    return {"text": text, "format": "html", "title": parser.title.strip() or path.stem}


def _read_pdf(path: Path) -> dict[str, Any]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings on damaged files end in our one sentence
    with open(path, "rb") as handle:
        if b"%PDF-" not in handle.read(1024):
            raise IngestError(f"cannot read PDF {path}: it is not a PDF file (no %PDF header).")
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(f"cannot read PDF {path}: it is encrypted with a password.")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or path.stem
    except IngestError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError) as error:
        reason = str(error).strip().rstrip(".") or type(error).__name__
        raise IngestError(f"cannot read PDF {path}: {reason}.") from None
    starts, offset = [], 0
    for page in pages:
        starts.append(offset)
        offset += len(page) + 2  # the "\n\n" joining pages
    return {"text": "\n\n".join(pages), "format": "pdf", "title": str(title), "page_starts": starts}


_READERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    **{s: _read_text for s in TEXT_SUFFIXES},
    **{s: _read_markdown for s in MARKDOWN_SUFFIXES},
    **{s: _read_html for s in HTML_SUFFIXES},
    **{s: _read_pdf for s in PDF_SUFFIXES},
}


class DocumentStream:
    """A document whose text comes in pieces (:meth:`pieces`, once), with ``bytes_read`` for progress."""

    def __init__(self, path: Path, sha256: str, *, format: str, title: str, whole: Document | None = None) -> None:
        self.path, self.sha256, self.format, self.title = str(path), sha256, format, title
        self.size = path.stat().st_size
        self.bytes_read = 0
        self._whole = whole  # HTML and PDF: read whole

    def pieces(self) -> Iterator[str]:
        if self._whole is not None:
            self.bytes_read = self.size
            yield self._whole.text
            return
        for size, text in utf8_blocks(Path(self.path)):
            self.bytes_read += size
            yield text

    def page_at(self, offset: int) -> int | None:
        return self._whole.page_at(offset) if self._whole is not None else None


def open_document(path: str | Path, sha256: str | None = None) -> DocumentStream:
    """One file as a :class:`DocumentStream`: text and Markdown streamed (checked whole first), others read whole."""
    path = Path(path).resolve()
    sha = sha256 or file_sha256(path)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES or suffix in MARKDOWN_SUFFIXES:
        markdown = suffix in MARKDOWN_SUFFIXES
        title = _check_stream(path, want_heading=markdown)
        return DocumentStream(path, sha, format="markdown" if markdown else "text", title=title or path.stem)
    whole = read_document(path, sha)
    return DocumentStream(path, sha, format=whole.format, title=whole.title, whole=whole)


def _check_stream(path: Path, *, want_heading: bool) -> str | None:
    """Decode the whole file once (raising on a bad byte); the first Markdown heading if ``want_heading``."""
    heading, tail = None, ""
    for _, text in utf8_blocks(path):
        if want_heading and heading is None:
            lines = (tail + text).split("\n")
            tail = lines.pop()  # a partial last line waits for the next block
            tail = tail if len(tail) <= 4096 else "\x00"  # no heading is that long: keep a non-heading stub
            match = _HEADING.search("\n".join(lines))
            heading = match.group(1) if match else None
    if want_heading and heading is None and tail:
        match = _HEADING.search(tail)
        heading = match.group(1) if match else None
    return heading
