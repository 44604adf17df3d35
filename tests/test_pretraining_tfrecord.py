"""Bulk TFRecord framing (tfrecord.py) gives TFRecordWriter's bytes."""
import numpy as np
import tensorflow as tf

from components.pretraining_data import tfrecord


def test_framed_bytes_equal_tfrecord_writer_and_read_back(tmp_path):
    rng = np.random.default_rng(0)
    records = [rng.bytes(int(n)) for n in [0, 1, 700, 700, 129, 70000]]
    framed = tfrecord.frame(records)
    path = str(tmp_path / "ref.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        for r in records:
            w.write(r)
    assert framed == open(path, "rb").read()
    assert tfrecord.frame([]) == b""
    ours = tmp_path / "ours.tfrecord"
    ours.write_bytes(tfrecord.frame(records[3:]) + tfrecord.frame(records[:3]))
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(ours))] == records[3:] + records[:3]
