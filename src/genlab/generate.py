"""Generate text from a loaded model: one prompt, greedy by default.

The smallest useful entry point; it uses the tokenizer's chat template when the model has one and
decodes only the new tokens. The batched engine of the prompt stage builds on the same steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from genlab.errors import GenlabError
from genlab.models.load import LoadedModel


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    new_tokens: int
    seconds: float
    finish_reason: str  # "stop" (end-of-sequence) or "length" (max_new_tokens reached)

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def generate_text(loaded: LoadedModel, prompt: str, *, max_new_tokens: int = 64, chat: bool = True) -> Generation:
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    if chat and getattr(tokenizer, "chat_template", None) and not loaded.is_encoder_decoder:
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    else:
        inputs = tokenizer(prompt, return_tensors="pt")
    prompt_tokens = int(inputs["input_ids"].shape[1])
    limit = loaded.context_window
    if not loaded.is_encoder_decoder and prompt_tokens + max_new_tokens > limit:
        raise GenlabError(
            f"the prompt has {prompt_tokens} tokens and max_new_tokens is {max_new_tokens}, "
            f"more than the model's context window of {limit} tokens."
        )
    start = time.perf_counter()
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    seconds = time.perf_counter() - start
    # An encoder-decoder's output starts with the decoder start token; a decoder-only's with the prompt.
    new_ids = output[0][1:] if loaded.is_encoder_decoder else output[0][prompt_tokens:]
    new_count = int(new_ids.numel())
    eos_ids = model.generation_config.eos_token_id
    eos_ids = set(eos_ids if isinstance(eos_ids, list) else [eos_ids])
    finish = "stop" if new_ids.numel() and int(new_ids[-1]) in eos_ids else "length"
    text = tokenizer.decode(new_ids, skip_special_tokens=True).strip()
    return Generation(text, prompt_tokens, new_count, seconds, finish)
