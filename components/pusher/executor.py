"""AtomicPusherExecutor: TFX's Pusher with `atomic_push.publish` as the filesystem push.

Blessing checks, the PushedModel artifact and its custom properties (pushed,
pushed_destination, pushed_version) are the stock executor's; only how the model
reaches the serving directory changes (see atomic_push for why and how).

With `model_registry` in the Pusher's custom_config (`bertpipe compile --registry_model`),
the pushed version is then uploaded to Vertex AI Model Registry (model_registry.py) and the
PushedModel records the version's resource name as `registry_model`. A model that is not
blessed is neither pushed nor registered.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any, Optional

from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, json_utils, proto_utils

from components.pusher import atomic_push, model_registry

logger = logging.getLogger(__name__)

REGISTRY_CONFIG_KEY = "model_registry"  # in the Pusher's custom_config: a RegistryTarget dict
REGISTRY_PROPERTY = "registry_model"  # on the PushedModel: projects/P/locations/R/models/NAME@VERSION
# Vertex AI (and run-spec) give each task's outputs <root>/.../<job name>/<task>_<id>/<key>.
_TASK_DIR = re.compile(r"^[A-Za-z][\w-]*_\d+$")


def run_name(pushed_model_uri: str, pipeline_run_id: Optional[str]) -> Optional[str]:
    """The run to label a registered version with: the orchestrator's run id when it gives
    one (LocalDagRunner), else the job directory above the task's output directory."""
    if pipeline_run_id:
        return pipeline_run_id
    parts = pushed_model_uri.rstrip("/").split("/")
    return parts[-3] if len(parts) >= 3 and _TASK_DIR.match(parts[-2]) else None


class AtomicPusherExecutor(pusher_executor.Executor):
    """Pushes a blessed model to a filesystem destination as a complete version or not at all."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise ValueError("The Pusher here publishes to a filesystem destination only "
                             f"(got {destination.WhichOneof('destination')!r}).")
        model_path = self.GetModelPath(input_dict)
        version, serving_path = atomic_push.publish(model_path, destination.filesystem.base_directory)
        logger.info("Model published as %s.", serving_path)
        # The archive copy in the PushedModel artifact's own directory, as the stock Pusher keeps.
        io_utils.copy_dir(model_path, model_push.uri)
        registry = self._registry_target(exec_properties)
        if registry is not None:
            model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
            span = model.get_int_custom_property("span") if model.has_custom_property("span") else None
            run = run_name(model_push.uri, self._context.pipeline_run_id if self._context else None)
            registered = model_registry.register(
                model_registry.client_for(registry.region), registry, serving_path,
                model_registry.version_labels(run, span, registry.code_version),
                description=f"{os.path.basename(serving_path)} pushed by run {run}, span {span}")
            logger.info("Registered as %s (alias %s).", registered.resource_name, model_registry.BLESSED_ALIAS)
            model_push.set_string_custom_property(REGISTRY_PROPERTY, registered.resource_name)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=version)

    @staticmethod
    def _registry_target(exec_properties: dict[str, Any]) -> Optional[model_registry.RegistryTarget]:
        custom_config = json_utils.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "null")
        values = (custom_config or {}).get(REGISTRY_CONFIG_KEY)
        return model_registry.RegistryTarget.from_dict(values) if values else None
