"""`bertpipe lineage runs|model|uses|diff`: flags in, a snapshot read, a query, a rendering out.

Where the metadata is, in order of precedence:
  --vertex_project/--vertex_region [--pipeline_job]   Vertex AI pipeline jobs (Vertex ML Metadata)
  --metadata_mysql_database (and host/port/user/...)  a MySQL/MariaDB ML-metadata store
  --metadata_path FILE                                a SQLite ML-metadata store (the default,
                                                      outputs/metadata.sqlite as `bertpipe run` writes)
"""
from __future__ import annotations

import argparse
import os
from typing import Optional

from components.lineage import store as store_lib
from components.lineage.queries import MODEL_SPECS_HELP

DEFAULT_METADATA_PATH = os.path.join("outputs", "metadata.sqlite")
DEFAULT_PIPELINE_NAME = "bert-pretraining"  # pipeline.config.PipelineConfig's default


def add_mysql_flags(parser: argparse.ArgumentParser) -> None:
    """--metadata_mysql_*: an ML-metadata store in MySQL/MariaDB (used when a database is given)."""
    group = parser.add_argument_group("ML-metadata in MySQL / MariaDB (instead of SQLite)")
    group.add_argument("--metadata_mysql_database", help="database name; giving it selects MySQL")
    group.add_argument("--metadata_mysql_host", default="127.0.0.1", help="server host (default 127.0.0.1)")
    group.add_argument("--metadata_mysql_port", type=int, default=3306, help="server port (default 3306)")
    group.add_argument("--metadata_mysql_socket", help="a local Unix socket instead of host and port")
    group.add_argument("--metadata_mysql_user", default="root", help="user (default root)")
    group.add_argument("--metadata_mysql_password", default="",
                       help="password (default empty; or set BERTPIPE_MYSQL_PASSWORD)")


def mysql_target(args: argparse.Namespace, environ: Optional[dict] = None) -> Optional[store_lib.MySQLTarget]:
    """The MySQL store the flags name, or None when --metadata_mysql_database is not given."""
    if not getattr(args, "metadata_mysql_database", None):
        return None
    environ = os.environ if environ is None else environ
    return store_lib.MySQLTarget(
        database=args.metadata_mysql_database, user=args.metadata_mysql_user,
        password=args.metadata_mysql_password or environ.get("BERTPIPE_MYSQL_PASSWORD", ""),
        host=args.metadata_mysql_host, port=args.metadata_mysql_port, socket=args.metadata_mysql_socket)


def _common_flags() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("which metadata")
    where.add_argument("--metadata_path", default=DEFAULT_METADATA_PATH,
                       help=f"ML-metadata SQLite file (default: {DEFAULT_METADATA_PATH})")
    where.add_argument("--pipeline_name", default=DEFAULT_PIPELINE_NAME,
                       help=f"the pipeline whose runs to read (default: {DEFAULT_PIPELINE_NAME})")
    add_mysql_flags(common)
    vertex = common.add_argument_group("Vertex AI pipeline jobs (Vertex ML Metadata)")
    vertex.add_argument("--vertex_project", help="Google Cloud project of the pipeline jobs")
    vertex.add_argument("--vertex_region", help="region of the pipeline jobs, e.g. us-central1")
    vertex.add_argument("--pipeline_job", help="one PipelineJob (name or full resource name); default: the "
                                               "pipeline's jobs")
    out = common.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print JSON with stable keys instead of a table")
    return common


def register(subparsers) -> None:
    """Adds `lineage` with its queries; each sets func(args) -> exit code."""
    lineage = subparsers.add_parser(
        "lineage", help="which data, vocabulary, config and code made which model, and how it scored",
        description="Query ML-metadata (SQLite, MySQL, or Vertex AI) for the pipeline's lineage.")
    queries = lineage.add_subparsers(dest="query", metavar="QUERY", required=True)
    common = _common_flags()
    runs = queries.add_parser("runs", parents=[common], help="the pipeline runs, newest first",
                              description="Each run: id, start/end, status, spans, model, do_eval metrics, "
                                          "blessed, where it was pushed.")
    runs.set_defaults(func=cmd_lineage)
    model = queries.add_parser("model", parents=[common], help="a model's upstream and downstream",
                               description="What made the model (examples, records, vocabulary, corpus, trainer "
                                           "config, base model, code version) and what became of it (evaluation, "
                                           "blessing, push).")
    model.add_argument("model", nargs="?", default="latest", help=f"{MODEL_SPECS_HELP} (default: latest)")
    model.add_argument("--graph", help="also draw the lineage graph: FILE.svg, .png, .dot or .mmd (Mermaid)")
    model.set_defaults(func=cmd_lineage)
    uses = queries.add_parser("uses", parents=[common], help="everything made from an artifact",
                              description="Every artifact made (directly or not) from ARTIFACT, e.g. every "
                                          "model trained on a vocabulary or a span's examples.")
    uses.add_argument("artifact", help="an artifact id or URI (as `lineage model` prints them)")
    uses.set_defaults(func=cmd_lineage)
    diff = queries.add_parser("diff", parents=[common], help="what differs between two models' lineage",
                              description="Data, vocabulary, config, code version and metrics of two models, "
                                          "differences only, metrics side by side.")
    diff.add_argument("a", help=MODEL_SPECS_HELP)
    diff.add_argument("b", help=MODEL_SPECS_HELP)
    diff.set_defaults(func=cmd_lineage)


def open_snapshot(args: argparse.Namespace):
    """The snapshot of the store the flags name."""
    if args.vertex_project or args.vertex_region or args.pipeline_job:
        if not (args.vertex_project and args.vertex_region):
            raise ValueError("Vertex AI needs both --vertex_project and --vertex_region "
                             "(e.g. --vertex_project my-project --vertex_region us-central1).")
        from components.lineage import vertex  # Deferred: imports google-cloud-aiplatform.

        return vertex.read_snapshot(args.vertex_project, args.vertex_region, args.pipeline_name,
                                    pipeline_job=args.pipeline_job)
    target = mysql_target(args)
    if target is not None:
        connection = store_lib.mysql_connection_config(target)
        description = target.describe()
    else:
        connection = store_lib.sqlite_connection_config(args.metadata_path)
        description = f"ML-metadata store {args.metadata_path}"
    store = store_lib.connect(connection, description)
    return store_lib.read_snapshot(store, args.pipeline_name, description)


def cmd_lineage(args: argparse.Namespace) -> int:
    from components.lineage import queries, render

    snapshot = open_snapshot(args)
    if args.query == "runs":
        result = queries.runs(snapshot)
        text = render.render_runs(snapshot.pipeline_name, snapshot.source, result)
    elif args.query == "model":
        model = queries.find_model(snapshot, args.model)
        result = queries.model_lineage(snapshot, args.model, model=model)
        text = render.render_model(result)
        if args.graph:
            from components.lineage import graph

            artifacts, executions, edges = queries.model_subgraph(snapshot, model)
            graph.write_graph(args.graph, artifacts, executions, edges,
                              title=f"Lineage of model {model.id} ({snapshot.pipeline_name})")
            text += f"\n\nLineage graph written to {args.graph}"
    elif args.query == "uses":
        result = queries.uses(snapshot, args.artifact)
        text = render.render_uses(result)
    else:
        result = queries.diff(snapshot, args.a, args.b)
        text = render.render_diff(result)
    print(render.to_json(args.query, snapshot.pipeline_name, snapshot.source, result) if args.json else text)
    return 0
