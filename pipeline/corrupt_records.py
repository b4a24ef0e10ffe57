"""Bad input data: the corrupt record policy, damaged shards, and errors a user can act on.

By `corrupt_record_policy`:
- "fail" (the default): a frame of the wrong byte size, a label outside [0, num_classes) or a
  missing feature list raises `tf.errors.InvalidArgumentError` whose message names the video
  id; a corrupt or truncated shard raises `tf.errors.DataLossError`, and `find_unreadable_file`
  names the shard. `iterate_batches` turns both into one `utils.UserInputError`.
- "skip": such videos are left out of their batch (the batch carries their ids and reasons as
  `skipped_video_ids`, `skipped_reasons`); a shard is read up to its first corrupt or truncated
  record and the rest of it, which TFRecord framing cannot resynchronise, is left out
  (`read_shard_skipping_damage`). Both are logged and tallied in a `SkippedRecords`.
A record that is not a protocol buffer at all (its checksum held, so it was written that way)
stops "fail" naming its file, and "skip" leaves it out (`drop_unparsable`), on every path that
reads shards (the readers, and the serialized batches a SavedModel is given).

The readers (readers.py) find each batch's problems; `apply_policy` acts on them.
"""

import contextlib
import re
import struct
import threading

import tensorflow as tf
from absl import logging

import utils

CORRUPT_RECORD_POLICIES = ("fail", "skip")
CORRUPT_RECORD_POLICY_HELP = (
    "fail: stop at the first corrupt shard or malformed video, naming it; skip: leave them out, "
    "log each, and report the count at the end."
)
# A TFRecord is: data length (uint64), masked CRC32-C of the length, data, masked CRC32-C of data.
TFRECORD_HEADER_BYTES = 12
TFRECORD_FRAMING_BYTES = 16
MAX_LISTED_SKIPS = 20  # skipped videos and shards listed by SkippedRecords.summary()
# How the readers' "fail" check of a label outside [0, num_classes) starts its message; its
# data follow: the video id, its label, the largest label of the batch and num_classes.
LABEL_OUT_OF_RANGE = "Label out of range [0, num_classes) in video"
LABEL_OUT_OF_RANGE_DETAIL = re.compile(
    re.escape(LABEL_OUT_OF_RANGE)
    + r" (?P<video_id>.+?) label (?P<label>-?\d+) largest label (?P<largest>-?\d+) "
    r"num_classes (?P<num_classes>\d+)"
)
# The files read to find the one that holds a video with a label out of range.
MAX_BYTES_SEARCHED = 1 << 30


def check_corrupt_record_policy(policy):
    """Raises `utils.UserInputError` unless `policy` is one of CORRUPT_RECORD_POLICIES."""
    if policy not in CORRUPT_RECORD_POLICIES:
        raise utils.UserInputError(
            f"--corrupt_record_policy={policy}: choose one of {', '.join(CORRUPT_RECORD_POLICIES)}."
        )


def apply_policy(batch, problems, policy):
    """Applies a corrupt record policy to a parsed batch's per-video problems.

    Args:
      batch: dict of tensors whose first dimension is the batch's B videos, `video_ids` among
        them.
      problems: list of (bad_video `[B]` bool, the "fail" message's assert data, the "skip"
        reason text).
      policy: "fail" or "skip".

    Returns:
      "fail": `batch`, computed only after checks that no video is bad (their failure
      names the first bad video). "skip": `batch` without the bad videos, plus
      `skipped_video_ids [S]` and `skipped_reasons [S]` (the first problem of each).
    """
    video_ids = batch["video_ids"]
    if policy == "fail":
        checks = [
            tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), data, summarize=5)
            for bad, data, _ in problems
        ]
        with tf.control_dependencies(checks):
            return {key: tf.identity(value) for key, value in batch.items()}
    reasons = tf.fill(tf.shape(video_ids), "")
    for bad, _, reason in reversed(problems):
        reasons = tf.where(bad, reason, reasons)
    skip = tf.not_equal(reasons, "")
    keep = tf.logical_not(skip)
    kept = {key: tf.boolean_mask(value, keep) for key, value in batch.items()}
    kept["skipped_video_ids"] = tf.boolean_mask(video_ids, skip)
    kept["skipped_reasons"] = tf.boolean_mask(reasons, skip)
    return kept


def feature_list_problems(serialized, video_ids, num_frames, feature_names):
    """Flags the videos that lack one of `feature_names` as a feature list.

    Parsing with `allow_missing` gives such a video 0 frames, like an empty one; only videos
    with 0 frames are decoded again (`tf.io.decode_proto`) to list their feature lists' keys.

    Returns:
      one problem per feature name (see `apply_policy`).
    """
    empty = tf.equal(num_frames, 0)
    empty_positions = tf.where(empty)
    records = tf.boolean_mask(serialized, empty)
    num_records = tf.shape(records)[0]

    def first_field(messages, message_type, field):
        """Each message's first value of a string `field` ("" when absent): `[N]`."""
        _, (values,) = tf.io.decode_proto(messages, message_type, [field], [tf.string])
        values = tf.reshape(values, [tf.shape(messages)[0], -1])
        return tf.concat([values, tf.fill([tf.shape(messages)[0], 1], "")], axis=1)[:, 0]

    def missing_lists():
        """`[E, len(feature_names)]` bool: True where a record lacks that feature list."""
        feature_lists = first_field(records, "tensorflow.SequenceExample", "feature_lists")
        _, (entries,) = tf.io.decode_proto(
            feature_lists, "tensorflow.FeatureLists", ["feature_list"], [tf.string]
        )
        entries = tf.reshape(entries, [num_records, -1])  # [E, lists] map entries
        entry_keys = first_field(
            tf.concat([tf.reshape(entries, [-1]), [""]], axis=0),  # decode_proto needs >= 1
            "tensorflow.FeatureLists.FeatureListEntry",
            "key",
        )[:-1]
        keys = tf.reshape(entry_keys, tf.shape(entries))
        return tf.stack(
            [tf.logical_not(tf.reduce_any(tf.equal(keys, name), axis=1)) for name in feature_names],
            axis=1,
        )

    # decode_proto refuses an empty batch, and most batches have no video without frames.
    missing = tf.cond(
        num_records > 0,
        missing_lists,
        lambda: tf.zeros([0, len(feature_names)], tf.bool),
    )
    problems = []
    for index, name in enumerate(feature_names):
        bad_video = tf.scatter_nd(
            empty_positions, missing[:, index], tf.shape(video_ids, out_type=tf.int64)
        )
        problems.append(
            (
                bad_video,
                [
                    f"No feature list '{name}' (--feature_names) in video",
                    tf.boolean_mask(video_ids, bad_video)[:1],
                ],
                f"no feature list '{name}'",
            )
        )
    return problems


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


CRC32C_TABLE = _crc32c_table()


def masked_crc32c(data):
    """The masked CRC32-C that TFRecord framing stores after the length and after the data."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def count_records_from(path, offset, size):
    """Counts the records from byte `offset` to the end of a TFRecord file by their headers.

    Returns:
      (records, exact): `exact` is False when a length header fails its checksum, after which
      the records cannot be told apart (the count then covers the records up to it, that one
      included). A truncated last record counts as one.
    """
    records = 0
    with tf.io.gfile.GFile(path, "rb") as handle:
        while offset < size:
            handle.seek(offset)
            header = handle.read(TFRECORD_HEADER_BYTES)
            records += 1
            if len(header) < TFRECORD_HEADER_BYTES:
                break
            (length,) = struct.unpack("<Q", header[:8])
            (length_crc,) = struct.unpack("<I", header[8:])
            if masked_crc32c(header[:8]) != length_crc:
                return records, False
            offset += TFRECORD_FRAMING_BYTES + length
    return records, True


class SkippedRecords:
    """What `corrupt_record_policy="skip"` left out: shard tails past a damaged record, and
    malformed videos. Thread-safe (shards report from tf.data's threads)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.damaged_shards = []  # {"file", "offset", "size", "records", "exact"}
        self.malformed_videos = []  # {"video_id", "reason"}, the first MAX_LISTED_SKIPS
        self.num_malformed_videos = 0

    def add_damaged_shard(self, path, offset, size):
        """Records that `path` could be read only up to byte `offset` of `size`."""
        records, exact = count_records_from(path, offset, size)
        logging.warning(
            "Skipped %s%d record(s) of %s: the record at byte %d of %d is corrupt or truncated, "
            "and TFRecord reading cannot resume after it.",
            "" if exact else "at least ",
            records,
            path,
            offset,
            size,
        )
        with self._lock:
            self.damaged_shards.append(
                {"file": path, "offset": offset, "size": size, "records": records, "exact": exact}
            )

    def add_malformed(self, video_ids, reasons):
        """Records the videos a batch left out (`video_ids`, `reasons`: lists of str)."""
        for video_id, reason in zip(video_ids, reasons, strict=True):
            logging.warning("Skipped malformed video %s: %s", video_id, reason)
        with self._lock:
            self.num_malformed_videos += len(video_ids)
            room = MAX_LISTED_SKIPS - len(self.malformed_videos)
            self.malformed_videos.extend(
                {"video_id": video_id, "reason": reason}
                for video_id, reason in list(zip(video_ids, reasons, strict=True))[:room]
            )

    @property
    def count(self):
        """Records left out: those in damaged shard tails and the malformed videos."""
        with self._lock:
            shard_records = sum(shard["records"] for shard in self.damaged_shards)
            return shard_records + self.num_malformed_videos

    def summary(self):
        """A JSON-ready dict: `skipped_records`, `damaged_shards`, `malformed_videos`."""
        with self._lock:
            return {
                "skipped_records": sum(shard["records"] for shard in self.damaged_shards)
                + self.num_malformed_videos,
                "damaged_shards": [dict(shard) for shard in self.damaged_shards],
                "num_malformed_videos": self.num_malformed_videos,
                "malformed_videos": [dict(video) for video in self.malformed_videos],
            }

    def describe(self):
        """One line for the end of a run."""
        return self.describe_summary(self.summary())

    @staticmethod
    def describe_summary(summary):
        """One line from a `summary()` dict."""
        shard_records = summary["skipped_records"] - summary["num_malformed_videos"]
        return (
            f"--corrupt_record_policy=skip left out {summary['skipped_records']} record(s): "
            f"{summary['num_malformed_videos']} malformed video(s) and {shard_records} "
            f"record(s) in {len(summary['damaged_shards'])} damaged shard(s)."
        )


def read_shard_skipping_damage(path, size, skipped):
    """The records of one shard up to its first corrupt or truncated record.

    The bytes read are counted as the records go by; at the end of the shard, fewer bytes than
    the file's `size` means the read stopped at a damaged record, which `skipped` is told.

    Args:
      path: scalar string tensor, the shard.
      size: scalar int64 tensor, its size in bytes.
      skipped: SkippedRecords.

    Returns:
      a dataset of scalar string records.
    """
    records = tf.data.TFRecordDataset(path).ignore_errors()
    flagged = records.map(lambda record: (record, tf.constant(False)))
    end_marker = tf.data.Dataset.from_tensors((tf.constant(""), tf.constant(True)))

    def count_bytes(consumed, element):
        record, is_end = element
        record_bytes = tf.cast(tf.strings.length(record), tf.int64) + TFRECORD_FRAMING_BYTES
        consumed += tf.where(is_end, tf.constant(0, tf.int64), record_bytes)
        return consumed, (record, is_end, consumed)

    def report_damage(path_value, consumed, size_value):
        skipped.add_damaged_shard(
            path_value.numpy().decode("utf-8"), int(consumed), int(size_value)
        )
        return True

    def keep_record(record, is_end, consumed):
        damaged = tf.logical_and(is_end, consumed < size)
        reported = tf.cond(
            damaged,
            lambda: tf.py_function(report_damage, [path, consumed, size], tf.bool),
            lambda: tf.constant(True),
        )
        with tf.control_dependencies([reported]):
            return tf.logical_not(is_end)

    counted = flagged.concatenate(end_marker).scan(tf.constant(0, tf.int64), count_bytes)
    readable = counted.filter(keep_record).map(lambda record, is_end, consumed: record)
    return drop_unparsable(readable, path, skipped)


# A context key no record has: parsing it makes the parser read the whole record.
PROBE_KEY = "__record_probe__"


def drop_unparsable(records, path, skipped):
    """`records` of one shard without those that are not protocol buffers at all (bytes whose
    TFRecord checksums held, so they were written that way); `skipped` is told how many.

    Each record goes through the SequenceExample parser (a video-level Example has the same
    wire format); a record it cannot parse raises, and `ignore_errors` drops it. The records
    are numbered first, so the gaps in the numbers that come out (and, with an empty record at
    the end as a marker, after the last) count the dropped ones.
    """
    marked = records.map(lambda record: (record, tf.constant(False))).concatenate(
        tf.data.Dataset.from_tensors((tf.constant(""), tf.constant(True)))
    )

    def parse_or_raise(index, element):
        record, is_end = element
        parsed, _ = tf.io.parse_single_sequence_example(
            record, context_features={PROBE_KEY: tf.io.VarLenFeature(tf.int64)}
        )
        # The probe's size is carried on to the filter, so that the parse is not pruned away
        # as unused.
        return index, record, is_end, tf.size(parsed[PROBE_KEY].values)

    def count_gaps(previous, element):
        index, record, is_end, probe = element
        return index, (record, is_end, index - previous - 1, probe)

    def report(path_value, count):
        name = path_value.numpy().decode("utf-8")
        skipped.add_malformed(
            [f"a record of {name}"] * int(count),
            ["not a protocol buffer (unparsable)"] * int(count),
        )
        return True

    def keep(record, is_end, dropped, probe):
        reported = tf.cond(
            dropped > 0,
            lambda: tf.py_function(report, [path, dropped], tf.bool),
            lambda: tf.constant(True),
        )
        with tf.control_dependencies([reported]):
            return tf.logical_and(tf.logical_not(is_end), probe >= 0)

    checked = marked.enumerate().map(parse_or_raise).ignore_errors()
    gaps = checked.scan(tf.constant(-1, tf.int64), count_gaps)
    return gaps.filter(keep).map(lambda record, is_end, dropped, probe: record)


def find_unreadable_file(files):
    """Returns (path, error message) of the first shard that does not read cleanly, or None.

    Used after a `tf.errors.DataLossError`, whose message gives a byte offset but no file name:
    reads each shard on its own (framing and checksums only, no parsing).
    """
    for path in files:
        try:
            for _ in tf.data.TFRecordDataset(path, buffer_size=1 << 20):
                pass
        except tf.errors.DataLossError as error:
            return path, utils.describe_tf_error(error)
    return None


def find_video(files, video_id, video_id_key="id", max_bytes=MAX_BYTES_SEARCHED):
    """Reads the ids and labels of `files` in turn (at most `max_bytes` of them) until one holds
    the video `video_id`.

    Returns:
      (the file that holds it or None, the largest label in the files read, -1 when none).
    """
    context_features = {
        video_id_key: tf.io.FixedLenFeature([], tf.string, ""),
        "labels": tf.io.VarLenFeature(tf.int64),
    }
    wanted = video_id.encode("utf-8")
    largest = -1
    searched = 0
    for path in files:
        searched += tf.io.gfile.stat(path).length
        if searched > max_bytes:
            break
        found = False
        try:
            for records in tf.data.TFRecordDataset(path).batch(256):
                # The context of a SequenceExample and the features of an Example are one field.
                context, _, _ = tf.io.parse_sequence_example(records, context_features)
                labels = context["labels"].values.numpy()
                if labels.size:
                    largest = max(largest, int(labels.max()))
                found = found or wanted in context[video_id_key].numpy().tolist()
        except tf.errors.OpError:
            break  # a damaged file: the search stops with what it found
        if found:
            return path, largest
    return None, largest


def describe_label_out_of_range(files, video_id_key, video_id, label, largest, num_classes):
    """The error of a label outside [0, num_classes), from what the reader's check gave: the file
    that holds the video (`find_video`), the largest label seen and the flag to change."""
    path, largest_read = find_video(files, video_id, video_id_key)
    where = path or f"one of {len(files)} files"
    if label < 0:
        return (
            f"Label out of range in {where}: video {video_id} has label {label}; labels are "
            f"class indexes in [0, --num_classes={num_classes}). Fix the data, or leave such "
            "videos out with --corrupt_record_policy=skip."
        )
    largest = max(largest, largest_read, label)
    return (
        f"Label out of range in {where}: video {video_id} has label {label}, but "
        f"--num_classes={num_classes} allows labels 0 to {num_classes - 1}; the largest label "
        f"seen is {largest}. Set --num_classes above the data's largest label (YouTube-8M 2018 "
        "has 3862 classes)."
    )


@contextlib.contextmanager
def data_errors(files, video_id_key="id"):
    """Turns the runtime errors of reading and parsing `files` into one `utils.UserInputError`.

    A corrupt or truncated shard (`DataLossError`) is located and named; a malformed record
    (wrong feature size, label out of range, unparsable) is reported with what the reader's
    checks name (the video id). A label out of range is also located: the file that holds the
    video (read by `video_id_key`), the largest label seen and --num_classes.
    """
    try:
        yield
    except tf.errors.DataLossError as error:
        located = find_unreadable_file(files)
        if located is None:
            detail = utils.describe_tf_error(error)
            raise utils.UserInputError(f"Corrupt input data: {detail}") from None
        path, detail = located
        raise utils.UserInputError(
            f"Corrupt or truncated record in {path}: {detail}. Re-download the file or "
            "exclude it from the pattern."
        ) from None
    except tf.errors.InvalidArgumentError as error:
        detail = utils.describe_tf_error(error).split("  Did you mean")[0][:500]
        label_problem = LABEL_OUT_OF_RANGE_DETAIL.search(detail)
        if label_problem:
            raise utils.UserInputError(
                describe_label_out_of_range(
                    files,
                    video_id_key,
                    label_problem["video_id"],
                    int(label_problem["label"]),
                    int(label_problem["largest"]),
                    int(label_problem["num_classes"]),
                )
            ) from None
        source = files[0] if len(files) == 1 else f"one of {len(files)} files"
        raise utils.UserInputError(
            f"Malformed record in {source}: {detail}{hint(detail)}"
        ) from None


def hint(detail):
    """A suggestion for the flag most likely behind a parse error, or ""."""
    if "No feature list" in detail:
        return (
            ". The records lack that frame-level feature list: check --feature_names, or for "
            "video-level records use --frame_features=false --feature_names=mean_rgb,mean_audio"
        )
    if "sizes found 0" in detail:
        return ". The feature is missing from the records: check --feature_names"
    if "Inconsistent max number of elements for feature" in detail or "Key: " in detail:
        return ". Check --video_id_key ('id' in 2018 data, 'video_id' in 2017) and --feature_names"
    return ""


def iterate_batches(
    dataset, files, skipped=None, max_reported=5, drop_empty=True, video_id_key="id"
):
    """Iterates a reader's dataset, turning data errors into one clear `utils.UserInputError`.

    A corrupt or truncated shard (`DataLossError`) is located and named; a malformed record
    (wrong feature size, label out of range, missing feature list, unparsable) is reported with
    the video id the reader's checks name. With the "skip" policy the videos a batch left out
    are logged and added to `skipped`, and a batch left empty is not yielded. Videos with 0
    frames are logged as warnings (the models give them a finite prediction from no frames).
    A distributed dataset's batches (per-replica values) are checked on this worker's part.

    Args:
      dataset: from `make_dataset`, or a distributed dataset of its batches.
      files: the files it reads (for error messages).
      skipped: the reader's `SkippedRecords` (`reader.skipped_records`); None: log only.
      max_reported: at most this many empty-video ids are logged per batch.
      drop_empty: leave out batches that the skip policy emptied; False under a strategy with
        several replicas, whose steps must stay in step with the other replicas and workers.
      video_id_key: the context key of the video ids, to find the file of a bad video.

    Yields:
      the dataset's batch dicts, without the `skipped_*` entries.
    """
    skipped = skipped if skipped is not None else SkippedRecords()
    iterator = iter(dataset)
    while True:
        with data_errors(files, video_id_key):
            try:
                batch = next(iterator)
            except StopIteration:
                return
        if "skipped_video_ids" in batch:
            skipped_ids = utils.local_values(batch.pop("skipped_video_ids")).numpy()
            reasons = utils.local_values(batch.pop("skipped_reasons")).numpy()
            if len(skipped_ids):
                skipped.add_malformed(
                    [video_id.decode("utf-8", "replace") for video_id in skipped_ids],
                    [reason.decode("utf-8") for reason in reasons],
                )
        video_ids = utils.local_values(batch["video_ids"])
        if drop_empty and video_ids.shape[0] == 0:
            continue
        empty = utils.local_values(batch["num_frames"]).numpy() == 0
        if empty.any():
            ids = [video_id.decode("utf-8", "replace") for video_id in video_ids.numpy()]
            empty_ids = [
                video_id for video_id, is_empty in zip(ids, empty, strict=True) if is_empty
            ]
            logging.warning(
                "%d video(s) with 0 frames (prediction from no frames): %s",
                len(empty_ids),
                ", ".join(empty_ids[:max_reported]),
            )
        yield batch
