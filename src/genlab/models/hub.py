"""Models from the Hugging Face hub, failing fast and clearly when the hub cannot be reached.

huggingface_hub retries for about 23 s when the hub's host does not resolve, so genlab asks once,
with a short timeout, whether the host answers at all (or honours ``HF_HUB_OFFLINE``) before handing
the download to ``snapshot_download``. With a network, any hub model works as it would in plain
transformers; offline, a hub id ends in one sentence within a few seconds.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from genlab.errors import HubUnavailableError, ModelNotFoundError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
PROBE_TIMEOUT_S = 3.0
# What a model folder needs; skips other frameworks' weights (tf, flax, onnx, gguf) in the repo.
WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.py", "*.jinja"]


def looks_like_hub_id(name: str) -> bool:
    return bool(HUB_ID.match(name))


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _offline_flag() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


MODEL_HINT = "use a local folder, a GGUF file or a model pack (`genlab models list`)"


def ensure_hub_reachable(repo_id: str, timeout_s: float = PROBE_TIMEOUT_S, *, hint: str = MODEL_HINT) -> None:
    """Raise :class:`HubUnavailableError` unless the hub's host resolves and accepts a connection.

    ``hint`` ends the message: what the user can use instead of the hub.
    """
    if _offline_flag():
        raise HubUnavailableError(f"cannot fetch {repo_id!r}: HF_HUB_OFFLINE is set, so the hub is not asked; {hint}.")
    url = urlparse(hub_endpoint())
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)

    def connect() -> None:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass

    # getaddrinfo has no timeout of its own, so the whole probe runs in a thread we stop waiting for.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(connect).result(timeout=timeout_s)
    except (OSError, concurrent.futures.TimeoutError) as error:
        reason = "timed out" if isinstance(error, concurrent.futures.TimeoutError | TimeoutError) else str(error)
        raise HubUnavailableError(f"cannot fetch {repo_id!r}: the hub at {host} is not reachable ({reason}); {hint}.") from None
    finally:
        pool.shutdown(wait=False)


def download_from_hub(repo_id: str, revision: str | None = None) -> Path:
    """Download (or reuse the cached copy of) a hub model and return its local folder."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        # A cached copy works offline too; only go to the network when it is missing.
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=WEIGHT_PATTERNS, local_files_only=True))
    except Exception:  # noqa: BLE001 - any miss in the cache means "download it"
        pass
    ensure_hub_reachable(repo_id)
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=WEIGHT_PATTERNS, etag_timeout=10))
    except GatedRepoError:
        raise ModelNotFoundError(
            f"{repo_id!r} is gated on the hub: accept its licence on its page and set HF_TOKEN."
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"there is no model {repo_id!r} on the hub (or it is private: set HF_TOKEN)."
        ) from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"{repo_id!r} has no revision {revision!r} on the hub.") from None
