"""The original model beside its optimised version: one table, ``speedup`` and ``size_ratio``.

Both measurements come from the same run (:mod:`genlab.optimize.measure`, one fresh process each),
so their ratios compare like with like even when the machine's speed drifts between runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genlab.methods import MethodResult, TerminalTable
from genlab.optimize.measure import Measurement

QUALITY_LABELS = {"rouge1": "ROUGE-1"}


@dataclass
class OptimizationReport:
    method: str  # e.g. "int8-dynamic", "distill", "prune-unstructured"
    run_id: str
    artifact: str  # the optimised model's folder
    original: Measurement
    result: Measurement
    details: dict[str, Any] = field(default_factory=dict)  # method-specific: sparsity, layers kept, losses...

    @property
    def speedup(self) -> float:
        """tokens/s of the result / tokens/s of the original."""
        base = self.original.tokens_per_second
        return self.result.tokens_per_second / base if base > 0 else 0.0

    @property
    def size_ratio(self) -> float:
        """Original size on disk / result size on disk (2.0: half the size)."""
        return self.original.size_bytes / self.result.size_bytes if self.result.size_bytes > 0 else 0.0

    @property
    def quality_change(self) -> dict[str, float]:
        """Result - original, per quality metric (ROUGE-1 in points x 100; perplexity as a relative change in %)."""
        changes = {}
        for name, after in self.result.quality.items():
            before = self.original.quality.get(name)
            if before is None:
                continue
            if name == "perplexity":
                changes["perplexity_change_percent"] = 100.0 * (after - before) / before if before else 0.0
            else:
                changes[f"{name}_change_points"] = 100.0 * (after - before)
        return changes

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "run_id": self.run_id, "artifact": self.artifact,
            "original": self.original.to_dict(), "result": self.result.to_dict(),
            "speedup": self.speedup, "size_ratio": self.size_ratio, **self.quality_change, "details": self.details,
        }  # fmt: skip

    def metrics(self) -> dict[str, float]:
        """Flat figures for the lineage store."""
        flat: dict[str, float] = {"speedup": self.speedup, "size_ratio": self.size_ratio, **self.quality_change}
        for prefix, measured in (("original", self.original), ("result", self.result)):
            flat[f"{prefix}_size_bytes"] = float(measured.size_bytes)
            flat[f"{prefix}_parameters"] = float(measured.parameters)
            flat[f"{prefix}_peak_memory_mb"] = measured.peak_memory_mb
            flat[f"{prefix}_tokens_per_second"] = measured.tokens_per_second
            flat.update({f"{prefix}_{name}": value for name, value in measured.quality.items()})
        return flat

    def table(self) -> tuple[str, list[str], list[list[str]]]:
        o, r = self.original, self.result
        rows = [
            ["size on disk (MB)", f"{o.size_bytes / 1e6:.1f}", f"{r.size_bytes / 1e6:.1f}", f"{self.size_ratio:.2f}x smaller"],
            ["parameters (M)", f"{o.parameters / 1e6:.1f}", f"{r.parameters / 1e6:.1f}", f"{r.parameters / max(o.parameters, 1):.2f}x"],
            ["peak memory (MB)", f"{o.peak_memory_mb:.0f}", f"{r.peak_memory_mb:.0f}", f"{r.peak_memory_mb / max(o.peak_memory_mb, 1e-9):.2f}x"],
            ["tokens/s (batch 1)", f"{o.tokens_per_second:.1f}", f"{r.tokens_per_second:.1f}", f"{self.speedup:.2f}x"],
        ]  # fmt: skip
        for name, after in r.quality.items():
            before = o.quality.get(name)
            if before is None:
                continue
            if name == "perplexity":
                change = f"{100.0 * (after - before) / before:+.1f}%" if before else "-"
                rows.append([name, f"{before:.2f}", f"{after:.2f}", change])
            else:
                label = QUALITY_LABELS.get(name, name)
                rows.append([label, f"{before:.4f}", f"{after:.4f}", f"{100 * (after - before):+.2f} points"])
        title = f"{self.method}: original vs optimised (run {self.run_id}) -> {self.artifact}"
        return title, ["", "original", "optimised", "change"], rows

    def method_result(self, method: str) -> MethodResult:
        """This report as the result of a one-shot method (:mod:`genlab.methods`): the optimised folder, no losses."""
        return MethodResult(method, self.run_id, self.artifact, "model", self.metrics(), [], TerminalTable(*self.table()), self.to_dict())
