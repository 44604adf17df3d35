"""Builds small ML-metadata stores shaped like the ones LocalDagRunner writes: a pipeline
context, one pipeline_run context per run, executions with INPUT/OUTPUT events keyed by
TFX's input/output names, and every artifact a run touched attributed to its run (so a
retraining run's context holds the base model its resolver output, as a real one does).
"""
from __future__ import annotations

from typing import Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2


class StoreBuilder:
    def __init__(self, path: str, pipeline_name: str = "p"):
        self.config = metadata_store_pb2.ConnectionConfig()
        self.config.sqlite.filename_uri = path
        self.config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.store = mlmd.MetadataStore(self.config)
        self._context_types = {}
        self._artifact_types = {}
        self._execution_types = {}
        self._clock = 1_700_000_000_000
        [self.pipeline] = self.store.put_contexts([metadata_store_pb2.Context(
            type_id=self._context_type("pipeline"), name=pipeline_name)])

    def _context_type(self, name):
        if name not in self._context_types:
            self._context_types[name] = self.store.put_context_type(metadata_store_pb2.ContextType(name=name))
        return self._context_types[name]

    def _artifact_type(self, name):
        if name not in self._artifact_types:
            self._artifact_types[name] = self.store.put_artifact_type(metadata_store_pb2.ArtifactType(name=name))
        return self._artifact_types[name]

    def _execution_type(self, name):
        if name not in self._execution_types:
            self._execution_types[name] = self.store.put_execution_type(metadata_store_pb2.ExecutionType(name=name))
        return self._execution_types[name]

    def run(self, run_id: str) -> int:
        [run] = self.store.put_contexts([metadata_store_pb2.Context(
            type_id=self._context_type("pipeline_run"), name=run_id)])
        self.store.put_parent_contexts([metadata_store_pb2.ParentContext(child_id=run, parent_id=self.pipeline)])
        return run

    def artifact(self, type_name: str, uri: str, **properties) -> int:
        artifact = metadata_store_pb2.Artifact(type_id=self._artifact_type(type_name), uri=uri,
                                               state=metadata_store_pb2.Artifact.LIVE)
        for key, value in properties.items():
            if isinstance(value, int):
                artifact.custom_properties[key].int_value = value
            else:
                artifact.custom_properties[key].string_value = str(value)
        [artifact_id] = self.store.put_artifacts([artifact])
        return artifact_id

    def execute(self, run: int, node: str, inputs: Optional[dict] = None, outputs: Optional[dict] = None,
                state=metadata_store_pb2.Execution.COMPLETE) -> int:
        """One execution of `node` in `run`: inputs/outputs map keys to artifact ids."""
        self._clock += 1000
        [execution_id] = self.store.put_executions([metadata_store_pb2.Execution(
            type_id=self._execution_type(node), last_known_state=state)])
        events = []
        for kind, mapping in ((metadata_store_pb2.Event.INPUT, inputs or {}),
                              (metadata_store_pb2.Event.OUTPUT, outputs or {})):
            for key, ids in mapping.items():
                for index, artifact_id in enumerate(ids if isinstance(ids, list) else [ids]):
                    event = metadata_store_pb2.Event(artifact_id=artifact_id, execution_id=execution_id,
                                                     type=kind, milliseconds_since_epoch=self._clock)
                    event.path.steps.add().key = key
                    event.path.steps.add().index = index
                    events.append(event)
        self.store.put_events(events)
        touched = [e.artifact_id for e in events]
        for context in (self.pipeline, run):
            self.store.put_attributions_and_associations(
                [metadata_store_pb2.Attribution(context_id=context, artifact_id=i) for i in touched],
                [metadata_store_pb2.Association(context_id=context, execution_id=execution_id)])
        return execution_id

    def resolve(self, run: int, base: dict) -> int:
        """The latest-blessed-model resolver of `run` re-outputting an earlier run's model and
        blessing: they are attributed to `run` too, as in a real retraining run."""
        return self.execute(run, "latest_blessed_model_resolver",
                            outputs={"model": base["model"], "model_blessing": base["blessing"]})

    def training_run(self, run_id: str, blessed: bool = True, base_model: Optional[int] = None,
                     base_blessing: Optional[int] = None) -> dict:
        """Trainer -> Evaluator -> Pusher (and, given a base, the resolver that fed it)."""
        run = self.run(run_id)
        made = {"run": run}
        trainer_inputs = {}
        evaluator_inputs = {}
        if base_model is not None:
            self.resolve(run, {"model": base_model, "blessing": base_blessing})
            trainer_inputs["base_model"] = base_model
            evaluator_inputs["baseline_model"] = base_model
        made["model"] = self.artifact("Model", f"/m/{run_id}")
        self.execute(run, "BertTrainer", inputs=trainer_inputs, outputs={"model": made["model"]})
        made["evaluation"] = self.artifact("ModelEvaluation", f"/e/{run_id}")
        made["blessing"] = self.artifact("ModelBlessing", f"/b/{run_id}", blessed=int(blessed),
                                         current_model_id=made["model"])
        self.execute(run, "Evaluator", inputs={"model": made["model"], **evaluator_inputs},
                     outputs={"evaluation": made["evaluation"], "blessing": made["blessing"]})
        pushed = {"pushed": int(blessed)}
        if blessed:
            pushed["pushed_destination"] = f"/serving/{run_id}"
        made["pushed"] = self.artifact("PushedModel", f"/p/{run_id}", **pushed)
        self.execute(run, "Pusher", inputs={"model": made["model"], "model_blessing": made["blessing"]},
                     outputs={"pushed_model": made["pushed"]})
        return made
