"""The lineage store's SQLite schema.

Runs and artifacts are the nodes of the lineage graph; ``links`` holds its edges:
an artifact a run read (``input``), an artifact a run wrote (``output``), a run started inside
another (``child``). So "dataset -> fine-tune run -> adapter -> eval run -> deployment" is a walk.
"""

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS runs (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    started_at      TEXT NOT NULL,
    ended_at        TEXT,
    config          TEXT NOT NULL DEFAULT '{}',
    genlab_version  TEXT NOT NULL,
    error           TEXT,
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    pid_started_at  REAL
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status);

CREATE TABLE IF NOT EXISTS artifacts (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}',
    UNIQUE (path, sha256)
);

CREATE TABLE IF NOT EXISTS metrics (
    run_id       TEXT NOT NULL REFERENCES runs (id),
    name         TEXT NOT NULL,
    value        REAL NOT NULL,
    step         INTEGER,
    recorded_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id);

CREATE TABLE IF NOT EXISTS links (
    parent_type  TEXT NOT NULL CHECK (parent_type IN ('run', 'artifact')),
    parent_id    TEXT NOT NULL,
    child_type   TEXT NOT NULL CHECK (child_type IN ('run', 'artifact')),
    child_id     TEXT NOT NULL,
    relation     TEXT NOT NULL,
    PRIMARY KEY (parent_type, parent_id, child_type, child_id, relation)
);
CREATE INDEX IF NOT EXISTS links_by_child ON links (child_type, child_id);

CREATE TABLE IF NOT EXISTS hash_cache (
    path         TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    sha256       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
