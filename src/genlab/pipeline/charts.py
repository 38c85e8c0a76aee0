"""The lifecycle report's pictures: the lineage graph (inline SVG) and metric curves (base64 PNG).

The graph is held by networkx and laid out in layers (each node in the column after the latest of
its parents, so data flows left to right; the ordering within a column is written here, as networkx
has no layered layout that orders nodes) and drawn by matplotlib; it is saved as SVG with its text kept as text,
so the page stays sharp and searchable. Loss curves reuse the fine-tuning report's
(:func:`genlab.tuning.report.loss_curves_png`) and the score bars the comparison report's
(:func:`genlab.evaluation.compare.bar_chart_png`).
"""

from __future__ import annotations

import base64
import io
import textwrap
from dataclasses import dataclass

RUN_COLOUR = "#dbe7f7"
ARTIFACT_COLOURS = {
    "dataset": "#e4f3e0", "model": "#fde9c8", "adapter": "#f8d9e0", "predictions": "#ece4f6",
    "comparison": "#ece4f6", "deployment": "#d9f0f0", "selection": "#f1f1f1", "scope": "#f1f1f1",
}  # fmt: skip


@dataclass(frozen=True)
class GraphNode:
    id: str
    label: str
    kind: str  # "run" for a step, else the artifact's kind


def _pyplot():  # noqa: ANN202 - matplotlib's module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def lineage_svg(nodes: list[GraphNode], edges: list[tuple[str, str]]) -> str:
    """The lineage graph as an inline ``<svg>`` element (empty when there are no nodes)."""
    import networkx as nx

    if not nodes:
        return ""
    graph = nx.DiGraph()
    for node in nodes:
        graph.add_node(node.id)
    graph.add_edges_from((a, b) for a, b in edges if a in graph and b in graph)
    layer: dict[str, int] = {}
    for node_id in nx.topological_sort(graph):
        layer[node_id] = max((layer[p] + 1 for p in graph.predecessors(node_id)), default=0)
    positions = _layered_positions(graph, layer)
    columns = max(layer.values()) + 1
    tallest = max(sum(1 for v in layer.values() if v == column) for column in range(columns))
    plt = _pyplot()
    plt.rcParams["svg.fonttype"] = "none"  # text stays text in the SVG
    figure, axes = plt.subplots(figsize=(max(6.0, 1.9 * columns), max(2.5, 0.85 * tallest + 0.8)))
    by_id = {node.id: node for node in nodes}
    texts = {}
    for node_id, (x, y) in positions.items():
        node = by_id[node_id]
        is_run = node.kind == "run"
        colour = RUN_COLOUR if is_run else ARTIFACT_COLOURS.get(node.kind, "#f1f1f1")
        texts[node_id] = axes.text(
            x, y, "\n".join(textwrap.wrap(node.label, 20)) or node.kind, ha="center", va="center", zorder=3,
            fontsize=7.5, fontweight="bold" if is_run else "normal",
            bbox={"boxstyle": "square,pad=0.45" if is_run else "round,pad=0.45", "fc": colour, "ec": "#5b6577", "lw": 0.8},
        )  # fmt: skip
    xs = [x for x, _ in positions.values()]
    ys = [y for _, y in positions.values()]
    pad_x = (max(xs) - min(xs)) / max(columns - 1, 1) * 0.5 or 0.5  # half a column: room for the labels
    pad_y = (max(ys) - min(ys)) / max(tallest - 1, 1) * 0.5 or 0.5
    axes.set_xlim(min(xs) - pad_x, max(xs) + pad_x)  # text does not grow the data limits by itself
    axes.set_ylim(min(ys) - pad_y, max(ys) + pad_y)
    axes.set_axis_off()
    figure.tight_layout()
    figure.canvas.draw()  # sizes the label boxes, so each arrow can end at its box's edge
    for a, b in graph.edges:
        axes.annotate(
            "", xy=positions[b], xytext=positions[a], zorder=2,
            arrowprops={"arrowstyle": "-|>", "color": "#8a94a6", "lw": 0.9, "shrinkA": 1, "shrinkB": 1,
                        "patchA": texts[a].get_bbox_patch(), "patchB": texts[b].get_bbox_patch()},
        )  # fmt: skip
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog and doctype: the element goes inline in HTML


def _layered_positions(graph: object, layer: dict[str, int]) -> dict[str, tuple[float, float]]:
    """x = the node's layer; within a layer, nodes sorted by the mean height of their parents (one barycentre
    pass, as in Sugiyama et al. 1981, so edges cross less), centred on y = 0."""
    columns: dict[int, list[str]] = {}
    for node_id, column in layer.items():
        columns.setdefault(column, []).append(node_id)
    positions: dict[str, tuple[float, float]] = {}
    for column in sorted(columns):
        members = columns[column]
        if column > 0:
            def barycentre(node_id: str) -> float:
                parents = [positions[p][1] for p in graph.predecessors(node_id)]  # type: ignore[attr-defined]
                return -sum(parents) / len(parents) if parents else 0.0

            members = sorted(members, key=barycentre)
        for index, node_id in enumerate(members):
            positions[node_id] = (float(column), (len(members) - 1) / 2 - index)
    return positions


def curves_png(series: dict[str, list[tuple[float, float]]], xlabel: str = "step") -> str:
    """One small chart per named series, side by side, as a base64 PNG (empty with no series)."""
    series = {name: points for name, points in series.items() if points}
    if not series:
        return ""
    plt = _pyplot()
    figure, axes_row = plt.subplots(1, len(series), figsize=(3.4 * len(series), 2.8), dpi=110, squeeze=False)
    for axes, (name, points) in zip(axes_row[0], series.items(), strict=True):
        steps, values = zip(*points, strict=True)
        axes.plot(steps, values, "o-", markersize=3, linewidth=1.3)
        axes.set_title(name, fontsize=9)
        axes.set_xlabel(xlabel, fontsize=8)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def _png(figure: object) -> str:
    plt = _pyplot()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")  # type: ignore[attr-defined]
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()
