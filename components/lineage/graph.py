"""The lineage graph of a model: artifacts and executions, left to right in pipeline order.

    write_graph(path, artifacts, executions, edges)
      .svg / .png        drawn with networkx (layout) and matplotlib (Agg: no display, no
                         system binaries such as Graphviz)
      .dot / .gv         Graphviz DOT text
      .mmd / .mermaid    Mermaid flowchart text (renders in GitHub Markdown)

Columns are the longest path from a source, so every edge points right: corpus-side
artifacts on the left, the push on the right. Artifacts are rounded boxes, executions
square ones; a dashed edge is a link ML-metadata has no event for (the records
directory ImportExampleGen read).
"""
from __future__ import annotations

import os
from typing import Sequence

from components.lineage.snapshot import Artifact, Execution, node_rank

RASTER_FORMATS = (".svg", ".png")
DOT_FORMATS = (".dot", ".gv")
MERMAID_FORMATS = (".mmd", ".mermaid")
FORMATS = RASTER_FORMATS + DOT_FORMATS + MERMAID_FORMATS

_ARTIFACT_COLOUR = "#dbe9f6"
_EXECUTION_COLOUR = "#fde7c8"
_FAILED_COLOUR = "#f7c4c4"


def artifact_label(artifact: Artifact) -> str:
    return f"{artifact.type.split('.')[-1]} {artifact.id.rsplit('/', 1)[-1]}"


def execution_label(execution: Execution) -> str:
    return f"{execution.node_id} #{execution.id.rsplit('/', 1)[-1]}"


def build_graph(artifacts: Sequence[Artifact], executions: Sequence[Execution], edges: Sequence[tuple]):
    """A networkx DiGraph; node attributes: label, kind (artifact|execution), state, column."""
    import networkx as nx  # Deferred: only --graph needs it.

    graph = nx.DiGraph()
    for artifact in artifacts:
        graph.add_node(f"a:{artifact.id}", label=artifact_label(artifact), kind="artifact", state=artifact.state,
                       order=0)
    for execution in executions:
        graph.add_node(f"e:{execution.id}", label=execution_label(execution), kind="execution",
                       state=execution.state, order=node_rank(execution.node_id))
    for source, target, key, implicit in edges:
        if source in graph and target in graph:
            graph.add_edge(source, target, key=key, implicit=implicit)
    for node in nx.topological_sort(graph):
        predecessors = list(graph.predecessors(node))
        graph.nodes[node]["column"] = 1 + max((graph.nodes[p]["column"] for p in predecessors), default=-1)
    return graph


def _positions(graph) -> dict:
    """(column, row) per node; rows ordered by pipeline step so a column reads top-down."""
    columns: dict[int, list] = {}
    for node, data in graph.nodes(data=True):
        columns.setdefault(data["column"], []).append(node)
    positions = {}
    for column, nodes in columns.items():
        nodes.sort(key=lambda n: (graph.nodes[n]["order"], graph.nodes[n]["label"]))
        for row, node in enumerate(nodes):
            positions[node] = (column * 2.4, -(row - (len(nodes) - 1) / 2) * 1.1)
    return positions


def _draw(graph, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    positions = _positions(graph)
    columns = 1 + max((d["column"] for _, d in graph.nodes(data=True)), default=0)
    rows = max((sum(1 for _, d in graph.nodes(data=True) if d["column"] == c) for c in range(columns)), default=1)
    # Text stays text in the SVG (searchable, and a test can find every node's name).
    with plt.rc_context({"svg.fonttype": "none", "font.size": 8}):
        figure, axes = plt.subplots(figsize=(max(6.0, 1.5 * columns), max(3.0, 0.8 * rows + 2.5)))
        axes.set_axis_off()
        xs = [p[0] for p in positions.values()] or [0.0]
        ys = [p[1] for p in positions.values()] or [0.0]
        axes.set_xlim(min(xs) - 1.3, max(xs) + 1.3)
        longest = max((graph.nodes[t]["column"] - graph.nodes[f]["column"] for f, t in graph.edges), default=1)
        axes.set_ylim(min(ys) - 0.8, max(ys) + 0.8 + 0.45 * longest)
        boxes = {}
        for node, data in graph.nodes(data=True):
            x, y = positions[node]
            colour = (_FAILED_COLOUR if data["state"] == "FAILED" else
                      _ARTIFACT_COLOUR if data["kind"] == "artifact" else _EXECUTION_COLOUR)
            box = "round,pad=0.35" if data["kind"] == "artifact" else "square,pad=0.35"
            boxes[node] = axes.text(x, y, data["label"], ha="center", va="center", zorder=3, bbox={
                "boxstyle": box, "facecolor": colour, "edgecolor": "#333333", "linewidth": 0.8})
        figure.canvas.draw()  # Sizes the boxes, so arrows can end at their borders.
        for source, target, data in graph.edges(data=True):
            # An edge that skips columns bows upwards, so it does not run through the nodes between.
            span = graph.nodes[target]["column"] - graph.nodes[source]["column"]
            bend = 0.0 if span <= 1 else -min(0.12 + 0.04 * span, 0.35)
            axes.add_patch(FancyArrowPatch(
                positions[source], positions[target], arrowstyle="-|>", mutation_scale=10, shrinkA=1, shrinkB=1,
                patchA=boxes[source].get_bbox_patch(), patchB=boxes[target].get_bbox_patch(), linewidth=0.8,
                color="#555555", connectionstyle=f"arc3,rad={bend}", zorder=2,
                linestyle="--" if data["implicit"] else "-"))
        axes.set_title(title)
        figure.tight_layout()
        figure.savefig(path, format=os.path.splitext(path)[1][1:], dpi=150)
        plt.close(figure)


def to_dot(graph, title: str) -> str:
    lines = ["digraph lineage {", "  rankdir=LR;", f'  label="{_escape(title)}";',
             "  node [fontname=Helvetica, fontsize=10];"]
    for node, data in sorted(graph.nodes(data=True)):
        shape = "box, style=\"rounded,filled\"" if data["kind"] == "artifact" else "box, style=filled"
        colour = (_FAILED_COLOUR if data["state"] == "FAILED" else
                  _ARTIFACT_COLOUR if data["kind"] == "artifact" else _EXECUTION_COLOUR)
        lines.append(f'  "{node}" [label="{_escape(data["label"])}", shape={shape}, fillcolor="{colour}"];')
    for source, target, data in sorted(graph.edges(data=True)):
        style = ", style=dashed" if data["implicit"] else ""
        lines.append(f'  "{source}" -> "{target}" [label="{_escape(data["key"])}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph, title: str) -> str:
    ids = {node: f"n{i}" for i, node in enumerate(sorted(graph.nodes))}
    lines = ["---", f"title: {title}", "---", "flowchart LR"]
    for node, data in sorted(graph.nodes(data=True)):
        label = data["label"].replace('"', "'")
        lines.append(f'  {ids[node]}("{label}")' if data["kind"] == "artifact" else f'  {ids[node]}["{label}"]')
    for source, target, data in sorted(graph.edges(data=True)):
        arrow = "-.->" if data["implicit"] else "-->"
        lines.append(f"  {ids[source]} {arrow}|{data['key']}| {ids[target]}")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def write_graph(path: str, artifacts: Sequence[Artifact], executions: Sequence[Execution],
                edges: Sequence[tuple], title: str) -> str:
    """Writes the graph in the format the extension names (to a temp name, then renamed).

    Raises:
      ValueError: an extension none of the formats has, or a directory that does not exist.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise ValueError(f"--graph {path}: unknown format {extension or '(none)'!r}; "
                         f"end the file name with one of {', '.join(FORMATS)}.")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"--graph {path}: directory {directory} does not exist.")
    graph = build_graph(artifacts, executions, edges)
    temp = os.path.join(directory, f".{os.path.basename(path)}.tmp{extension}")
    try:
        if extension in RASTER_FORMATS:
            _draw(graph, temp, title)
        else:
            with open(temp, "w", encoding="utf-8") as f:
                f.write(to_dot(graph, title) if extension in DOT_FORMATS else to_mermaid(graph, title))
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return path
