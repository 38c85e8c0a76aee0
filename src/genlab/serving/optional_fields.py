"""Checks of the optional request fields (:data:`genlab.serving.backend.FEATURES`) before generating.

A field the server's backend cannot honour is a 400 naming it (never accepted and ignored);
``logit_bias`` keys and token-id prompts must name tokens of the model's vocabulary.
"""

from __future__ import annotations

from genlab.serving.api_errors import ApiError
from genlab.serving.backend import Backend
from genlab.serving.protocol import ChatCompletionRequest, CompletionRequest


def check_features(backend: Backend, request: ChatCompletionRequest | CompletionRequest) -> None:
    """A 400 for the first optional field the request uses that ``backend`` does not offer."""
    offered = getattr(backend, "features", frozenset())
    for feature in request.optional_features():
        if feature not in offered:
            what = "prompts as token ids are" if feature == "token_prompts" else f"{feature} is"
            raise ApiError(400, f"{what} not supported by this server's {backend.name} backend.",
                           param="prompt" if feature == "token_prompts" else feature, code="unsupported_parameter")  # fmt: skip


def logit_bias(backend: Backend, request: ChatCompletionRequest | CompletionRequest) -> dict[int, float]:
    """The request's ``logit_bias`` by token id, each id checked against the vocabulary."""
    try:
        bias = request.bias_by_token()
    except ValueError as error:
        raise ApiError(400, f"{error}.", param="logit_bias") from None
    vocab = int(getattr(backend, "vocab_size", 0))
    for token in bias:
        if token >= vocab:
            raise ApiError(400, f"logit_bias names token {token}, which is not in the model's vocabulary of {vocab} tokens.",
                           param="logit_bias")  # fmt: skip
    return bias


def check_token_ids(backend: Backend, prompts: list[str | list[int]]) -> None:
    """A 400 naming the prompt whose token ids go beyond the vocabulary."""
    vocab = int(getattr(backend, "vocab_size", 0))
    for index, prompt in enumerate(prompts):
        if isinstance(prompt, list) and max(prompt) >= vocab:
            where = "prompt" if len(prompts) == 1 else f"prompt[{index}]"
            raise ApiError(400, f"{where} holds token id {max(prompt)}, which is not in the model's vocabulary of {vocab} tokens.",
                           param="prompt")  # fmt: skip
