"""Tests of readers.py: the readers and their registry, on the real YouTube-8M samples."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    FRAME_SAMPLE,
    VIDEO_SAMPLE,
    random_frames,
    sequence_example,
    tiny_config,
    write_records,
)

import readers
import utils
from pipeline import corrupt_records, record_slicing


def read_protos(pattern, proto_class):
    """Every record of the files matching `pattern`, parsed with protobuf (the reference)."""
    protos = []
    for path in sorted(tf.io.gfile.glob(pattern)):
        for record in tf.data.TFRecordDataset(path):
            protos.append(proto_class.FromString(record.numpy()))
    return protos


def read_all(reader, pattern, batch_size=16):
    dataset, files = reader.make_dataset(pattern, batch_size)
    batches = list(corrupt_records.iterate_batches(dataset, files, reader.skipped_records))
    return batches


def test_frame_reader_matches_protobuf_on_real_sample():
    pattern = str(FRAME_SAMPLE / "*.tfrecord")
    protos = read_protos(pattern, tf.train.SequenceExample)
    expected = {}
    for proto in protos:
        video_id = proto.context.feature["id"].bytes_list.value[0]
        lists = proto.feature_lists.feature_list
        rgb = np.frombuffer(b"".join(f.bytes_list.value[0] for f in lists["rgb"].feature), np.uint8)
        audio = np.frombuffer(
            b"".join(f.bytes_list.value[0] for f in lists["audio"].feature), np.uint8
        )
        matrix = np.concatenate([rgb.reshape(-1, 1024), audio.reshape(-1, 128)], axis=1)
        expected[video_id] = (matrix, sorted(proto.context.feature["labels"].int64_list.value))

    batches = read_all(readers.YT8MFrameFeatureReader(), pattern)
    seen = {}
    for batch in batches:
        assert batch["video_matrix"].dtype == tf.uint8
        assert batch["labels"].shape[1] == 3862
        for row, video_id in enumerate(batch["video_ids"].numpy()):
            num_frames = int(batch["num_frames"][row])
            matrix = batch["video_matrix"][row].numpy()
            seen[video_id] = (matrix[:num_frames], list(np.nonzero(batch["labels"][row])[0]))
            assert not matrix[num_frames:].any(), "padding frames must be zero"
    assert len(seen) == len(expected) == 59
    for video_id, (matrix, labels) in expected.items():
        got_matrix, got_labels = seen[video_id]
        assert got_matrix.shape == matrix.shape
        np.testing.assert_array_equal(got_matrix, matrix)
        assert got_labels == labels
    # Known facts of the sample (its README): 119-300 frames, SjJ3 has 170 frames, label 11.
    frame_counts = [matrix.shape[0] for matrix, _ in seen.values()]
    assert 119 <= min(frame_counts) and max(frame_counts) == 300
    assert seen[b"SjJ3"][0].shape[0] == 170 and seen[b"SjJ3"][1] == [11]


def test_frame_reader_dequantized_range_and_values():
    pattern = str(FRAME_SAMPLE / "paddlevideo_example_SjJ3.tfrecord")
    quantized = read_all(readers.YT8MFrameFeatureReader(), pattern)[0]
    dequantized = read_all(readers.YT8MFrameFeatureReader(dequantize=True), pattern)[0]
    values = dequantized["video_matrix"].numpy()
    assert values.dtype == np.float32
    assert values.min() >= -2.0 and values.max() <= 2.0 + 4 / 512
    expected = quantized["video_matrix"].numpy().astype(np.float32) * 4 / 255 + 4 / 512 - 2
    np.testing.assert_allclose(values, expected, atol=1e-6)


def test_max_frames_truncates():
    pattern = str(FRAME_SAMPLE / "*.tfrecord")
    batches = read_all(readers.YT8MFrameFeatureReader(max_frames=50), pattern)
    for batch in batches:
        assert batch["video_matrix"].shape[1] == 50
        assert int(tf.reduce_max(batch["num_frames"])) == 50


def test_video_level_reader_matches_protobuf():
    pattern = str(VIDEO_SAMPLE / "*.tfrecord")
    protos = read_protos(pattern, tf.train.Example)
    batches = read_all(readers.YT8MAggregatedFeatureReader(), pattern, batch_size=500)
    ids = np.concatenate([batch["video_ids"].numpy() for batch in batches])
    matrices = np.concatenate([batch["video_matrix"].numpy() for batch in batches])
    labels = np.concatenate([batch["labels"].numpy() for batch in batches])
    assert len(ids) == len(protos) == 1202
    assert matrices.shape == (1202, 1152)
    row_of_id = {video_id: row for row, video_id in enumerate(ids)}
    assert len(row_of_id) == 1202
    for proto in protos:
        features = proto.features.feature
        row = row_of_id[features["id"].bytes_list.value[0]]
        expected = list(features["mean_rgb"].float_list.value) + list(
            features["mean_audio"].float_list.value
        )
        np.testing.assert_allclose(matrices[row], expected, rtol=0, atol=0)
        assert list(np.nonzero(labels[row])[0]) == sorted(features["labels"].int64_list.value)


def test_deterministic_order_without_shuffle():
    pattern = str(FRAME_SAMPLE / "*.tfrecord")
    reader = readers.YT8MFrameFeatureReader(max_frames=5)
    first = [b["video_ids"].numpy().tolist() for b in read_all(reader, pattern, batch_size=7)]
    second = [b["video_ids"].numpy().tolist() for b in read_all(reader, pattern, batch_size=7)]
    assert first == second


def test_video_id_key_is_configurable(tmp_path):
    rng = np.random.default_rng(0)
    record = sequence_example("abcd", [3], random_frames(rng, 4), id_key="video_id")
    path = write_records(tmp_path / "a.tfrecord", [record])
    reader = readers.YT8MFrameFeatureReader(num_classes=10, video_id_key="video_id")
    batch = read_all(reader, path)[0]
    assert batch["video_ids"].numpy().tolist() == [b"abcd"]
    assert int(batch["num_frames"][0]) == 4


def test_no_files_match_names_the_flag(tmp_path):
    reader = readers.YT8MFrameFeatureReader()
    with pytest.raises(utils.UserInputError, match="--train_data_pattern.*no files match"):
        reader.make_dataset(
            str(tmp_path / "nothing*.tfrecord"), 4, flag_name="--train_data_pattern"
        )


def test_synthetic_round_trip_reads_what_was_written(tmp_path):
    from datasets import synthetic

    spec = synthetic.SyntheticDatasetSpec(min_frames=20, max_frames=70)
    files = synthetic.write_dataset(str(tmp_path), 12, 3, 9, seed=5, spec=spec)
    written = dict(synthetic.iter_videos(12, 9, seed=5, spec=spec))
    pattern = ",".join(files)
    batches = read_all(readers.YT8MFrameFeatureReader(num_classes=9), pattern, batch_size=5)
    seen = set()
    for batch in batches:
        for row, video_id in enumerate(batch["video_ids"].numpy()):
            video = written[video_id.decode()]
            expected = np.concatenate([video.features["rgb"], video.features["audio"]], axis=1)
            num_frames = int(batch["num_frames"][row])
            assert num_frames == video.num_frames
            np.testing.assert_array_equal(batch["video_matrix"][row, :num_frames], expected)
            assert list(np.nonzero(batch["labels"][row])[0]) == list(video.labels)
            seen.add(video_id.decode())
    assert seen == set(written)


def frame_decode_sources(parse, frame_sizes):
    """The op types feeding each decode of `frame_sizes` bytes per frame in the traced
    `parse` (Identity ops passed over)."""
    graph = tf.function(parse).get_concrete_function(tf.TensorSpec([None], tf.string)).graph
    sources = []
    for op in graph.get_operations():
        if op.type.startswith("Decode") and op.outputs[0].shape[-1] in frame_sizes:
            source = op.inputs[0].op
            while source.type == "Identity":
                source = source.inputs[0].op
            sources.append(source.type)
    return sources


def test_selecting_reader_decodes_only_the_selected_frames():
    """Every frame decode reads only the selected frames' strings: cut out of the records
    (`Substr`, each frame with its framing prefix), or gathered after parsing (the parser)."""
    reader = readers.YT8MFrameFeatureReader(frame_stride=10)
    framed_sizes = [
        size + len(record_slicing.frame_element_prefix(size)) for size in reader.feature_sizes
    ]
    assert frame_decode_sources(reader.parse_by_slicing, framed_sizes) == ["Substr"] * 2
    reader = readers.YT8MFrameFeatureReader(frame_stride=10, slice_records=False)
    assert frame_decode_sources(reader.parse_serialized, [1024, 128]) == ["GatherV2"] * 2
    batch = read_all(reader, str(FRAME_SAMPLE / "*.tfrecord"))[0]
    assert batch["video_matrix"].shape[1] == 30  # 300 frames / 10
    assert "full_video_matrix" not in batch


def test_keep_all_frames_gives_the_teacher_every_frame():
    pattern = str(FRAME_SAMPLE / "paddlevideo_example_SjJ3.tfrecord")
    reader = readers.YT8MFrameFeatureReader(frame_stride=5, keep_all_frames=True)
    batch = read_all(reader, pattern)[0]
    assert int(batch["full_num_frames"][0]) == 170 and int(batch["num_frames"][0]) == 34
    np.testing.assert_array_equal(
        batch["video_matrix"][0], batch["full_video_matrix"][0].numpy()[::5]
    )


def test_registry_maps_each_input_kind_to_its_reader():
    assert readers.READERS.names() == [utils.FRAME_INPUT, utils.VIDEO_INPUT]
    for kind in readers.READERS.names():
        assert readers.READERS.get(kind).input_kind == kind


def test_reader_for_selects_frames_as_the_model_was_built():
    run_config = tiny_config(
        num_classes=10,
        max_frames=50,
        frame_stride=4,
        frame_sampling="random",
        frame_sampling_seed=9,
    )
    reader = readers.reader_for(run_config, corrupt_record_policy="skip", keep_all_frames=True)
    assert type(reader) is readers.YT8MFrameFeatureReader
    assert (reader.max_frames, reader.frame_stride, reader.frame_sampling) == (50, 4, "random")
    assert reader.sampling_seed == 9 and reader.corrupt_record_policy == "skip"
    assert reader.keep_all_frames and reader.num_classes == 10
    assert readers.reader_for(run_config, training=True).sampling_seed is None
    video_config = run_config.replace(
        model="LogisticModel", frame_features=False, feature_names="mean_rgb,mean_audio"
    )
    video = readers.reader_for(video_config, video_id_key="video_id")
    assert type(video) is readers.YT8MAggregatedFeatureReader
    assert video.video_id_key == "video_id" and video.feature_sizes == [1024, 128]
