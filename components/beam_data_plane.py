"""Stops the DirectRunner's threaded workers from silently dropping elements (Beam 2.61).

In `--direct_running_mode=multi_threading` the runner starts its workers as
EmbeddedGrpcWorkerHandler, whose data channel flushes each bundle's output buffer from a
timer thread every DATA_BUFFER_TIME_LIMIT_MS (1000 ms), besides the writing thread's own
flush at 10 MB. The timer's flush is not atomic with the bundle's writes: it takes the
buffer's bytes, hands them to the gRPC send queue (Python code, where the GIL can pass to
the bundle's thread, which goes on encoding elements into the same buffer), then clears
the buffer, erasing what was written meanwhile. Whole elements vanish without an error,
only in bundles that run longer than a second, more often under CPU load: the word count
lost ~0.2% of its words on 20-300 MB corpora, with the same lines read.

With the limit at 0 the channels flush by size only, on the writing thread between two
elements (what the multi_processing workers and Dataflow's SDK harness do by default:
sdk_worker_main's data_buffer_time_limit_ms experiment defaults to 0). The limit cannot
be set by a pipeline option: multi_threading always uses the default environment, and the
handler and the runner's gRPC server read this module constant when the run starts them
(`config.get("data_buffer_time_limit_ms") or DATA_BUFFER_TIME_LIMIT_MS`).
"""
from __future__ import annotations


def disable_timed_flushes() -> None:
    """Size-only flushing for DirectRunner runs started after this call, in this process."""
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 0
