"""Optional serving backends: the registry, the import guards and their one-sentence errors, and the
parts of the llama.cpp and vLLM backends that run without their libraries (model and adapter checks)."""

from __future__ import annotations

import sys
from collections import namedtuple
from pathlib import Path

import pytest

from genlab.errors import BackendUnavailableError, GenlabError, InvalidValueError, ModelNotFoundError
from genlab.serving.backends import OPTIONAL_BACKENDS, OptionalBackend, get_backend, import_library, installed_backends
from genlab.serving.backends.llamacpp import resolve_gguf


def _one_sentence(message: str) -> bool:
    return "\n" not in message and message.endswith(".") and message.count(". ") == 0


@pytest.fixture
def missing_library(monkeypatch: pytest.MonkeyPatch):
    """Point a backend's registry entry at a library that is not installed."""

    def point(name: str, library: str = "genlab_no_such_library") -> None:
        entry = OPTIONAL_BACKENDS[name]
        monkeypatch.setitem(OPTIONAL_BACKENDS, name, OptionalBackend(**{**entry.__dict__, "library": library}))

    return point


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(InvalidValueError) as caught:
        get_backend("tensorrt")
    message = str(caught.value)
    assert "'tensorrt'" in message and "genlab, onnxruntime-genai, ctranslate2, llama.cpp, vllm" in message


def test_vllm_missing_says_how_to_install_it_and_that_it_needs_a_gpu() -> None:
    if OPTIONAL_BACKENDS["vllm"].is_installed():
        pytest.skip("vllm is installed here: the missing-library path is covered by the llama.cpp case")
    with pytest.raises(BackendUnavailableError) as caught:
        get_backend("vllm")
    message = str(caught.value)
    assert "pip install vllm" in message and "GPU" in message
    assert _one_sentence(message)
    assert "vllm" not in installed_backends()


def test_the_vllm_backend_class_refuses_to_start_without_vllm() -> None:
    if OPTIONAL_BACKENDS["vllm"].is_installed():
        pytest.skip("vllm is installed here")
    from genlab.serving.backends.vllm import VllmBackend

    with pytest.raises(BackendUnavailableError, match="pip install vllm"):
        VllmBackend("smollm2-135m-instruct")


def test_genlab_serve_with_a_missing_backend_exits_2_with_one_line() -> None:
    if OPTIONAL_BACKENDS["vllm"].is_installed():
        pytest.skip("vllm is installed here")
    from tests.conftest import run_cli

    result = run_cli("serve", "--backend", "vllm", "--port", "0")
    assert result.returncode == 2
    assert "pip install vllm" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_llamacpp_missing_names_the_make_target(missing_library) -> None:
    missing_library("llama.cpp")
    with pytest.raises(BackendUnavailableError) as caught:
        get_backend("llama.cpp")
    assert "make setup-llamacpp" in str(caught.value) and _one_sentence(str(caught.value))
    assert "llama.cpp" not in installed_backends()
    from genlab.serving.backends.llamacpp import LlamaCppBackend

    with pytest.raises(BackendUnavailableError, match="make setup-llamacpp"):
        LlamaCppBackend("smollm2-135m-instruct")


def test_a_library_that_is_installed_but_broken_is_one_sentence(
    missing_library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "genlab_broken_library"
    package.mkdir()
    (package / "__init__.py").write_text(
        'raise ImportError("libcuda.so.1: cannot open shared object file: No such file or directory")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "genlab_broken_library", raising=False)
    missing_library("vllm", library="genlab_broken_library")
    with pytest.raises(BackendUnavailableError) as caught:
        import_library("vllm")
    message = str(caught.value)
    assert "installed but fails to import" in message and "libcuda.so.1" in message
    assert "\n" not in message and message.endswith(".")


def test_get_backend_returns_the_class_when_the_library_is_there(missing_library) -> None:
    # "json" stands in for an installed library: the class comes back without importing llama_cpp.
    missing_library("llama.cpp", library="json")
    cls = get_backend("llama.cpp")
    assert cls.__name__ == "LlamaCppBackend" and cls.name == "llama.cpp"
    assert "llama.cpp" in installed_backends()


# --- llama.cpp: which models it serves (no llama_cpp needed) ---------------------------------------


def test_resolve_gguf_finds_the_default_packs_gguf() -> None:
    path = resolve_gguf("smollm2-135m-instruct")
    assert path.suffix == ".gguf" and path.is_file()
    assert path.read_bytes()[:4] == b"GGUF"


def test_resolve_gguf_accepts_a_path_and_refuses_what_is_not_gguf(tmp_path: Path) -> None:
    source = resolve_gguf("smollm2-135m-instruct")
    assert resolve_gguf(str(source)) == source
    with pytest.raises(ModelNotFoundError, match="no GGUF file"):
        resolve_gguf(str(tmp_path / "missing.gguf"))
    not_gguf = tmp_path / "weights.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(GenlabError, match="not a GGUF file"):
        resolve_gguf(str(not_gguf))
    with pytest.raises(InvalidValueError, match="not one"):
        resolve_gguf("all-minilm-l6-v2")  # an embedder pack, not a GGUF generator
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_gguf("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert "smollm2-135m-instruct" in str(caught.value) and _one_sentence(str(caught.value))


# --- vLLM: adapters become LoRARequests (no vllm needed) --------------------------------------------


def _save_adapter(folder: Path, config) -> Path:
    from peft import get_peft_model

    from genlab.models.tiny import tiny_model

    peft_model = get_peft_model(tiny_model().model, config)
    peft_model.save_pretrained(folder)
    return folder


def test_lora_adapters_become_lora_requests_numbered_from_one(tmp_path: Path) -> None:
    from peft import LoraConfig

    from genlab.serving.backends.vllm import lora_requests

    fake_request = namedtuple("LoRARequest", "lora_name lora_int_id lora_path")
    config = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    first = _save_adapter(tmp_path / "first", config)
    second = _save_adapter(tmp_path / "second", config)
    requests = lora_requests({"summarise": str(first), "detox": str(second)}, fake_request)
    assert list(requests) == ["summarise", "detox"]
    assert [r.lora_int_id for r in requests.values()] == [1, 2]  # vLLM reserves 0 for "no adapter"
    assert requests["detox"].lora_path == str(second.resolve())


def test_vllm_refuses_prompt_tuning_adapters(tmp_path: Path) -> None:
    from peft import PromptTuningConfig

    from genlab.serving.backends.vllm import lora_requests

    soft = _save_adapter(tmp_path / "soft", PromptTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"))
    with pytest.raises(InvalidValueError) as caught:
        lora_requests({"soft": str(soft)}, object)
    assert "PROMPT_TUNING" in str(caught.value) and "--backend genlab" in str(caught.value)
