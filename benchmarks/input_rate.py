"""The rate at which a tf.data pipeline yields batches, measured the same way by every benchmark."""
from __future__ import annotations

import statistics
import time


def median_examples_per_s(dataset, batch_size: int, batches: int, repeats: int, warmup: int) -> float:
    """Median examples/s over `repeats` runs of `batches` batches, after `warmup` batches
    (open shards, fill the shuffle buffer, let AUTOTUNE settle). Each batch's input_ids are
    copied to numpy, so the batch is really produced."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)["input_ids"].numpy()
        rates.append(batches * batch_size / (time.perf_counter() - start))
    return statistics.median(rates)
