"""Prompt tuning (Lester et al., 2021) through peft: trained soft-prompt vectors, the model frozen.

Initialised from text the way peft's ``PromptTuningInit.TEXT`` does -- the embeddings of the text's
tokens, repeated to fill the virtual tokens -- but with the tokenizer already loaded (peft would load
it again by name, which needs a path or the hub), or at random when ``init_text`` is None.
"""

from __future__ import annotations

import math
from typing import Any

from genlab.errors import InvalidValueError
from genlab.models.load import LoadedModel
from genlab.tuning.recipe import PromptTuningConfig


def prepare(loaded: LoadedModel, settings: PromptTuningConfig) -> Any:
    import torch
    from peft import PromptTuningConfig as PeftPromptTuningConfig
    from peft import TaskType, get_peft_model

    config = PeftPromptTuningConfig(
        task_type=TaskType.SEQ_2_SEQ_LM if loaded.is_encoder_decoder else TaskType.CAUSAL_LM,
        num_virtual_tokens=settings.num_virtual_tokens,
    )
    model = get_peft_model(loaded.model, config)
    if settings.init_text is not None:
        ids = loaded.tokenizer(settings.init_text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise InvalidValueError("prompt_tuning.init_text='' is not allowed: give some text or none (random).")
        total = model.prompt_encoder["default"].embedding.num_embeddings
        ids = (ids * math.ceil(total / len(ids)))[:total]
        with torch.no_grad():
            vectors = loaded.model.get_input_embeddings()(torch.tensor(ids)).float()
            model.prompt_encoder["default"].embedding.weight.copy_(vectors)
    model.train()
    return model
