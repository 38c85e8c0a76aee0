"""A prompt-tuned model's soft prompt in the engine gives what peft's own model gives.

The reference is greedy decoding by peft's forward pass over the whole sequence at every step (peft
puts the soft prompt in front), not ``peft_model.generate``: peft 0.21 looks for the KV cache under
transformers' old argument name, so with transformers 5.25, which passes it as ``cache``, its generate
puts the soft prompt in front of every new token again and says something else after the first token.
"""

import pytest
import torch

from genlab.generation import GenerationEngine, GenerationSettings
from genlab.models.tiny import tiny_model

PROMPTS = ["#Person1#: Where is my parcel?", "#Person1#: Can I change my booking to Friday? #Person2#: Yes."]


@pytest.fixture(scope="module")
def prompt_tuned():
    from peft import PromptTuningConfig, TaskType, get_peft_model

    loaded = tiny_model("causal", seed=3)
    with torch.no_grad():  # larger weights: a random tiny model then says varied things, not one token over and over
        for parameter in loaded.model.parameters():
            parameter.mul_(4.0)
    peft_model = get_peft_model(loaded.model, PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=5))
    torch.manual_seed(0)
    with torch.no_grad():  # trained-looking vectors: large enough to change what the model says
        peft_model.prompt_encoder["default"].embedding.weight.normal_(0, 1.0)
    peft_model.eval()
    soft_prompt = peft_model.prompt_encoder["default"].embedding.weight.detach().clone()
    return loaded, peft_model, soft_prompt


def test_engine_with_soft_prompt_matches_greedy_decoding_by_peft_forward(prompt_tuned) -> None:
    from dataclasses import replace

    loaded, peft_model, soft_prompt = prompt_tuned
    engine = GenerationEngine(replace(loaded, soft_prompt=soft_prompt))
    settings = GenerationSettings(max_new_tokens=12)
    for prompt in PROMPTS:
        ids = loaded.tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            for _ in range(12):  # no cache: the soft prompt and everything so far, read again at every step
                next_id = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1].argmax(-1)
                ids = torch.cat([ids, next_id[:, None]], dim=1)
        reference = ids[0, -12:].tolist()
        ours = engine.generate([prompt], settings)[0]
        assert list(ours.choices[0].token_ids) == reference
        assert len(set(ours.choices[0].token_ids)) > 3  # a varied answer, so agreeing means something


def test_soft_prompt_changes_the_output_and_batching_does_not(prompt_tuned) -> None:
    from dataclasses import replace

    loaded, _, soft_prompt = prompt_tuned
    settings = GenerationSettings(max_new_tokens=12)
    tuned = GenerationEngine(replace(loaded, soft_prompt=soft_prompt), batch_size=4)
    plain = GenerationEngine(loaded, batch_size=4)
    together = [c.text for c in tuned.generate(PROMPTS, settings)]
    alone = [tuned.generate([p], settings)[0].text for p in PROMPTS]
    assert together == alone
    assert together != [c.text for c in plain.generate(PROMPTS, settings)]


def test_soft_prompt_counts_against_the_context_window(prompt_tuned) -> None:
    from dataclasses import replace

    from genlab.errors import PromptTooLongError

    loaded, _, soft_prompt = prompt_tuned
    engine = GenerationEngine(replace(loaded, soft_prompt=soft_prompt))
    with pytest.raises(PromptTooLongError, match="context window of 507 tokens"):
        engine.check_fits(500, 10)
