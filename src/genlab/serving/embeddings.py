"""``/v1/embeddings``: sentence embeddings from genlab's embedder (the local all-MiniLM-L6-v2 pack by default).

The embedder comes from :func:`genlab.apps.providers.get_embedder` and loads on the first request.
A local sentence-transformers model is called through ``SentenceTransformer.encode`` directly:
``LocalEmbedder.embed`` switches torch to one thread *process-wide* for small batches, which would
slow the generator thread decoding beside it. Token counts (for ``usage``) come from the embedder's
tokenizer (words, for the hashing test embedder).

An input may be token ids of the embedder's own tokenizer (as OpenAI's API allows): they are decoded
to text with that tokenizer, special tokens dropped, and embedded as that text; an embedder without a
tokenizer (the hashing test embedder) refuses them.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from genlab.errors import InvalidValueError
from genlab.models.packs import DEFAULT_EMBEDDER


class EmbeddingService:
    def __init__(self, spec: str | None = None) -> None:
        self.spec = spec
        self.model_id = spec or DEFAULT_EMBEDDER
        self._embedder: Any = None
        self._lock = threading.Lock()  # one load; sentence-transformers' encode is not re-entrant-safe

    def _get(self) -> Any:
        if self._embedder is None:
            from genlab.apps.providers import get_embedder

            self._embedder = get_embedder(self.spec)
        return self._embedder

    def texts_of(self, inputs: Sequence[str | list[int]]) -> list[str]:
        """The inputs as texts: token ids decoded with the embedder's tokenizer (loading it on first use)."""
        if all(isinstance(item, str) for item in inputs):
            return list(inputs)  # type: ignore[arg-type]
        from genlab.apps.providers.local import LocalEmbedder

        with self._lock:
            embedder = self._get()
            if not isinstance(embedder, LocalEmbedder):
                raise InvalidValueError(f"input as token ids is not allowed with the embedder {self.model_id!r}: it has no tokenizer, send text.")
            tokenizer = embedder.model.tokenizer
            vocab = len(tokenizer)
            texts = []
            for index, item in enumerate(inputs):
                if isinstance(item, str):
                    texts.append(item)
                    continue
                if max(item) >= vocab:
                    raise InvalidValueError(f"input[{index}] holds token id {max(item)}, which is not in the embedder's vocabulary of {vocab} tokens.")
                texts.append(tokenizer.decode(item, skip_special_tokens=True))
        return texts

    def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """(len(texts), dim) unit vectors and the number of tokens read."""
        from genlab.apps.providers.local import LocalEmbedder

        with self._lock:
            embedder = self._get()
            if isinstance(embedder, LocalEmbedder):
                model = embedder.model
                vectors = model.encode(
                    list(texts), batch_size=embedder.batch_size, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                )  # fmt: skip
                tokens = sum(len(ids) for ids in model.tokenizer(list(texts), truncation=True)["input_ids"])
            else:
                vectors = embedder.embed(list(texts))
                tokens = sum(len(embedder.token_offsets(text)) for text in texts)
        return np.asarray(vectors, dtype=np.float32), int(tokens)


def embedding_body(model: str, vectors: np.ndarray, tokens: int, encoding: str, dimensions: int | None) -> dict[str, Any]:
    """OpenAI's embeddings response; ``dimensions`` keeps the first ones and renormalises (as OpenAI's v3 models)."""
    if dimensions is not None and dimensions < vectors.shape[1]:
        vectors = vectors[:, :dimensions]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1.0, norms)
    data = []
    for index, vector in enumerate(vectors):
        value: Any = (
            base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii") if encoding == "base64" else vector.tolist()
        )
        data.append({"object": "embedding", "index": index, "embedding": value})
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
