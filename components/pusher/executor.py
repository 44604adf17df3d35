"""AtomicPusherExecutor: TFX's Pusher with `atomic_push.publish` as the filesystem push.

Blessing checks, the PushedModel artifact and its custom properties (pushed,
pushed_destination, pushed_version) are the stock executor's; only how the model
reaches the serving directory changes (see atomic_push for why and how).
"""
from __future__ import annotations

import logging
from typing import Any

from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.pusher import atomic_push

logger = logging.getLogger(__name__)


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
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=version)
