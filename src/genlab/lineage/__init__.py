"""Lineage: every run, the data and models it read, the artifacts it wrote and its scores."""

from genlab.lineage.graph import run_summary
from genlab.lineage.records import ArtifactRecord, RunRecord
from genlab.lineage.run import Run, record_run
from genlab.lineage.store import LineageStore

__all__ = ["ArtifactRecord", "LineageStore", "Run", "RunRecord", "record_run", "run_summary"]
