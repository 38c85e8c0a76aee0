"""Local models as providers: genlab's generation engine for text, sentence-transformers for embeddings.

Nothing here generates or embeds by itself: :class:`LocalProvider` hands prompts to
:class:`genlab.generation.GenerationEngine` (the same engine ``genlab generate`` and serving use) and
:class:`LocalEmbedder` to ``SentenceTransformer.encode`` on the default embedder pack or any local
sentence-transformers folder. Both load their model on first use, so building one is free.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from genlab.models.packs import DEFAULT_EMBEDDER, DEFAULT_GENERATOR


class LocalProvider:
    """A local generator (pack name, model folder, GGUF file, hub id) behind the provider interface.

    Instruction models read the prompt as a user message in their chat template (``chat=None``
    decides by whether the tokenizer has one); ``count_tokens`` counts what the model really reads.
    """

    def __init__(self, model: Any = DEFAULT_GENERATOR, *, chat: bool | None = None, batch_size: int = 1) -> None:
        self._model = model  # a name, or an already loaded genlab.models.load.LoadedModel
        self.name = model if isinstance(model, str) else model.name
        self._chat = chat
        self._batch_size = batch_size
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from genlab.generation.api import engine_for

            self._engine = engine_for(self._model, self._batch_size)
        return self._engine

    @property
    def chat(self) -> bool:
        if self._chat is None:
            self._chat = bool(getattr(self.engine.loaded.tokenizer, "chat_template", None))
        return self._chat

    @property
    def context_window(self) -> int:
        return int(self.engine.loaded.context_window - self.engine.virtual_tokens)

    def complete(
        self, prompt: str, *, max_tokens: int = 256, stop: Sequence[str] = (), temperature: float = 0.0
    ) -> str:
        from genlab.generation import GenerationSettings

        settings = GenerationSettings(max_new_tokens=max_tokens, stop=tuple(stop), temperature=temperature)
        return self.engine.generate(prompt, settings, chat=self.chat)[0].text

    def count_tokens(self, text: str) -> int:
        return len(self.engine._encode_prompt(text, chat=self.chat, preformatted=False))


# A question (a handful of texts) is embedded on one thread: a forward pass this small gains nothing
# from a second thread, and on a busy machine the threads wait for each other. Measured here (2 cores,
# load ~13), one 10-word question with all-MiniLM-L6-v2: p50 1308 ms on 2 threads, 43 ms on 1.
SMALL_BATCH = 8


@contextlib.contextmanager
def _one_thread_if(small: bool) -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    if not small or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class LocalEmbedder:
    """A sentence-transformers model (default: the all-MiniLM-L6-v2 pack, 384 dims) as an embedder."""

    def __init__(self, model: str = DEFAULT_EMBEDDER, *, batch_size: int = 64, show_progress: bool = False) -> None:
        self.name = model
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            from genlab.models.companions import load_embedder

            self._model = load_embedder(self.name)
        return self._model

    @property
    def dim(self) -> int:
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def max_tokens(self) -> int:
        # The model's window less the [CLS] and [SEP] tokens the tokenizer adds around every text.
        return int(self.model.max_seq_length) - 2

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with _one_thread_if(len(texts) <= SMALL_BATCH):
            vectors = self.model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=self.show_progress,
            )  # fmt: skip
        return np.asarray(vectors, dtype=np.float32)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        if self._tokenizer is None:
            # A copy of the fast tokenizer without its truncation (sentence-transformers sets one at
            # the model's window): chunking needs the offsets of every token of a long document.
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_str(self.model.tokenizer.backend_tokenizer.to_str())
            self._tokenizer.no_truncation()
            self._tokenizer.no_padding()
        return [tuple(span) for span in self._tokenizer.encode(text, add_special_tokens=False).offsets]
