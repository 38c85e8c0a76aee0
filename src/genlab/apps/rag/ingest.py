"""Read documents: plain text, Markdown, HTML and PDF files, one file or a folder (recursively).

PDF text comes from ``pypdf``; HTML text from the standard library's ``html.parser`` (script, style
and other non-content elements are skipped, block elements end a line). Markdown stays as it is:
its markup is light and embedders read it well; its first heading is the title. Written here is
only the walk over the folder and the dispatch by suffix.

Every problem the user can fix is one sentence naming the path: a missing path, a folder with no
readable files, a file that is not UTF-8 text, a PDF that cannot be read.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError

TEXT_SUFFIXES = {".txt", ".text", ".rst", ".log"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
PDF_SUFFIXES = {".pdf"}


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


def _read_utf8(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise IngestError(f"{path} is not UTF-8 text.") from None


def _read_text(path: Path) -> dict[str, Any]:
    return {"text": _read_utf8(path), "format": "text", "title": path.stem}


def _read_markdown(path: Path) -> dict[str, Any]:
    text = _read_utf8(path)
    heading = re.search(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
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
