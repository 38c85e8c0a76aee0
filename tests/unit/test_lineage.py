import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from genlab.lineage import LineageStore, record_run, run_summary
from genlab.lineage.hashing import sha256_path


@pytest.fixture
def store(genlab_home: Path) -> LineageStore:
    with LineageStore() as opened:
        yield opened


def test_store_uses_wal_and_lives_in_genlab_home(store: LineageStore, genlab_home: Path) -> None:
    assert store.path == genlab_home / "lineage.sqlite"
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_completed_run_keeps_config_metrics_and_artifacts(store: LineageStore) -> None:
    with record_run("demo", {"model": "tiny", "lr": 1e-4}, store=store) as run:
        out = run.dir / "summary.txt"
        out.write_text("a summary")
        run.log_artifact(out, "summary")
        run.log_metric("rouge1", 0.25)
        run.log_metric("rouge1", 0.5)  # the last value wins in the summary
    record = store.get_run(run.id)
    assert record.status == "completed" and record.ended_at is not None and record.error is None
    assert record.config == {"model": "tiny", "lr": 1e-4}
    assert store.metrics(run.id) == {"rouge1": 0.5}
    assert store.metric_history(run.id, "rouge1") == [(None, 0.25), (None, 0.5)]
    (artifact,) = store.artifacts_of(run.id, "output")
    assert artifact.kind == "summary" and artifact.sha256 == sha256_path(out) and artifact.size_bytes == 9


def test_exception_marks_run_failed_with_error(store: LineageStore) -> None:
    with pytest.raises(ValueError), record_run("train", store=store) as run:
        raise ValueError("loss is NaN")
    record = store.get_run(run.id)
    assert record.status == "failed"
    assert record.error == "ValueError: loss is NaN"


def test_ctrl_c_marks_run_failed_as_interrupted(store: LineageStore) -> None:
    with pytest.raises(KeyboardInterrupt), record_run("train", store=store) as run:
        raise KeyboardInterrupt
    assert store.get_run(run.id).error == "interrupted by the user"


def test_killed_process_run_is_marked_failed_on_next_open(genlab_home: Path) -> None:
    script = textwrap.dedent(
        """
        import os, signal
        from genlab.lineage import LineageStore
        store = LineageStore()
        print(store.start_run("train", {}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy())
    run_id = proc.stdout.strip()
    assert proc.returncode == -9 and run_id
    with LineageStore() as store:
        record = store.get_run(run_id)
    assert record.status == "failed"
    assert "ended without finishing" in record.error


def test_a_live_run_stays_running_when_the_boot_time_moves(store: LineageStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    run_id = store.start_run("train", {})
    # psutil's create_time adds the boot time in whole seconds, which the kernel derives from the wall
    # clock: an NTP adjustment can move it by one while the process runs. Liveness must not depend on it.
    create_time = psutil.Process.create_time
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: create_time(self) + 1.0)
    with LineageStore(store.path) as again:  # opening a store marks dead runs failed
        assert again.get_run(run_id).status == "running"


def test_same_content_at_same_path_is_one_artifact(store: LineageStore, tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"x": 1}\n')
    first = store.register_artifact(data, "dataset")
    again = store.register_artifact(data, "dataset")
    data.write_text('{"x": 2}\n')
    changed = store.register_artifact(data, "dataset")
    assert first.id == again.id
    assert changed.id != first.id and changed.sha256 != first.sha256


def test_folder_hash_depends_on_content_not_location(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "config.json").write_text("{}")
        (tmp_path / name / "sub" / "w.bin").write_bytes(b"\x00\x01")
    assert sha256_path(tmp_path / "a") == sha256_path(tmp_path / "b")
    (tmp_path / "b" / "sub" / "w.bin").write_bytes(b"\x00\x02")
    assert sha256_path(tmp_path / "a") != sha256_path(tmp_path / "b")


def test_lineage_chain_dataset_to_adapter_to_evaluation(store: LineageStore, tmp_path: Path) -> None:
    dataset = tmp_path / "train.jsonl"
    dataset.write_text('{"dialogue": "hi", "summary": "greeting"}\n')
    with record_run("finetune", store=store) as train:
        train.use(dataset, "dataset")
        adapter = train.dir / "adapter"
        adapter.mkdir()
        (adapter / "adapter_model.safetensors").write_bytes(b"weights")
        adapter_record = train.log_artifact(adapter, "adapter")
    with record_run("evaluate", store=store) as evaluation:
        evaluation.use(adapter, "adapter")
        evaluation.log_metric("rouge1", 0.36)

    summary = run_summary(store, evaluation.id)
    (adapter_node,) = summary["lineage"]["upstream"]
    assert adapter_node["artifact"] == adapter_record.id
    (producer,) = adapter_node["produced_by"]
    assert producer["run"] == train.id and producer["kind"] == "finetune"
    (dataset_node,) = producer["upstream"]
    assert dataset_node["kind"] == "dataset" and dataset_node["produced_by"] == []

    downstream = run_summary(store, train.id)["lineage"]["downstream"]
    assert [user["run"] for user in downstream[0]["used_by"]] == [evaluation.id]


def test_unknown_run_id_is_a_clear_error(store: LineageStore) -> None:
    from genlab.errors import GenlabError

    with pytest.raises(GenlabError, match="no run with id 'nope'"):
        store.get_run("nope")



def test_a_new_store_waits_for_another_process_writing_it(tmp_path: Path) -> None:
    # DDP ranks open the same new store together; switching it to WAL needs a moment alone with the file,
    # and SQLite reports "database is locked" at once instead of waiting, unless genlab waits.
    import sqlite3
    import threading

    path = tmp_path / "lineage.sqlite"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE early (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO early VALUES (1)")  # holds the write lock until the transaction ends
    release = threading.Timer(0.5, lambda: writer.execute("COMMIT"))
    release.start()
    try:
        with LineageStore(path) as store:
            assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        release.join()
        writer.close()
