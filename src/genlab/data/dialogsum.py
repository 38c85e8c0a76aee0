"""DialogSum: real-life dialogues with one human-written summary each, the course's summarisation data.

Chen, Liu, Chen and Zhang, "DialogSum: A Real-Life Scenario Dialogue Summarization Dataset",
Findings of ACL 2021 (https://aclanthology.org/2021.findings-acl.449/). Licence: CC BY-NC-SA 4.0
(non-commercial use, attribution, share-alike); genlab ships none of it and reads it from where the
user keeps it: the hub copy ``knkarthick/dialogsum`` (splits train 12,460 / validation 500 / test
1,500; fields ``id``, ``dialogue``, ``summary``, ``topic``) or a local JSONL file such as the authors'
dev split (500 rows, fields ``fname``, ``dialogue``, ``summary``, ``topic``).
"""

from __future__ import annotations

from pathlib import Path

from genlab.data.example import Example
from genlab.data.loaders import load_examples

DIALOGSUM_HUB_ID = "knkarthick/dialogsum"


def load_dialogsum(
    split: str = "validation", *, path: str | Path | None = None, limit: int | None = None
) -> list[Example]:
    """DialogSum as Examples: input = dialogue, target = summary, ``fields["topic"]`` kept.

    With ``path``, read that local JSONL file (ids from its ``fname`` field, e.g. ``"dev_0"``; a file is
    one split, so ``split`` is ignored); the local dev split has 500 rows. Without ``path``, load
    ``split`` of the hub copy (ids from its ``id`` field); offline, that fails within seconds with
    :class:`~genlab.errors.HubUnavailableError`.
    """
    if path is not None:
        return load_examples(path, input_field="dialogue", target_field="summary", id_field="fname", limit=limit)
    return load_examples(
        DIALOGSUM_HUB_ID, input_field="dialogue", target_field="summary", id_field="id", split=split, limit=limit
    )
