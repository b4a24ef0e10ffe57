"""Tests of record_slicing.py: frames cut straight out of serialized records give the
parser's tensors, and only records laid out as YouTube-8M writes them are sliced."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import FRAME_SAMPLE, random_frames, sequence_example, write_records

import readers
from pipeline import corrupt_records, record_slicing


def read_all(reader, pattern, batch_size=16):
    dataset, files = reader.make_dataset(pattern, batch_size)
    batches = list(corrupt_records.iterate_batches(dataset, files, reader.skipped_records))
    return batches


def real_records():
    return [
        record.numpy()
        for path in sorted(FRAME_SAMPLE.glob("clippedtrain*.tfrecord"))
        for record in tf.data.TFRecordDataset(str(path))
    ]


def test_read_varint_decodes_what_varint_bytes_encodes():
    values = [0, 1, 127, 128, 300, 1033, 2**21, 2**28 - 1]
    records = tf.constant([b"x" + record_slicing.varint_bytes(value) for value in values])
    decoded, size, valid = record_slicing.read_varint(records, tf.ones([len(values)], tf.int64))
    assert decoded.numpy().tolist() == values
    assert size.numpy().tolist() == [len(record_slicing.varint_bytes(v)) for v in values]
    assert valid.numpy().all()
    # Cut short: the varint does not end within the record.
    _, _, valid = record_slicing.read_varint(
        tf.constant([b"x\x80\x80"]), tf.constant([1], tf.int64)
    )
    assert not valid.numpy().any()
    assert record_slicing.read_byte(tf.constant([b"ab"]), tf.constant([5], tf.int64)).numpy() == -1


def test_located_and_cut_frames_are_the_protobuf_frames_of_real_records():
    records = real_records()[:4]
    serialized = tf.constant(records)
    layout = record_slicing.locate_frames(serialized, ["rgb", "audio"], [1024, 128], 300)
    assert layout["ok"].numpy().all()
    num_frames = layout["num_frames"]
    frame_indices = tf.tile(tf.range(layout["num_input_frames"])[tf.newaxis], [len(records), 1])
    matrices, framed = record_slicing.cut_frames(
        serialized, layout["starts"], [1024, 128], frame_indices, num_frames
    )
    assert framed.numpy().all()
    for row, record in enumerate(records):
        proto = tf.train.SequenceExample.FromString(record)
        context = tf.train.Example.FromString(layout["context"][row].numpy())
        assert context.features == proto.context
        lists = proto.feature_lists.feature_list
        assert int(num_frames[row]) == len(lists["rgb"].feature)
        for name, matrix in zip(["rgb", "audio"], matrices, strict=True):
            expected = np.stack(
                [np.frombuffer(f.bytes_list.value[0], np.uint8) for f in lists[name].feature]
            )
            count = len(expected)
            np.testing.assert_array_equal(matrix[row, :count].numpy(), expected)
            assert not matrix[row, count:].numpy().any()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"frame_stride": 10},
        {"frame_stride": 4, "frame_sampling": "random", "sampling_seed": 3},
        {"frame_stride": 3, "max_frames": 50},
        {"frame_stride": 2, "dequantize": True},
    ],
)
def test_slicing_records_gives_the_parsers_batches_on_the_real_sample(options):
    pattern = str(FRAME_SAMPLE / "clippedtrain*.tfrecord")
    sliced = read_all(readers.YT8MFrameFeatureReader(**options), pattern, batch_size=8)
    parsed = read_all(
        readers.YT8MFrameFeatureReader(slice_records=False, **options), pattern, batch_size=8
    )
    assert len(sliced) == len(parsed) > 1
    for sliced_batch, parsed_batch in zip(sliced, parsed, strict=True):
        assert set(sliced_batch) == set(parsed_batch)
        for key, value in sliced_batch.items():
            np.testing.assert_array_equal(value.numpy(), parsed_batch[key].numpy(), err_msg=key)


def test_real_records_take_the_slicing_path_and_other_layouts_do_not(tmp_path):
    real = [
        record.numpy()
        for path in sorted(FRAME_SAMPLE.glob("clippedtrain*.tfrecord"))
        for record in tf.data.TFRecordDataset(str(path))
    ]
    reader = readers.YT8MFrameFeatureReader()
    _, fits = reader.parse_by_slicing(tf.constant(real))
    assert bool(fits)
    assert record_slicing.frame_element_prefix(1024) == b"\x0a\x86\x08\x0a\x83\x08\x0a\x80\x08"
    rng = np.random.default_rng(8)
    extra_list = random_frames(rng, 3, sizes=(1024, 128, 8), names=("rgb", "audio", "extra"))
    short_frames = random_frames(rng, 3, sizes=(512, 128))
    for frames in (extra_list, short_frames):
        record = sequence_example("odd", [1], frames)
        _, fits = reader.parse_by_slicing(tf.constant([real[0], record]))
        assert not bool(fits)
    # A batch holding one such record is parsed whole by the parser, with the same results.
    path = write_records(
        tmp_path / "a.tfrecord", real[:3] + [sequence_example("odd", [1], extra_list)]
    )
    sliced = read_all(readers.YT8MFrameFeatureReader(frame_stride=5), path)
    parsed = read_all(readers.YT8MFrameFeatureReader(frame_stride=5, slice_records=False), path)
    for key in ("video_ids", "video_matrix", "num_frames", "labels"):
        np.testing.assert_array_equal(sliced[0][key].numpy(), parsed[0][key].numpy())
