"""Tracking: genlab's runs mirrored into MLflow, the tracking store people already use.

The SQLite lineage store stays the source of truth; MLflow gets a mirror of it.

- :mod:`genlab.tracking.config` -- ``TrackingConfig``, the ``tracking: {mlflow: URI}`` recipe section;
- :mod:`genlab.tracking.lineage_mapping` -- how a lineage run reads in MLflow (name, params, tags, nesting);
- :mod:`genlab.tracking.mlflow_target` -- opening the MLflow store (an optional extra) and its experiment;
- :mod:`genlab.tracking.mlflow_export` -- ``genlab runs export``: lineage runs -> MLflow runs, re-export updates;
- :mod:`genlab.tracking.live` -- Trainer callbacks that log while training, and the lifecycle's nesting.

It sits above the lineage store and below the methods (tuning, alignment) and the pipeline, which
pass their recipe's ``tracking`` section and their lineage run down to it. Importing this package
loads neither MLflow nor transformers: recipe schemas import the config from here.
"""

from genlab.tracking.config import TrackingConfig

__all__ = ["TrackingConfig"]
