"""`tracking: {mlflow: URI}` in fine-tune, align and lifecycle recipes: where runs are also tracked.

genlab's lineage store stays the source of truth; this names an MLflow tracking store that mirrors it
(live while training, and by ``genlab runs export``). Only pydantic here, so recipe schemas can
import it without loading MLflow.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Backends MLflow's client opens (SQLAlchemy databases, a tracking server, Databricks). Plain
# folders (``./mlruns``, ``file:``) are refused by MLflow 3's file store, so they are refused here
# too, with the sentence saying what to write instead.
MLFLOW_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")
EXAMPLE_URIS = "sqlite:///mlflow.db (a file, MLflow's default store) or http://localhost:5000 (a server)"


def check_mlflow_uri(uri: str) -> str:
    """``uri`` if MLflow can track into it; otherwise a ValueError saying what a tracking URI looks like."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if scheme == "file" or not scheme or len(scheme) == 1:  # a folder, or a Windows drive letter
        raise ValueError(f"MLflow no longer tracks into plain folders; give a tracking URI such as {EXAMPLE_URIS}")
    if scheme not in MLFLOW_SCHEMES:
        raise ValueError(f"scheme {scheme!r} is not an MLflow tracking store; use one of {', '.join(MLFLOW_SCHEMES)}, e.g. {EXAMPLE_URIS}")
    if scheme == "sqlite" and not uri.startswith("sqlite:///"):
        raise ValueError("a SQLite tracking URI has three slashes: sqlite:///relative/mlflow.db or sqlite:////absolute/mlflow.db")
    return uri


class TrackingConfig(BaseModel):
    """Where a run is tracked besides the lineage store."""

    model_config = ConfigDict(extra="forbid")

    mlflow: str = Field(min_length=1)  # an MLflow tracking URI: sqlite:///mlflow.db, http://host:5000, ...
    experiment: str = Field(default="genlab", min_length=1, max_length=500)  # every genlab run goes in one experiment

    @field_validator("mlflow")
    @classmethod
    def _a_tracking_uri(cls, value: str) -> str:
        return check_mlflow_uri(value)
