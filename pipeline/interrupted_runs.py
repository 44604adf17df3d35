"""Executions that a killed run left RUNNING in ML-metadata are marked CANCELED by the next run.

A run killed mid-component never records the end of its execution, so the store keeps
claiming it is RUNNING, for good: lineage tools would show a run still going. The local
runner calls this while it holds the run lock of the store (pipeline/run_lock.py), so
no other local run can own those executions: they are dead.
"""
from __future__ import annotations

import logging

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

logger = logging.getLogger(__name__)

_UNFINISHED = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)


def cancel_unfinished_executions(connection_config: metadata_store_pb2.ConnectionConfig,
                                 pipeline_name: str) -> list[int]:
    """Marks the pipeline's NEW/RUNNING executions CANCELED, with a log line each; returns their ids."""
    store = mlmd.MetadataStore(connection_config)
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return []
    unfinished = [e for e in store.get_executions_by_context(pipeline.id) if e.last_known_state in _UNFINISHED]
    types = {t.id: t.name for t in store.get_execution_types()} if unfinished else {}
    for execution in unfinished:
        logger.warning("Execution %d (%s) was left %s by a run that was killed; marking it CANCELED.",
                       execution.id, types.get(execution.type_id, "?").rsplit(".", 1)[-1],
                       metadata_store_pb2.Execution.State.Name(execution.last_known_state))
        execution.last_known_state = metadata_store_pb2.Execution.CANCELED
    if unfinished:
        store.put_executions(unfinished)
    return [e.id for e in unfinished]
