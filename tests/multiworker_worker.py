"""One worker process of tests/test_trainer_multiworker.py: `pretrain` under the TF_CONFIG
of its environment (MultiWorkerMirroredStrategy over gRPC on localhost, one CPU each).

    python tests/multiworker_worker.py '<json of the run's arguments>'

Not a test module itself: the test starts one process per worker.
"""
from __future__ import annotations

import json
import logging
import sys


def main(arguments: dict) -> None:
    from components.trainer.params import TrainerParams, TrainingConfig
    from components.trainer.run_fn import pretrain

    params = TrainerParams(bert_config=arguments["bert_config"], training=TrainingConfig(**arguments["training"]),
                           max_seq_length=arguments["max_seq_length"],
                           max_predictions_per_seq=arguments["max_predictions_per_seq"],
                           checkpoint_dir=arguments["checkpoint_dir"], vocab_file=arguments.get("vocab_file"))
    metrics = pretrain(params, arguments["train_files"], arguments["eval_files"], arguments["serving_dir"],
                       arguments["model_run_dir"])
    print("METRICS " + json.dumps(metrics), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    main(json.loads(sys.argv[1]))
