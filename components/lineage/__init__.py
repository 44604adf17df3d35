"""Lineage over ML-metadata: which data, vocabulary, config and code made which model, and how it scored.

    snapshot.py  the backend-independent picture of a store: artifacts, executions, runs
    store.py     reads a snapshot from ML-metadata (SQLite or MySQL)
    vertex.py    reads a snapshot from Vertex AI pipeline jobs (google-cloud-aiplatform)
    queries.py   runs / model / uses / diff, as plain dicts
    render.py    tables for people, JSON for scripts
    graph.py     the lineage graph: SVG/PNG (matplotlib), DOT and Mermaid text
"""
