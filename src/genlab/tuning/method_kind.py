"""What a fine-tuning method changes about the shared run, said by the method's folder.

Every fine-tuning method runs :func:`genlab.tuning.trainer.finetune`; a method whose data or checks
differ says so here (:func:`genlab.tuning.finetune_method.finetune_method` takes it), so the shared
run never tests a method's name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FinetuneKind:
    # Trains on packed raw text (``data.text_field``, :mod:`genlab.tuning.packing`), not on input/target
    # pairs: there are no answers to score on the validation rows, and no task to weigh forgetting against.
    raw_text: bool = False
    # False when the base weights stay as they were (prompt tuning: multiple-choice scoring reads no soft
    # prompt), so a forgetting check would only ever report a change of zero and is skipped.
    changes_base_weights: bool = True

    @property
    def scores_answers(self) -> bool:
        """Whether the trained model's answers on the validation rows can be scored (ROUGE, BLEU)."""
        return not self.raw_text

    @property
    def checks_forgetting(self) -> bool:
        """Whether the catastrophic-forgetting check (:mod:`genlab.tuning.forgetting`) applies."""
        return self.changes_base_weights and not self.raw_text
