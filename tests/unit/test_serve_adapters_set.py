"""``AdapterSet.add`` and ``remove``, which a running server uses to change its adapters: the logits after
each change equal genlab's merge of the same base and adapter (a fresh load), and taking the last weight
adapter off gives back the plain base bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from test_serve_support import make_tiny_assets

from genlab.errors import GenlabError, ModelNotFoundError
from genlab.models.adapters import load_adapters, merge_adapter
from genlab.models.load import load_model

TEXT = "#Person1#: Where is my parcel? #Person2#: It left the depot today."


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory):
    return make_tiny_assets(tmp_path_factory.getbasetemp() / "serve-assets")


def logits(model: Any, tokenizer: Any) -> torch.Tensor:
    ids = tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits


def merged(base: Path, adapter: Path | None) -> torch.Tensor:
    loaded = load_model(str(base))
    model = merge_adapter(loaded, adapter).model if adapter is not None else loaded.model
    return logits(model, loaded.tokenizer)


def test_adapters_added_and_removed_one_by_one_give_the_merged_logits(assets) -> None:
    loaded = load_model(str(assets.base))
    tokenizer = loaded.tokenizer
    adapter_set = load_adapters(loaded, {})
    assert adapter_set.names == [] and not adapter_set.wraps_model
    base = merged(assets.base, None)

    adapter_set.add("alpha", assets.adapters["alpha"])
    adapter_set.add("soft", assets.adapters["soft"])
    assert adapter_set.wraps_model and adapter_set.soft_prompt("soft") is not None and adapter_set.soft_prompt("alpha") is None
    assert torch.equal(logits(adapter_set.use(None).model, tokenizer), base)  # added, not switched on
    torch.testing.assert_close(logits(adapter_set.use("alpha").model, tokenizer), merged(assets.base, assets.adapters["alpha"]))

    adapter_set.add("beta", assets.adapters["beta"])  # while alpha is active
    assert adapter_set.active == "alpha"
    torch.testing.assert_close(logits(adapter_set.use("beta").model, tokenizer), merged(assets.base, assets.adapters["beta"]))

    adapter_set.remove("beta")  # the active one: back to the plain base
    assert adapter_set.names == ["alpha", "soft"] and adapter_set.active is None
    torch.testing.assert_close(logits(adapter_set.use("alpha").model, tokenizer), merged(assets.base, assets.adapters["alpha"]))
    adapter_set.remove("alpha")  # the last weight adapter: peft's layers come off
    assert not adapter_set.wraps_model and adapter_set.names == ["soft"]
    assert torch.equal(logits(adapter_set.use(None).model, tokenizer), base)
    assert not any("lora" in name for name, _ in loaded.model.named_modules())

    with pytest.raises(GenlabError, match="taken"):
        adapter_set.add("soft", assets.adapters["alpha"])
    with pytest.raises(ModelNotFoundError, match="beta"):
        adapter_set.remove("beta")
