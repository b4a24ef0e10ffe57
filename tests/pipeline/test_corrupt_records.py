"""Tests of corrupt_records.py: each corrupt record policy on hand-made malformed records and
damaged copies of the real shards, the errors that name what is wrong, the skip tally."""

import logging as python_logging

import numpy as np
import pytest
import tensorflow as tf
from conftest import FRAME_SAMPLE, random_frames, sequence_example, write_records

import readers
import utils
from pipeline import corrupt_records


def read_all(reader, pattern, batch_size=16):
    dataset, files = reader.make_dataset(pattern, batch_size)
    batches = list(corrupt_records.iterate_batches(dataset, files, reader.skipped_records))
    return batches


def read_ids(reader, pattern, batch_size=16):
    return [
        video_id.decode()
        for batch in read_all(reader, pattern, batch_size)
        for video_id in batch["video_ids"].numpy()
    ]


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


def test_label_out_of_range_names_the_file_the_video_the_largest_label_and_the_flag(tmp_path):
    rng = np.random.default_rng(2)
    good = write_records(
        tmp_path / "a.tfrecord", [sequence_example("okay", [0, 9], random_frames(rng, 2))]
    )
    records = [
        sequence_example("over", [4, 10], random_frames(rng, 2)),
        sequence_example("more", [30], random_frames(rng, 2)),
    ]
    path = write_records(tmp_path / "b.tfrecord", records)
    with pytest.raises(utils.UserInputError) as raised:
        read_all(readers.YT8MFrameFeatureReader(num_classes=10), f"{good},{path}")
    message = str(raised.value)
    assert message.startswith(f"Label out of range in {path}: video over has label 10")
    assert "--num_classes=10 allows labels 0 to 9" in message
    assert "the largest label seen is 30" in message
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


def test_apply_policy_drops_bad_videos_with_their_first_reason_or_fails():
    batch = {"video_ids": tf.constant(["a", "b", "c"]), "num_frames": tf.constant([1, 2, 3])}
    problems = [
        (tf.constant([False, True, True]), ["first check failed in video", "b"], "first"),
        (tf.constant([False, False, True]), ["second check failed"], "second"),
    ]
    kept = corrupt_records.apply_policy(batch, problems, "skip")
    assert kept["video_ids"].numpy().tolist() == [b"a"]
    assert kept["num_frames"].numpy().tolist() == [1]
    assert kept["skipped_video_ids"].numpy().tolist() == [b"b", b"c"]
    assert kept["skipped_reasons"].numpy().tolist() == [b"first", b"first"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="first check failed in video"):
        corrupt_records.apply_policy(batch, problems, "fail")
    clean = [(tf.constant([False, False, False]), ["never"], "never")]
    checked = corrupt_records.apply_policy(batch, clean, "fail")
    assert checked["video_ids"].numpy().tolist() == [b"a", b"b", b"c"]


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
        offset += corrupt_records.TFRECORD_FRAMING_BYTES + int.from_bytes(
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
        assert corrupt_records.masked_crc32c(data[offset : offset + 8]) == length_crc


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_skip_policy_reads_a_damaged_shard_up_to_the_damage(tmp_path, damage):
    source = FRAME_SAMPLE / "clippedtrain0208.tfrecord"
    offsets, size = record_offsets(source)
    data = bytearray(source.read_bytes())
    if damage == "flipped":  # a bit of the second record's data
        data[offsets[1] + corrupt_records.TFRECORD_HEADER_BYTES + 100] ^= 0x04
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


def test_records_that_are_not_protocol_buffers_fail_or_are_skipped_on_every_path(tmp_path):
    """Bytes with valid TFRecord checksums that no parser reads: "fail" names the file, "skip"
    leaves them out and counts them, for the readers and for the serialized batches a
    SavedModel is given (record_batches)."""
    from pipeline import record_batches

    rng = np.random.default_rng(9)
    good = [sequence_example(f"v{index}", [1], random_frames(rng, 3)) for index in range(3)]
    records = [good[0], b"not a protobuf", good[1], b"\x0a\xff\xff", good[2], b"\xff\xfe"]
    path = write_records(tmp_path / "garbage.tfrecord", records)
    with pytest.raises(utils.UserInputError, match="garbage.tfrecord"):
        read_all(readers.YT8MFrameFeatureReader(num_classes=10), path, batch_size=4)
    reader = readers.YT8MFrameFeatureReader(num_classes=10, corrupt_record_policy="skip")
    assert read_ids(reader, path, batch_size=4) == ["v0", "v1", "v2"]
    summary = reader.skipped_records.summary()
    assert summary["skipped_records"] == 3
    assert {video["reason"] for video in summary["malformed_videos"]} == {
        "not a protocol buffer (unparsable)"
    }
    skipped = corrupt_records.SkippedRecords()
    batches, _ = record_batches.make_record_batches(
        path, 8, corrupt_record_policy="skip", skipped=skipped
    )
    assert [record for batch in batches for record in batch.numpy()] == good
    assert skipped.count == 3
