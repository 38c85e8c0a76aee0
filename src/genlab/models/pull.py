"""Make a model available offline, and record it in lineage as an artifact later runs can point to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genlab.lineage import record_run
from genlab.models.hub import download_from_hub
from genlab.models.load import resolve_model_source
from genlab.models.packs import PACKS, ensure_converted, measure_pack
from genlab.models.weights import count_safetensors_params


@dataclass(frozen=True)
class PullResult:
    name: str
    path: Path
    params: int
    run_id: str


def pull_model(name: str) -> PullResult:
    source = resolve_model_source(name)
    with record_run("pull", {"model": name, "source": source.kind}) as run:
        if source.kind == "pack":
            pack = PACKS[source.location]
            path = ensure_converted(pack)
            params = int(measure_pack(pack)["params"])
        elif source.kind == "hub":
            path = download_from_hub(source.location)
            params = _count_params(path)
        else:
            path = Path(source.location)
            params = _count_params(path) if path.is_dir() else 0
        run.log_artifact(path, "model", {"model": name, "params": params})
        run.log_metric("params", params)
    return PullResult(name=name, path=path, params=params, run_id=run.id)


def _count_params(folder: Path) -> int:
    return count_safetensors_params(sorted(folder.glob("*.safetensors")))
