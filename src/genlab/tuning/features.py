"""Training rows as token ids, and how a batch of them is padded.

Every way of making training data (instructions, task mixtures, packed raw text) ends in a
:class:`FeatureSet`: one dict per row with ``input_ids``, ``attention_mask`` and ``labels``. A label
of ``IGNORE_INDEX`` (-100, the default ``ignore_index`` of PyTorch's cross-entropy) marks a token that
carries no loss, such as a prompt token in completion-only training or a padding position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from genlab.errors import InvalidValueError

IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy skips targets equal to its ignore_index, -100

Feature = dict[str, list[int]]  # input_ids, attention_mask, labels


@dataclass
class FeatureSet:
    """Tokenised training rows and what became of the source rows.

    ``prompt_lengths[i]`` / ``target_lengths[i]`` count row i's tokens that the model reads as context
    and the tokens it learns to produce (target plus end token; a seq2seq row's labels; a whole packed
    block), so token totals survive mixing and subsetting.
    """

    features: list[Feature] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # the source row (Example id) of each feature, in order
    dropped: list[str] = field(default_factory=list)  # ids of rows left out because they exceed max_length
    prompt_lengths: list[int] = field(default_factory=list)
    target_lengths: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.features)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.prompt_lengths)

    @property
    def target_tokens(self) -> int:
        return sum(self.target_lengths)

    def append(self, row_id: str, feature: Feature, prompt_length: int, target_length: int) -> None:
        self.features.append(feature)
        self.ids.append(row_id)
        self.prompt_lengths.append(prompt_length)
        self.target_lengths.append(target_length)

    def row(self, index: int) -> tuple[str, Feature, int, int]:
        """Row ``index`` as :meth:`append` takes it: (id, feature, prompt length, target length)."""
        return self.ids[index], self.features[index], self.prompt_lengths[index], self.target_lengths[index]

    def select(self, indices: Sequence[int]) -> FeatureSet:
        """The rows at ``indices`` (repeats allowed), in that order; ``dropped`` is kept as it is."""
        subset = FeatureSet(dropped=list(self.dropped))
        for index in indices:
            subset.append(*self.row(index))
        return subset


def training_collator(tokenizer: Any, *, is_encoder_decoder: bool = False) -> Callable[[list[Feature]], Any]:
    """Pad a batch of features on the right: ``input_ids`` with the pad id (eos when the tokenizer has
    no pad token), ``attention_mask`` with 0, ``labels`` with -100; returns torch tensors.

    This is transformers' ``DataCollatorForSeq2Seq``, which pads labels separately from the inputs (a
    seq2seq row's labels are not as long as its inputs) and with -100, so padding never carries loss.
    It pads on the tokenizer's ``padding_side`` and needs a pad token, so it gets a copy of the
    tokenizer set to pad on the right (labels are built left-aligned with their inputs) with eos as
    pad if need be; the caller's tokenizer, which generation may use, is left unchanged.

    ``is_encoder_decoder`` changes nothing in the batch: an encoder-decoder model (T5, BART) builds its
    decoder inputs from ``labels`` itself, shifting them right and reading -100 as its pad token.
    """
    import copy

    from transformers import DataCollatorForSeq2Seq

    del is_encoder_decoder  # see the docstring: both kinds are padded the same way
    padding_tokenizer = copy.deepcopy(tokenizer)
    padding_tokenizer.padding_side = "right"
    if padding_tokenizer.pad_token_id is None:
        if padding_tokenizer.eos_token is None:
            raise InvalidValueError(
                "the tokenizer has neither a pad nor an end-of-sequence token, so a batch cannot be padded."
            )
        padding_tokenizer.pad_token = padding_tokenizer.eos_token
    return DataCollatorForSeq2Seq(
        padding_tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt"
    )
