"""Tests of readers.py on the real YouTube-8M samples and on hand-made malformed records."""

import logging as python_logging

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    FRAME_SAMPLE,
    VIDEO_SAMPLE,
    random_frames,
    sequence_example,
    write_records,
)

import readers
import utils


def read_protos(pattern, proto_class):
    """Every record of the files matching `pattern`, parsed with protobuf (the reference)."""
    protos = []
    for path in sorted(tf.io.gfile.glob(pattern)):
        for record in tf.data.TFRecordDataset(path):
            protos.append(proto_class.FromString(record.numpy()))
    return protos


def read_all(reader, pattern, batch_size=16):
    dataset, files = reader.make_dataset(pattern, batch_size)
    batches = list(readers.iterate_batches(dataset, files, reader.skipped_records))
    return batches


def read_ids(reader, pattern, batch_size=16):
    return [
        video_id.decode()
        for batch in read_all(reader, pattern, batch_size)
        for video_id in batch["video_ids"].numpy()
    ]


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


def corrupted_copies(tmp_path):
    """A bit-flipped and a truncated copy of a real shard."""
    data = (FRAME_SAMPLE / "paddlevideo_example_SjJ3.tfrecord").read_bytes()
    flipped = bytearray(data)
    flipped[5000] ^= 0x10
    flipped_path = tmp_path / "flipped.tfrecord"
    flipped_path.write_bytes(bytes(flipped))
    truncated_path = tmp_path / "truncated.tfrecord"
    truncated_path.write_bytes(data[: len(data) // 2])
    return flipped_path, truncated_path


def test_corrupt_and_truncated_shards_name_the_file(tmp_path):
    for bad_path in corrupted_copies(tmp_path):
        good = tmp_path / "good.tfrecord"
        good.write_bytes((FRAME_SAMPLE / "paddlevideo_example_SjJ3.tfrecord").read_bytes())
        pattern = f"{good},{bad_path}"
        with pytest.raises(utils.UserInputError, match=bad_path.name):
            read_all(readers.YT8MFrameFeatureReader(), pattern)


def test_wrong_feature_size_names_the_video(tmp_path):
    rng = np.random.default_rng(1)
    good = sequence_example("good", [1], random_frames(rng, 3))
    frames = random_frames(rng, 3)
    frames["rgb"][1] = frames["rgb"][1][:1000]
    bad = sequence_example("bad1", [1], frames)
    path = write_records(tmp_path / "a.tfrecord", [good, bad])
    with pytest.raises(utils.UserInputError, match="rgb.*bad1"):
        read_all(readers.YT8MFrameFeatureReader(num_classes=10), path)
    # The flag and the data disagree: every frame is "wrong".
    good_path = write_records(tmp_path / "b.tfrecord", [good])
    reader = readers.YT8MFrameFeatureReader(num_classes=10, feature_sizes=(512, 128))
    with pytest.raises(utils.UserInputError, match="expected 512 bytes.*good"):
        read_all(reader, good_path)


def test_wrong_video_level_feature_size_names_the_video(tmp_path):
    example = tf.train.Example()
    example.features.feature["id"].bytes_list.value.append(b"vid9")
    example.features.feature["labels"].int64_list.value.append(2)
    example.features.feature["mean_rgb"].float_list.value.extend([0.5] * 1000)
    example.features.feature["mean_audio"].float_list.value.extend([0.5] * 128)
    path = write_records(tmp_path / "v.tfrecord", [example.SerializeToString()])
    with pytest.raises(utils.UserInputError, match="mean_rgb.*vid9"):
        read_all(readers.YT8MAggregatedFeatureReader(num_classes=10), path)


def test_label_out_of_range_names_the_video(tmp_path):
    rng = np.random.default_rng(2)
    records = [
        sequence_example("okay", [0, 9], random_frames(rng, 2)),
        sequence_example("over", [4, 10], random_frames(rng, 2)),
    ]
    path = write_records(tmp_path / "a.tfrecord", records)
    with pytest.raises(utils.UserInputError, match="Label out of range.*over.*10"):
        read_all(readers.YT8MFrameFeatureReader(num_classes=10), path)
    negative = sequence_example("negv", [-1], random_frames(rng, 2))
    negative_path = write_records(tmp_path / "b.tfrecord", [negative])
    with pytest.raises(utils.UserInputError, match="negv"):
        read_all(readers.YT8MFrameFeatureReader(num_classes=10), negative_path)


def test_missing_feature_list_is_an_error(tmp_path):
    rng = np.random.default_rng(3)
    frames = random_frames(rng, 3)
    del frames["audio"]
    path = write_records(tmp_path / "a.tfrecord", [sequence_example("noau", [1], frames)])
    with pytest.raises(utils.UserInputError, match="No feature list 'audio'.*noau"):
        read_all(readers.YT8MFrameFeatureReader(num_classes=10), path)


def test_empty_video_gives_zero_frames_and_a_warning(tmp_path, caplog):
    rng = np.random.default_rng(4)
    records = [
        sequence_example("full", [1], random_frames(rng, 5)),
        sequence_example("void", [2], {"rgb": [], "audio": []}),
    ]
    path = write_records(tmp_path / "a.tfrecord", records)
    with caplog.at_level(python_logging.WARNING):
        batch = read_all(readers.YT8MFrameFeatureReader(num_classes=10), path)[0]
    assert batch["num_frames"].numpy().tolist() == [5, 0]
    assert not batch["video_matrix"][1].numpy().any()
    assert "void" in caplog.text and "0 frames" in caplog.text


def test_synthetic_round_trip_reads_what_was_written(tmp_path):
    import synthetic_data

    spec = synthetic_data.SyntheticDatasetSpec(min_frames=20, max_frames=70)
    files = synthetic_data.write_dataset(str(tmp_path), 12, 3, 9, seed=5, spec=spec)
    written = dict(synthetic_data.iter_videos(12, 9, seed=5, spec=spec))
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


def full_and_selected(pattern, **options):
    """Reads the same files with all frames and with a selecting reader, keyed by video id."""
    full = {}
    for batch in read_all(readers.YT8MFrameFeatureReader(), pattern):
        for row, video_id in enumerate(batch["video_ids"].numpy()):
            count = int(batch["num_frames"][row])
            full[video_id] = batch["video_matrix"][row, :count].numpy()
    selected = {}
    for batch in read_all(readers.YT8MFrameFeatureReader(**options), pattern):
        for row, video_id in enumerate(batch["video_ids"].numpy()):
            count = int(batch["num_frames"][row])
            assert not batch["video_matrix"][row, count:].numpy().any()
            selected[video_id] = (
                batch["video_matrix"][row, :count].numpy(),
                batch["frame_indices"][row, :count].numpy(),
            )
    return full, selected


def test_uniform_stride_selects_every_jth_frame_of_real_videos():
    pattern = str(FRAME_SAMPLE / "*.tfrecord")
    full, selected = full_and_selected(pattern, frame_stride=10)
    assert len(selected) == 59
    for video_id, (matrix, indices) in selected.items():
        num_frames = full[video_id].shape[0]
        assert matrix.shape[0] == -(-num_frames // 10)  # ceil(N / 10)
        np.testing.assert_array_equal(indices, np.arange(0, num_frames, 10))
        np.testing.assert_array_equal(matrix, full[video_id][::10])


def test_stride_longer_than_the_video_gives_its_first_frame(tmp_path):
    rng = np.random.default_rng(7)
    frames = random_frames(rng, 3)
    path = write_records(tmp_path / "a.tfrecord", [sequence_example("tiny", [1], frames)])
    for sampling in ("uniform", "random"):
        reader = readers.YT8MFrameFeatureReader(
            num_classes=10, frame_stride=20, frame_sampling=sampling, sampling_seed=1
        )
        batch = read_all(reader, path)[0]
        assert int(batch["num_frames"][0]) == 1
        if sampling == "uniform":
            expected = np.frombuffer(frames["rgb"][0], np.uint8)
            np.testing.assert_array_equal(batch["video_matrix"][0, 0, :1024], expected)


def test_random_sampling_is_ordered_and_seeded():
    pattern = str(FRAME_SAMPLE / "*.tfrecord")
    full, first = full_and_selected(
        pattern, frame_stride=4, frame_sampling="random", sampling_seed=3
    )
    _, again = full_and_selected(pattern, frame_stride=4, frame_sampling="random", sampling_seed=3)
    _, other_seed = full_and_selected(
        pattern, frame_stride=4, frame_sampling="random", sampling_seed=4
    )
    differs = 0
    for video_id, (matrix, indices) in first.items():
        num_frames = full[video_id].shape[0]
        assert len(indices) == -(-num_frames // 4)
        assert np.all(np.diff(indices) > 0) and indices[0] >= 0 and indices[-1] < num_frames
        np.testing.assert_array_equal(matrix, full[video_id][indices])
        np.testing.assert_array_equal(again[video_id][1], indices)
        differs += not np.array_equal(other_seed[video_id][1], indices)
    assert differs == len(first)
    # Not uniform: the gaps between chosen frames vary.
    assert any(len(set(np.diff(indices))) > 1 for _, indices in first.values())


def test_unseeded_random_sampling_changes_between_reads():
    pattern = str(FRAME_SAMPLE / "paddlevideo_example_SjJ3.tfrecord")
    reader = readers.YT8MFrameFeatureReader(frame_stride=10, frame_sampling="random")
    dataset, _ = reader.make_dataset(pattern, 1, num_epochs=2)
    first, second = [batch["frame_indices"].numpy() for batch in dataset]
    assert first.shape == second.shape == (1, 17)
    assert not np.array_equal(first, second)


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
        size + len(prefix)
        for size, prefix in zip(reader.feature_sizes, reader.frame_prefixes, strict=True)
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


def test_bad_selection_flags_are_rejected():
    with pytest.raises(utils.UserInputError, match="--frame_stride"):
        readers.YT8MFrameFeatureReader(frame_stride=0)
    with pytest.raises(utils.UserInputError, match="--frame_sampling"):
        readers.YT8MFrameFeatureReader(frame_sampling="sometimes")


def malformed_records(rng):
    """(records, ids of the well-formed videos): each malformed case once, among good ones."""
    wrong_size = random_frames(rng, 3)
    wrong_size["rgb"][1] = wrong_size["rgb"][1][:1000]
    no_audio = random_frames(rng, 3)
    del no_audio["audio"]
    video_level = tf.train.Example()
    video_level.features.feature["id"].bytes_list.value.append(b"exmp")
    video_level.features.feature["labels"].int64_list.value.append(1)
    video_level.features.feature["mean_rgb"].float_list.value.extend([0.5] * 1024)
    records = [
        sequence_example("good1", [1, 2], random_frames(rng, 4)),
        sequence_example("size", [1], wrong_size),
        sequence_example("labl", [4, 10], random_frames(rng, 2)),
        sequence_example("noau", [3], no_audio),
        sequence_example("void", [2], {"rgb": [], "audio": []}),
        video_level.SerializeToString(),
        sequence_example("good2", [9], random_frames(rng, 7)),
    ]
    return records, ["good1", "void", "good2"]


def test_skip_policy_leaves_out_each_malformed_video_and_names_it(tmp_path):
    records, good_ids = malformed_records(np.random.default_rng(5))
    path = write_records(tmp_path / "a.tfrecord", records)
    with pytest.raises(utils.UserInputError, match="video (size|labl|noau)"):
        read_all(readers.YT8MFrameFeatureReader(num_classes=10), path, batch_size=4)
    reader = readers.YT8MFrameFeatureReader(num_classes=10, corrupt_record_policy="skip")
    batches = read_all(reader, path, batch_size=4)
    assert [video_id.decode() for b in batches for video_id in b["video_ids"].numpy()] == good_ids
    assert all("skipped_video_ids" not in batch for batch in batches)
    summary = reader.skipped_records.summary()
    assert summary["skipped_records"] == summary["num_malformed_videos"] == 4
    reasons = {video["video_id"]: video["reason"] for video in summary["malformed_videos"]}
    assert set(reasons) == {"size", "labl", "noau", "exmp"}
    assert "feature 'rgb'" in reasons["size"] and "label" in reasons["labl"]
    assert "'audio'" in reasons["noau"] and "'rgb'" in reasons["exmp"]
    # The videos kept are read exactly as when they are alone.
    alone = write_records(tmp_path / "b.tfrecord", [records[0], records[4], records[6]])
    expected = read_all(readers.YT8MFrameFeatureReader(num_classes=10), alone, batch_size=4)
    kept = {}
    for batch in batches:
        for index, video_id in enumerate(batch["video_ids"].numpy()):
            kept[video_id] = (batch["video_matrix"][index], batch["labels"][index])
    for batch in expected:
        for index, video_id in enumerate(batch["video_ids"].numpy()):
            frames = int(batch["num_frames"][index])
            matrix, labels = kept[video_id]
            np.testing.assert_array_equal(matrix[:frames], batch["video_matrix"][index][:frames])
            np.testing.assert_array_equal(labels, batch["labels"][index])


def test_skip_policy_on_video_level_records(tmp_path):
    def example(video_id, labels, rgb_size):
        proto = tf.train.Example()
        proto.features.feature["id"].bytes_list.value.append(video_id.encode())
        proto.features.feature["labels"].int64_list.value.extend(labels)
        proto.features.feature["mean_rgb"].float_list.value.extend([0.25] * rgb_size)
        proto.features.feature["mean_audio"].float_list.value.extend([0.5] * 128)
        return proto.SerializeToString()

    path = write_records(
        tmp_path / "v.tfrecord",
        [example("ok1", [1], 1024), example("bad", [1], 1000), example("lab", [11], 1024)],
    )
    reader = readers.YT8MAggregatedFeatureReader(num_classes=10, corrupt_record_policy="skip")
    assert read_ids(reader, path) == ["ok1"]
    assert reader.skipped_records.count == 2


def record_offsets(path):
    """Byte offset of every record of a TFRecord file, and the file's size."""
    data = path.read_bytes()
    offsets, offset = [], 0
    while offset < len(data):
        offsets.append(offset)
        offset += readers.TFRECORD_FRAMING_BYTES + int.from_bytes(
            data[offset : offset + 8], "little"
        )
    return offsets, len(data)


def test_masked_crc32c_matches_the_headers_of_a_real_shard():
    path = FRAME_SAMPLE / "clippedtrain0208.tfrecord"
    data = path.read_bytes()
    offsets, _ = record_offsets(path)
    assert len(offsets) > 2
    for offset in offsets:
        length_crc = int.from_bytes(data[offset + 8 : offset + 12], "little")
        assert readers.masked_crc32c(data[offset : offset + 8]) == length_crc


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_skip_policy_reads_a_damaged_shard_up_to_the_damage(tmp_path, damage):
    source = FRAME_SAMPLE / "clippedtrain0208.tfrecord"
    offsets, size = record_offsets(source)
    data = bytearray(source.read_bytes())
    if damage == "flipped":  # a bit of the second record's data
        data[offsets[1] + readers.TFRECORD_HEADER_BYTES + 100] ^= 0x04
        first_bad = 1
    else:  # cut in the middle of the last record but one
        data = data[: offsets[-2] + 50]
        first_bad = len(offsets) - 2
    damaged = tmp_path / f"{damage}.tfrecord"
    damaged.write_bytes(bytes(data))
    good = tmp_path / "good.tfrecord"
    good.write_bytes(source.read_bytes())
    clean_ids = read_ids(readers.YT8MFrameFeatureReader(), str(good))

    with pytest.raises(utils.UserInputError, match=damaged.name):
        read_all(readers.YT8MFrameFeatureReader(), f"{good},{damaged}")
    reader = readers.YT8MFrameFeatureReader(corrupt_record_policy="skip")
    ids = read_ids(reader, f"{good},{damaged}", batch_size=4)
    assert sorted(ids) == sorted(clean_ids + clean_ids[:first_bad])
    summary = reader.skipped_records.summary()
    expected_skipped = (len(offsets) if damage == "flipped" else len(offsets) - 1) - first_bad
    assert summary["skipped_records"] == expected_skipped
    assert summary["num_malformed_videos"] == 0
    [shard] = summary["damaged_shards"]
    assert shard["file"] == str(damaged) and shard["offset"] == offsets[first_bad]
    assert shard["size"] == len(data) and shard["exact"]
    assert summary["skipped_records"] + len(ids) == 2 * len(offsets) - (damage == "truncated")


def test_bad_corrupt_record_policy_is_refused():
    with pytest.raises(utils.UserInputError, match="--corrupt_record_policy=ignore"):
        readers.YT8MFrameFeatureReader(corrupt_record_policy="ignore")


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
    assert readers.frame_element_prefix(1024) == b"\x0a\x86\x08\x0a\x83\x08\x0a\x80\x08"
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
