"""`genlab batch` on the real default model and real DialogSum dialogues: interrupted, resumed, identical."""

import json
from pathlib import Path

import pytest

from genlab.data import load_dialogsum
from genlab.serving.batch_transform import BatchConfig, run_batch

pytestmark = pytest.mark.integration


def test_a_resumed_batch_equals_an_uninterrupted_one(dialogsum_dev: Path, tmp_path: Path) -> None:
    rows = [
        {"custom_id": e.id, "prompt": f"Summarize this conversation in one sentence.\n\n{e.input}"}
        for e in load_dialogsum(path=dialogsum_dev, limit=4)
    ]
    source = tmp_path / "input.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    def settings(output: Path) -> BatchConfig:
        return BatchConfig(input=source, output=output, batch_size=2, rows_per_write=2, max_tokens=20)

    whole = run_batch(settings(tmp_path / "whole.jsonl"), progress=False)

    def stop_after_one(chunks: int, _rows: int) -> None:
        if chunks == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(settings(tmp_path / "resumed.jsonl"), progress=False, on_chunk=stop_after_one)
    resumed = run_batch(settings(tmp_path / "resumed.jsonl"), progress=False)

    assert (whole.done, resumed.resumed, resumed.generated) == (4, 2, 2)
    assert (tmp_path / "resumed.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    texts = [json.loads(line)["text"] for line in (tmp_path / "whole.jsonl").read_text().splitlines()]
    assert all(len(text.split()) >= 3 for text in texts)  # real summaries, not empty strings
