"""What Search[entity] and Lookup[keyword] read: a local corpus, or a RAG index made by ``genlab rag ingest``.

As in ReAct (Yao et al., 2022, https://arxiv.org/abs/2210.03629), Search returns the opening
sentences of the best-matching document and makes it the current one; Lookup returns the next
sentence of the current document containing the keyword ("(Result 2 / 5) ..."). Local documents are
ranked by an exact title match first, then by BM25 over lowercase word tokens (k1=1.5, b=0.75).
Everything returned is text for an Observation: data, never instructions.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from genlab.errors import GenlabError

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst")
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class CorpusError(GenlabError):
    """A corpus folder that is missing or holds no text files."""


@dataclass(frozen=True)
class Document:
    title: str
    text: str
    source: str  # a path or a name, shown with the observation


class Corpus(Protocol):
    def search(self, query: str, k: int = 3) -> list[Document]:
        """The best documents for ``query``, best first (empty when nothing matches)."""
        ...


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


class LocalCorpus:
    """Documents in memory: ``LocalCorpus.from_folder(path)`` or ``LocalCorpus({"title": "text"})``."""

    def __init__(self, documents: Mapping[str, str] | Sequence[Document]) -> None:
        if isinstance(documents, Mapping):
            documents = [Document(title, text, title) for title, text in documents.items()]
        self.documents = list(documents)
        self._tokens = [Counter(_tokens(d.title + " " + d.text)) for d in self.documents]
        self._lengths = [sum(c.values()) for c in self._tokens]
        self._average = (sum(self._lengths) / len(self._lengths)) if self._lengths else 0.0

    @classmethod
    def from_folder(cls, path: str | Path) -> LocalCorpus:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise CorpusError(f"no such corpus folder: {folder}.")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise CorpusError(f"{folder} holds no text files ({', '.join(TEXT_SUFFIXES)}).")
        docs = [Document(p.stem.replace("_", " "), p.read_text(encoding="utf-8", errors="replace"), str(p)) for p in files]
        return cls(docs)

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> LocalCorpus:
        """Untitled texts: each is titled by its first line."""
        return cls([Document(t.strip().splitlines()[0][:80] if t.strip() else f"document {i + 1}", t, f"document {i + 1}")
                    for i, t in enumerate(texts)])  # fmt: skip

    def search(self, query: str, k: int = 3) -> list[Document]:
        wanted = query.strip().lower()
        exact = [d for d in self.documents if d.title.lower() == wanted]
        terms = _tokens(query)
        n = len(self.documents)
        scores = []
        for index, counts in enumerate(self._tokens):
            score = 0.0
            for term in set(terms):
                tf = counts.get(term, 0)
                if not tf:
                    continue
                df = sum(1 for c in self._tokens if term in c)
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                norm = 1.5 * (1 - 0.75 + 0.75 * self._lengths[index] / (self._average or 1))
                score += idf * tf * 2.5 / (tf + norm)
            if score > 0:
                scores.append((score, index))
        ranked = [self.documents[i] for _, i in sorted(scores, key=lambda s: (-s[0], s[1]))]
        return (exact + [d for d in ranked if d not in exact])[:k]


class IndexCorpus:
    """A RAG index (``genlab.apps.rag.open_index(name)``) behind the same interface: each hit is a document."""

    def __init__(self, name: str) -> None:
        from genlab.apps.rag import open_index

        self.name = name
        self.index = open_index(name)

    def search(self, query: str, k: int = 3) -> list[Document]:
        hits = self.index.search(query, k=k)
        return [Document(str(h.metadata.get("title") or Path(h.path).stem), h.text, f"{h.path}#{h.chunk}") for h in hits]


class Browser:
    """The state Search and Lookup share: the current document and where Lookup has got to."""

    def __init__(self, corpus: Corpus, *, opening_sentences: int = 3) -> None:
        self.corpus = corpus
        self.opening_sentences = opening_sentences
        self.current: Document | None = None
        self._lookup: tuple[str, list[str], int] | None = None

    def search(self, entity: str) -> str:
        entity = entity.strip()
        if not entity:
            return "Search needs an entity, e.g. Search[Marie Curie]."
        found = self.corpus.search(entity, k=5)
        if not found:
            return f"Could not find {entity}."
        self.current, self._lookup = found[0], None
        opening = " ".join(sentences(found[0].text)[: self.opening_sentences])
        similar = [d.title for d in found[1:] if d.title != found[0].title]
        tail = f" (Similar: {', '.join(similar[:4])}.)" if similar else ""
        return f"[{found[0].source}] {opening}{tail}"

    def lookup(self, keyword: str) -> str:
        keyword = keyword.strip()
        if self.current is None:
            return "There is no current document: use Search[entity] first."
        if not keyword:
            return "Lookup needs a keyword, e.g. Lookup[born]."
        if self._lookup is None or self._lookup[0] != keyword.lower():
            matches = [s for s in sentences(self.current.text) if keyword.lower() in s.lower()]
            self._lookup = (keyword.lower(), matches, 0)
        _, matches, position = self._lookup
        if not matches:
            return f"No sentence of {self.current.title} contains {keyword!r}."
        if position >= len(matches):
            return f"No more results for {keyword!r}."
        self._lookup = (keyword.lower(), matches, position + 1)
        return f"(Result {position + 1} / {len(matches)}) {matches[position]}"
