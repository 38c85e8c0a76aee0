"""`genlab export gguf` end to end on a tiny model and adapter: the folder written, the Modelfile, lineage, refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import gguf
import pytest

from genlab.errors import GenlabError, InvalidValueError
from genlab.export import run as export_run
from genlab.export.quantize import llama_cpp_available
from genlab.export.run import ExportRequest, export_gguf
from genlab.lineage import LineageStore
from tests.conftest import IN_CI, run_cli
from tests.ollama_template_support import parse_modelfile
from tests.unit.export_support import qwen2_tokenizer, shared_base_and_lora, tiny_causal


@pytest.fixture
def built() -> dict[str, Path]:
    return shared_base_and_lora()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_cli_exports_a_model_folder_and_records_the_run(built, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("export", "gguf", str(built["base"]), "--output", str(out), "--quant", "q8_0", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    model = Path(report["model_gguf"])
    assert model == out / "base-q8_0.gguf" and sorted(p.name for p in out.iterdir()) == ["Modelfile", "base-q8_0.gguf"]
    assert gguf.GGUFReader(model).fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q8_0
    assert dict(parse_modelfile((out / "Modelfile").read_text()))["FROM"] == "./base-q8_0.gguf"
    assert report["ollama_command"] == f"cd {out} && ollama create base -f Modelfile"
    with LineageStore() as store:
        run = store.get_run(report["run_id"])
        inputs, outputs = store.artifacts_of(run.id, "input"), store.artifacts_of(run.id, "output")
    assert run.kind == "export" and run.status == "completed"
    assert [(a.kind, Path(a.path)) for a in inputs] == [("model", built["base"].resolve())]
    assert {(a.kind, Path(a.path).name, a.sha256) for a in outputs} == {
        ("gguf", model.name, sha256(model)), ("modelfile", "Modelfile", sha256(out / "Modelfile"))}  # fmt: skip
    assert report["sha256"][model.name] == sha256(model)


def test_an_adapter_is_merged_on_the_way(built, tmp_path: Path) -> None:
    result = export_gguf(ExportRequest(source=str(built["adapter"]), output=tmp_path / "merged", quant="f32"))
    assert Path(result.model_gguf).name == "tiny-lora-f32.gguf" and result.adapter_gguf is None
    assert "ADAPTER" not in dict(parse_modelfile(Path(result.modelfile).read_text()))
    with LineageStore() as store:
        kinds = {a.kind: Path(a.path) for a in store.artifacts_of(result.run_id, "input")}
    assert kinds == {"model": built["base"].resolve(), "adapter": built["adapter"].resolve()}
    base = export_gguf(ExportRequest(source=str(built["base"]), output=tmp_path / "base", quant="f32"))
    merged_q = next(t for t in gguf.GGUFReader(result.model_gguf).tensors if t.name == "blk.0.attn_q.weight")
    base_q = next(t for t in gguf.GGUFReader(base.model_gguf).tensors if t.name == "blk.0.attn_q.weight")
    assert (merged_q.data != base_q.data).any()  # the LoRA delta is in the merged weights


def test_lora_writes_the_adapter_beside_its_base_or_onto_a_base_exported_before(built, tmp_path: Path) -> None:
    first = export_gguf(ExportRequest(source=str(built["adapter"]), output=tmp_path / "one", lora=True))
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["Modelfile", "base-f16.gguf", "tiny-lora-lora.gguf"]
    pairs = dict(parse_modelfile(Path(first.modelfile).read_text()))
    assert pairs["FROM"] == "./base-f16.gguf" and pairs["ADAPTER"] == "./tiny-lora-lora.gguf"
    assert gguf.GGUFReader(first.adapter_gguf).fields["general.type"].contents() == "adapter"
    second = export_gguf(ExportRequest(source=str(built["adapter"]), output=tmp_path / "two", lora=True, base_gguf=Path(first.model_gguf)))
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["Modelfile", "tiny-lora-lora.gguf"]
    assert dict(parse_modelfile(Path(second.modelfile).read_text()))["FROM"] == first.model_gguf
    with LineageStore() as store:
        inputs = {a.kind for a in store.artifacts_of(second.run_id, "input")}
        outputs = {a.kind for a in store.artifacts_of(second.run_id, "output")}
    assert inputs == {"model", "adapter", "gguf"} and outputs == {"gguf-adapter", "modelfile"}


def test_a_qwen3_folder_exports_as_a_qwen3_gguf(tmp_path: Path) -> None:
    # Saved and loaded back as a user's folder is: AutoTokenizer picks Qwen2's tokenizer class, whose layout must stay nameable.
    tokenizer = qwen2_tokenizer()
    tiny_causal("qwen3", tokenizer).save_pretrained(tmp_path / "qwen3")
    tokenizer.save_pretrained(tmp_path / "qwen3")
    result = export_gguf(ExportRequest(source=str(tmp_path / "qwen3"), output=tmp_path / "out", quant="q8_0"))
    reader = gguf.GGUFReader(result.model_gguf)
    assert reader.fields["general.architecture"].contents() == "qwen3" and reader.fields["tokenizer.ggml.pre"].contents() == "qwen2"
    assert reader.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q8_0
    assert "blk.1.attn_k_norm.weight" in {t.name for t in reader.tensors}
    assert dict(parse_modelfile(Path(result.modelfile).read_text()))["FROM"] == "./qwen3-q8_0.gguf"


def test_mistakes_are_one_sentence_before_anything_is_recorded(built, tmp_path: Path, monkeypatch) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file.txt").write_text("mine")
    with pytest.raises(InvalidValueError, match="exists and is not an empty folder"):
        ExportRequest(source=str(built["base"]), output=taken)
    with pytest.raises(InvalidValueError, match="quant='q3'.*q4_k_m"):
        ExportRequest(source=str(built["base"]), output=tmp_path / "x", quant="q3")
    with pytest.raises(InvalidValueError, match="is a model, not an adapter"):
        export_gguf(ExportRequest(source=str(built["base"]), output=tmp_path / "x", lora=True))
    with pytest.raises(InvalidValueError, match="base_gguf is for a LoRA export"):
        ExportRequest(source=str(built["base"]), output=tmp_path / "x", base_gguf=taken / "file.txt")
    with pytest.raises(GenlabError, match="unknown model 'smollm2-135m-instruc'; did you mean smollm2-135m-instruct"):
        export_gguf(ExportRequest(source="smollm2-135m-instruc", output=tmp_path / "x"))
    monkeypatch.setattr(export_run, "llama_cpp_available", lambda: False)
    with pytest.raises(GenlabError, match="needs llama-cpp-python .*make setup-llamacpp"):
        ExportRequest(source=str(built["base"]), output=tmp_path / "x", quant="q4_k_m")
    with LineageStore() as store:
        assert store.list_runs(kind="export") == []
    assert (taken / "file.txt").read_text() == "mine" and not (tmp_path / "x").exists()


def test_a_k_quant_goes_through_llama_cpps_quantizer(built, tmp_path: Path) -> None:
    if not llama_cpp_available() and not IN_CI:
        pytest.skip("llama-cpp-python is not installed: `make setup-llamacpp` builds it")
    import llama_cpp  # in CI, missing is a failure

    result = export_gguf(ExportRequest(source=str(built["base"]), output=tmp_path / "q4", quant="q4_k_m"))
    assert sorted(p.name for p in (tmp_path / "q4").iterdir()) == ["Modelfile", "base-q4_k_m.gguf"]  # no f16 left behind
    reader = gguf.GGUFReader(result.model_gguf)
    assert reader.fields["general.file_type"].contents() == llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    # The tiny model's 32-wide rows are too narrow for 256-value k-quant blocks: llama.cpp falls back per tensor.
    assert {t.tensor_type for t in reader.tensors} - {gguf.GGMLQuantizationType.F32} <= {
        gguf.GGMLQuantizationType.Q5_0, gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_K, gguf.GGMLQuantizationType.Q6_K}  # fmt: skip
