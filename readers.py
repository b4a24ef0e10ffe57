"""Input pipelines: YouTube-8M TFRecord shards (local or gs://) -> batches of tensors.

Two readers, as in the starter:
- `YT8MFrameFeatureReader` reads frame-level `tf.train.SequenceExample`s: context `id` and `labels`,
  one feature list per feature (`rgb`, `audio`), each frame a string of uint8 bytes.
- `YT8MAggregatedFeatureReader` reads video-level `tf.train.Example`s (`mean_rgb`, `mean_audio`).

Both turn a file pattern into a `tf.data.Dataset` of batches:
  {"video_ids": [B] string, "video_matrix": [B, T, D] (frame) or [B, D] (video),
   "num_frames": [B] int32, "labels": [B, C] bool multi-hot}
Files are interleaved, records are batched first and parsed a batch at a time
(`tf.io.parse_sequence_example`), and batches are prefetched. For a model that reads 1 frame in
j, records laid out as YouTube-8M writes them are not parsed at all: each feature list is located
with a few vectorised varint reads and only the selected frames are cut out and decoded
(`YT8MFrameFeatureReader.parse_by_slicing`); a batch with any other record is parsed. Frame
features stay uint8 by default: the model dequantizes them inside its compiled step, which is
cheaper than converting every frame here (`dequantize=True` gives the starter's float32
matrices instead).

Bad data, by `corrupt_record_policy`:
- "fail" (the default): a frame of the wrong byte size, a label outside [0, num_classes) or a
  missing feature list raises `tf.errors.InvalidArgumentError` whose message names the video
  id; a corrupt or truncated shard raises `tf.errors.DataLossError`, and `find_unreadable_file`
  names the shard. `iterate_batches` turns both into one `utils.UserInputError`.
- "skip": such videos are left out of their batch (the batch carries their ids and reasons as
  `skipped_video_ids`, `skipped_reasons`); a shard is read up to its first corrupt or truncated
  record and the rest of it, which TFRecord framing cannot resynchronise, is left out. Both are
  logged and tallied in the reader's `SkippedRecords`.
A record that is not a protocol buffer at all (its checksum held, so it was written that way)
fails in both policies.
"""

import contextlib
import struct
import threading

import tensorflow as tf
from absl import logging

import distribution
import utils

AUTOTUNE = tf.data.AUTOTUNE
CORRUPT_RECORD_POLICIES = ("fail", "skip")
# A TFRecord is: data length (uint64), masked CRC32-C of the length, data, masked CRC32-C of data.
TFRECORD_HEADER_BYTES = 12
TFRECORD_FRAMING_BYTES = 16
CORRUPT_RECORD_POLICY_HELP = (
    "fail: stop at the first corrupt shard or malformed video, naming it; skip: leave them out, "
    "log each, and report the count at the end."
)
MAX_LISTED_SKIPS = 20  # skipped videos and shards listed by SkippedRecords.summary()


def check_corrupt_record_policy(policy):
    if policy not in CORRUPT_RECORD_POLICIES:
        raise utils.UserInputError(
            f"--corrupt_record_policy={policy}: choose one of {', '.join(CORRUPT_RECORD_POLICIES)}."
        )


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
    return counted.filter(keep_record).map(lambda record, is_end, consumed: record)


class BaseReader:
    """Shared pipeline: files -> interleaved records -> batches -> parse -> prefetch."""

    def __init__(
        self, num_classes, feature_names, feature_sizes, video_id_key, corrupt_record_policy
    ):
        feature_names, feature_sizes = utils.get_list_of_feature_names_and_sizes(
            feature_names, feature_sizes
        )
        if num_classes < 1:
            raise utils.UserInputError(f"--num_classes must be >= 1, got {num_classes}.")
        check_corrupt_record_policy(corrupt_record_policy)
        self.corrupt_record_policy = corrupt_record_policy
        self.skipped_records = SkippedRecords()  # what the "skip" policy left out, all datasets
        self.num_classes = num_classes
        self.feature_names = feature_names
        self.feature_sizes = feature_sizes
        self.video_id_key = video_id_key

    @property
    def feature_size(self):
        """Width D of the concatenated feature vector."""
        return sum(self.feature_sizes)

    def parse_serialized(self, serialized):
        """Parses a `[B]` string tensor of serialized records into a batch dict."""
        raise NotImplementedError

    def make_dataset(
        self,
        data_pattern,
        batch_size,
        num_epochs=1,
        shuffle=False,
        shuffle_buffer_size=1024,
        num_readers=4,
        drop_remainder=False,
        seed=None,
        flag_name="data pattern",
        record_shard=None,
    ):
        """Builds the batched `tf.data.Dataset` for all files matching `data_pattern`.

        Args:
          data_pattern: comma-separated glob patterns, local paths or gs:// URLs.
          batch_size: videos per batch.
          num_epochs: passes over the data; None repeats forever.
          shuffle: shuffle files and records (training). Without it the order is deterministic:
            the same files give the same batches in the same order.
          shuffle_buffer_size: records held for shuffling.
          num_readers: shards read in parallel.
          drop_remainder: drop a last batch smaller than `batch_size`.
          seed: seed for the shuffles.
          flag_name: how error messages name the pattern, e.g. "--train_data_pattern".
          record_shard: (count, index) to keep one record in `count` (a worker's share when
            there are fewer files than workers); None keeps all.

        Returns:
          (dataset, files): the dataset of batch dicts and the sorted list of files it reads.

        Raises:
          utils.UserInputError: when no file matches.
        """
        records, files = make_record_batches(
            data_pattern,
            batch_size,
            num_epochs=num_epochs,
            shuffle=shuffle,
            shuffle_buffer_size=shuffle_buffer_size,
            num_readers=num_readers,
            drop_remainder=drop_remainder,
            seed=seed,
            flag_name=flag_name,
            corrupt_record_policy=self.corrupt_record_policy,
            skipped=self.skipped_records,
            record_shard=record_shard,
        )
        batches = records.map(self.parse_serialized, num_parallel_calls=AUTOTUNE)
        return batches.prefetch(AUTOTUNE), files

    def _context_features(self):
        return {
            self.video_id_key: tf.io.FixedLenFeature([], tf.string),
            "labels": tf.io.VarLenFeature(tf.int64),
        }

    def _labels_to_multi_hot(self, video_ids, sparse_labels):
        """Sparse labels -> (`[B, num_classes]` bool multi-hot, the out-of-range problem).

        Labels outside [0, num_classes) are left out of the matrix; the problem (see
        `_apply_policy`) flags their videos.
        """
        values = sparse_labels.values
        rows = sparse_labels.indices[:, 0]
        batch_size = tf.shape(video_ids, out_type=tf.int64)[0]
        out_of_range = tf.logical_or(values < 0, values >= self.num_classes)
        bad_video = (
            tf.math.unsorted_segment_max(tf.cast(out_of_range, tf.int32), rows, batch_size) > 0
        )
        problem = (
            bad_video,
            [
                "Label out of range [0, num_classes) in video",
                tf.gather(video_ids, tf.boolean_mask(rows, out_of_range)[:1]),
                "label",
                tf.boolean_mask(values, out_of_range)[:1],
                "num_classes",
                self.num_classes,
            ],
            f"label out of range [0, {self.num_classes})",
        )
        in_range = tf.logical_not(out_of_range)
        indices = tf.stack(
            [tf.boolean_mask(rows, in_range), tf.boolean_mask(values, in_range)], axis=1
        )
        dense_shape = tf.stack([batch_size, tf.constant(self.num_classes, tf.int64)])
        multi_hot = tf.sparse.SparseTensor(
            indices, tf.ones_like(indices[:, 0], dtype=tf.bool), dense_shape
        )
        multi_hot = tf.sparse.reorder(multi_hot)
        dense = tf.sparse.to_dense(multi_hot, default_value=False, validate_indices=False)
        return dense, problem

    def _apply_policy(self, batch, problems):
        """Applies the corrupt record policy to a parsed batch's per-video problems.

        Args:
          batch: dict of tensors whose first dimension is the batch's B videos.
          problems: list of (bad_video `[B]` bool, the "fail" message's assert data, the "skip"
            reason text).

        Returns:
          "fail": `batch`, computed only after checks that no video is bad (their failure
          names the first bad video). "skip": `batch` without the bad videos, plus
          `skipped_video_ids [S]` and `skipped_reasons [S]` (the first problem of each).
        """
        video_ids = batch["video_ids"]
        if self.corrupt_record_policy == "fail":
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
      one problem per feature name (see `BaseReader._apply_policy`).
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


def varint_bytes(value):
    """The protobuf varint encoding of a non-negative int."""
    encoded = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        encoded.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(encoded)


def frame_element_prefix(size):
    """The bytes before a frame's `size` raw bytes in its FeatureList: the repeated `feature`
    field's header, then Feature's `bytes_list` header, then BytesList's `value` header (9
    bytes for the 1,024 rgb and 128 audio bytes of YouTube-8M)."""
    bytes_list = b"\x0a" + varint_bytes(size)
    feature_length = len(bytes_list) + size
    feature = b"\x0a" + varint_bytes(feature_length)
    element_length = len(feature) + feature_length
    return b"\x0a" + varint_bytes(element_length) + feature + bytes_list


def read_byte(serialized, position):
    """The byte at `position` of each record, or -1 past its end: `[B]` int64."""
    length = tf.cast(tf.strings.length(serialized), tf.int64)
    inside = position < length
    raw = tf.strings.substr(serialized, tf.minimum(position, length), tf.cast(inside, tf.int64))
    value = tf.cast(tf.io.decode_raw(raw, tf.uint8, fixed_length=1)[:, 0], tf.int64)
    return tf.where(inside, value, -1)


def read_varint(serialized, position, max_bytes=5):
    """Decodes the varint at byte `position` of each record.

    Returns:
      (value, size, valid): `[B]` int64 value and byte count, and whether it ended within
      `max_bytes` bytes and within the record.
    """
    length = tf.cast(tf.strings.length(serialized), tf.int64)
    start = tf.minimum(position, length)
    raw = tf.strings.substr(
        serialized, start, tf.fill(tf.shape(start), tf.constant(max_bytes, tf.int64))
    )
    available = tf.cast(tf.strings.length(raw), tf.int64)
    data = tf.cast(tf.io.decode_raw(raw, tf.uint8, fixed_length=max_bytes), tf.int64)
    continues = tf.cast(data >= 128, tf.int64)
    # Byte i belongs to the varint when every byte before it has its continuation bit.
    belongs = tf.math.cumprod(continues, axis=1, exclusive=True)
    shifts = tf.constant([7 * index for index in range(max_bytes)], tf.int64)
    value = tf.reduce_sum(belongs * tf.bitwise.left_shift(data % 128, shifts), axis=1)
    size = tf.reduce_sum(belongs, axis=1)
    ends = tf.reduce_sum(belongs * (1 - continues), axis=1) > 0
    return value, size, tf.logical_and(ends, size <= available)


def locate_feature_lists(serialized, feature_names):
    """Finds each feature list's bytes in serialized SequenceExamples without parsing frames.

    Expects the layout of YouTube-8M records: the context (field 1) first, then the
    feature lists (field 2) last, holding exactly `feature_names` (in any order).

    Returns:
      dict with `context_end [B]` (bytes of the record up to the end of its context, which on
      their own are a serialized `tf.train.Example` of the context), `starts` and `lengths`
      (per feature, `[B]` byte offset and length of its FeatureList's content), and `ok [B]`,
      False for a record laid out otherwise.
    """
    length = tf.cast(tf.strings.length(serialized), tf.int64)
    ok = tf.equal(read_byte(serialized, tf.zeros_like(length)), 0x0A)
    context_length, size, valid = read_varint(serialized, tf.ones_like(length))
    ok = ok & valid
    context_end = 1 + size + context_length
    ok = ok & tf.equal(read_byte(serialized, context_end), 0x12)
    lists_length, size, valid = read_varint(serialized, context_end + 1)
    position = context_end + 1 + size
    ok = ok & valid & tf.equal(position + lists_length, length)
    keys, starts, lengths = [], [], []
    for _ in feature_names:
        ok = ok & tf.equal(read_byte(serialized, position), 0x0A)
        entry_length, size, valid = read_varint(serialized, position + 1)
        entry_start = position + 1 + size
        ok = ok & valid & tf.equal(read_byte(serialized, entry_start), 0x0A)
        key_length, size, valid = read_varint(serialized, entry_start + 1)
        key_start = entry_start + 1 + size
        ok = ok & valid & (key_start + key_length <= length)
        keys.append(
            tf.strings.substr(
                serialized, tf.minimum(key_start, length), tf.where(ok, key_length, 0)
            )
        )
        value_tag = key_start + key_length
        ok = ok & tf.equal(read_byte(serialized, value_tag), 0x12)
        value_length, size, valid = read_varint(serialized, value_tag + 1)
        starts.append(value_tag + 1 + size)
        lengths.append(value_length)
        position = entry_start + entry_length
        ok = ok & valid & tf.equal(starts[-1] + value_length, position)
    ok = ok & tf.equal(position, length)
    found_starts, found_lengths = [], []
    for name in feature_names:
        matches = [tf.equal(key, name) for key in keys]
        ok = ok & tf.equal(tf.add_n([tf.cast(match, tf.int32) for match in matches]), 1)
        found_starts.append(
            tf.add_n([tf.where(m, start, 0) for m, start in zip(matches, starts, strict=True)])
        )
        found_lengths.append(
            tf.add_n([tf.where(m, size, 0) for m, size in zip(matches, lengths, strict=True)])
        )
    return {"context_end": context_end, "starts": found_starts, "lengths": found_lengths, "ok": ok}


FRAME_SAMPLINGS = ("uniform", "random")


def select_frame_indices(
    num_frames, num_input_frames, frame_stride, frame_sampling, video_ids, sampling_seed=None
):
    """Chooses which frames a model that reads 1 in `frame_stride` frames sees.

    Uniform: frames 0, j, 2j, ... below the video's frame count (j = `frame_stride`), so a video
    of N frames gives ceil(N / j) frames and a video shorter than j gives its first frame.
    Random: the same number of frames, drawn without replacement from the video's N frames and
    kept in time order. With `sampling_seed` None the draw is new at every call (training);
    with a seed it is a hash of (video id, frame index, seed), so a video always gets the same
    frames whatever batch it is in (eval, inference).

    Args:
      num_frames: `[B]` int32, frames of each video.
      num_input_frames: scalar int32 T, the padded length of the batch.
      frame_stride: j >= 1.
      frame_sampling: "uniform" or "random".
      video_ids: `[B]` strings (for the seeded random draw).
      sampling_seed: None or an int.

    Returns:
      (frame_indices `[B, T']` int32 with T' = ceil(T / j), the original index of each selected
      frame, 0 past the selected count; selected_num_frames `[B]` int32 = ceil(N / j)).
    """
    selected_num_frames = (num_frames + frame_stride - 1) // frame_stride
    num_selected = (num_input_frames + frame_stride - 1) // frame_stride
    batch_size = tf.shape(num_frames)[0]
    if frame_sampling == "uniform":
        indices = tf.range(num_selected, dtype=tf.int32) * frame_stride
        return tf.tile(indices[tf.newaxis, :], [batch_size, 1]), selected_num_frames
    frame_range = tf.range(num_input_frames)
    if sampling_seed is None:
        scores = tf.random.uniform([batch_size, num_input_frames], dtype=tf.float32)
    else:
        keys = tf.strings.join(
            [
                tf.tile(video_ids[:, tf.newaxis], [1, num_input_frames]),
                tf.tile(tf.strings.as_string(frame_range)[tf.newaxis, :], [batch_size, 1]),
                tf.fill([batch_size, num_input_frames], str(sampling_seed)),
            ],
            separator=":",
        )
        buckets = tf.strings.to_hash_bucket_fast(keys, 1 << 24)
        scores = tf.cast(buckets, tf.float32) / float(1 << 24)
    present = frame_range[tf.newaxis, :] < num_frames[:, tf.newaxis]
    scores = tf.where(present, scores, -1.0)  # absent frames rank last
    _, chosen = tf.math.top_k(scores, k=num_selected, sorted=True)
    chosen_valid = tf.range(num_selected)[tf.newaxis, :] < selected_num_frames[:, tf.newaxis]
    chosen = tf.sort(tf.where(chosen_valid, chosen, num_input_frames), axis=1)
    return tf.where(chosen_valid, chosen, 0), selected_num_frames


class YT8MFrameFeatureReader(BaseReader):
    """Reads frame-level SequenceExamples into `[B, T, D]` matrices (T <= max_frames).

    With `frame_stride` j > 1 only 1 frame in j is selected (`select_frame_indices`), and only the
    selected frames are decoded: the cost of what follows the parse falls with j.
    """

    def __init__(
        self,
        num_classes=3862,
        feature_sizes=(1024, 128),
        feature_names=("rgb", "audio"),
        max_frames=300,
        video_id_key="id",
        dequantize=False,
        frame_stride=1,
        frame_sampling="uniform",
        sampling_seed=None,
        keep_all_frames=False,
        corrupt_record_policy="fail",
        slice_records=True,
    ):
        """Args:
        num_classes: size C of the label space.
        feature_sizes: bytes per frame of each feature list.
        feature_names: the feature lists to read, concatenated in this order.
        max_frames: frames beyond this are dropped (before selection).
        video_id_key: context key of the video id ("id" in 2018, "video_id" in 2017).
        dequantize: yield float32 dequantized features instead of uint8.
        frame_stride: select 1 frame in this many (j).
        frame_sampling: "uniform" (frames 0, j, 2j, ...) or "random" (as many, at random).
        sampling_seed: for "random": None draws anew each time (training); an int makes the
          draw a fixed function of the video id (eval, inference).
        keep_all_frames: also yield every frame (`full_video_matrix`, `full_num_frames`), for a
          teacher that is distilled into a model reading the selected frames.
        corrupt_record_policy: "fail" or "skip" (see the module docstring).
        slice_records: cut the selected frames straight out of records laid out as YouTube-8M
          writes them (`parse_serialized`); False always uses the protobuf parser.
        """
        super().__init__(
            num_classes, feature_names, feature_sizes, video_id_key, corrupt_record_policy
        )
        if max_frames < 1:
            raise utils.UserInputError(f"--max_frames must be >= 1, got {max_frames}.")
        if frame_stride < 1:
            raise utils.UserInputError(f"--frame_stride must be >= 1, got {frame_stride}.")
        if frame_sampling not in FRAME_SAMPLINGS:
            raise utils.UserInputError(
                f"--frame_sampling={frame_sampling}: choose one of {', '.join(FRAME_SAMPLINGS)}."
            )
        self.max_frames = max_frames
        self.dequantize = dequantize
        self.frame_stride = frame_stride
        self.frame_sampling = frame_sampling
        self.sampling_seed = sampling_seed
        self.keep_all_frames = keep_all_frames
        self.slice_records = slice_records
        self.frame_prefixes = [frame_element_prefix(size) for size in self.feature_sizes]

    @property
    def selects_frames(self):
        """True when the reader passes on fewer frames than the video has."""
        return self.frame_stride > 1

    def parse_serialized(self, serialized):
        """Parses serialized SequenceExamples.

        Args:
          serialized: `[B]` string tensor.

        Returns:
          dict with `video_ids [B]`, `video_matrix [B, T', D]` (uint8, or float32 when
          `dequantize`), `num_frames [B]` int32 (selected frames; 0 for an empty video),
          `frame_indices [B, T']` int32 (each selected frame's index in the video) and
          `labels [B, C]` bool. T is the longest video of the batch capped at `max_frames` and
          T' = ceil(T / frame_stride); shorter videos are zero-padded. With `keep_all_frames`,
          also `full_video_matrix [B, T, D]` and `full_num_frames [B]`.

        Records laid out as YouTube-8M writes them (`locate_feature_lists`; every frame of a
        feature list the same size) have only their selected frames cut out of the serialized
        bytes, each checked for its 9-byte framing; a batch with any other record is parsed
        by `tf.io.parse_sequence_example`, which gives the same tensors.
        """
        if self.keep_all_frames or not self.slice_records or not self.selects_frames:
            return self.parse_with_parser(serialized)
        sliced, sliced_ok = self.parse_by_slicing(serialized)
        return tf.cond(sliced_ok, lambda: sliced, lambda: self.parse_with_parser(serialized))

    def _select_frames(self, num_frames, num_input_frames, video_ids):
        """`select_frame_indices` with this reader's stride, sampling and seed."""
        return select_frame_indices(
            num_frames,
            num_input_frames,
            self.frame_stride,
            self.frame_sampling,
            video_ids,
            self.sampling_seed,
        )

    def parse_by_slicing(self, serialized):
        """`parse_serialized`'s fast path: (batch, True when every record fitted it)."""
        layout = locate_feature_lists(serialized, self.feature_names)
        ok = layout["ok"]
        length = tf.cast(tf.strings.length(serialized), tf.int64)
        feature_frames = []
        for list_length, size, prefix in zip(
            layout["lengths"], self.feature_sizes, self.frame_prefixes, strict=True
        ):
            element = len(prefix) + size
            ok = ok & tf.equal(list_length % element, 0)
            feature_frames.append(tf.minimum(list_length // element, self.max_frames))
        feature_frames = [tf.where(ok, frames, 0) for frames in feature_frames]
        context_bytes = tf.where(
            ok,
            tf.strings.substr(
                serialized, tf.zeros_like(length), tf.where(ok, layout["context_end"], 0)
            ),
            "",
        )
        context_features = self._context_features()
        context_features[self.video_id_key] = tf.io.FixedLenFeature([], tf.string, "")
        context = tf.io.parse_example(context_bytes, context_features)
        video_ids = context[self.video_id_key]
        num_frames = tf.cast(tf.reduce_min(tf.stack(feature_frames), axis=0), tf.int32)
        num_input_frames = tf.cast(tf.reduce_max(tf.concat(feature_frames + [[0]], 0)), tf.int32)
        frame_indices, selected_num_frames = self._select_frames(
            num_frames, num_input_frames, video_ids
        )
        valid = tf.sequence_mask(selected_num_frames, maxlen=tf.shape(frame_indices)[1])
        matrices = []
        for start, size, prefix in zip(
            layout["starts"], self.feature_sizes, self.frame_prefixes, strict=True
        ):
            # Each selected frame with its framing prefix, in one cut and one decode.
            element = len(prefix) + size
            offsets = start[:, None] + tf.cast(frame_indices, tf.int64) * element
            offsets = tf.where(valid, tf.minimum(offsets, length[:, None]), 0)
            elements = tf.strings.substr(
                serialized[:, None], offsets, tf.where(valid, tf.constant(element, tf.int64), 0)
            )
            decoded = tf.io.decode_raw(elements, tf.uint8, fixed_length=element)
            expected = tf.constant(list(prefix), tf.uint8)
            framed = tf.reduce_all(tf.equal(decoded[:, :, : len(prefix)], expected), axis=2)
            ok = ok & tf.reduce_all(tf.logical_or(framed, ~valid), axis=1)
            matrices.append(decoded[:, :, len(prefix) :])
        labels, label_problem = self._labels_to_multi_hot(video_ids, context["labels"])
        batch = self._apply_policy(
            {
                "video_ids": video_ids,
                "labels": labels,
                "num_frames": selected_num_frames,
                "frame_indices": frame_indices,
                **{
                    f"frames/{name}": matrix
                    for name, matrix in zip(self.feature_names, matrices, strict=True)
                },
            },
            [label_problem],
        )
        matrices = [batch.pop(f"frames/{name}") for name in self.feature_names]
        # Past each video's frames the cuts were empty, and decode_raw padded them with zeros.
        batch["video_matrix"] = self._assemble(matrices, batch["num_frames"], zero_padded=True)
        return batch, tf.reduce_all(ok)

    def parse_with_parser(self, serialized):
        """`parse_serialized` with `tf.io.parse_sequence_example`, for any record layout."""
        sequence_features = {
            name: tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)
            for name in self.feature_names
        }
        context, frame_lists, _ = tf.io.parse_sequence_example(
            serialized,
            context_features=self._context_features(),
            sequence_features=sequence_features,
        )
        video_ids = context[self.video_id_key]
        problems = []
        frame_strings = []
        num_frames = None
        for name, size in zip(self.feature_names, self.feature_sizes, strict=True):
            frames = frame_lists[name][:, : self.max_frames]  # [B, T] strings, "" as padding
            frame_bytes = tf.strings.length(frames)
            # A present frame (non-empty string) must hold exactly `size` bytes.
            wrong_size = tf.logical_and(frame_bytes > 0, tf.not_equal(frame_bytes, size))
            bad_video = tf.reduce_any(wrong_size, axis=1)
            problems.append(
                (
                    bad_video,
                    [
                        f"Wrong size of feature '{name}' (expected {size} bytes per frame) in "
                        "video",
                        tf.boolean_mask(video_ids, bad_video)[:1],
                        "sizes found",
                        tf.boolean_mask(frame_bytes, wrong_size)[:3],
                    ],
                    f"wrong size of feature '{name}' (expected {size} bytes per frame)",
                )
            )
            frame_strings.append(frames)
            feature_frames = tf.reduce_sum(tf.cast(frame_bytes > 0, tf.int32), axis=1)
            # Features of unequal length: keep only the frames every feature has.
            num_frames = (
                feature_frames if num_frames is None else tf.minimum(num_frames, feature_frames)
            )
        problems = (
            feature_list_problems(serialized, video_ids, num_frames, self.feature_names) + problems
        )
        labels, label_problem = self._labels_to_multi_hot(video_ids, context["labels"])
        problems.append(label_problem)
        # Bad videos are dropped (skip) or stop the batch (fail) before anything is decoded.
        checked = self._apply_policy(
            {
                "video_ids": video_ids,
                "labels": labels,
                "num_frames": num_frames,
                **{
                    f"frames/{name}": frames
                    for name, frames in zip(self.feature_names, frame_strings, strict=True)
                },
            },
            problems,
        )
        video_ids, num_frames = checked["video_ids"], checked["num_frames"]
        frame_strings = [checked[f"frames/{name}"] for name in self.feature_names]
        num_input_frames = tf.shape(frame_strings[0])[1]
        frame_indices, selected_num_frames = self._select_frames(
            num_frames, num_input_frames, video_ids
        )
        if self.selects_frames:
            selected = [
                tf.gather(strings, frame_indices, batch_dims=1) for strings in frame_strings
            ]
        else:
            selected = frame_strings
        batch = {
            "video_ids": video_ids,
            "video_matrix": self._decode(selected, selected_num_frames),
            "num_frames": selected_num_frames,
            "frame_indices": frame_indices,
            "labels": checked["labels"],
        }
        if self.keep_all_frames:
            batch["full_video_matrix"] = self._decode(frame_strings, num_frames)
            batch["full_num_frames"] = num_frames
        for key in ("skipped_video_ids", "skipped_reasons"):
            if key in checked:
                batch[key] = checked[key]
        return batch

    def _decode(self, frame_strings, num_frames):
        """Per-feature `[B, T]` frame strings -> `[B, T, D]` matrix, zero past `num_frames`."""
        matrices = [
            tf.io.decode_raw(strings, tf.uint8, fixed_length=size)
            for strings, size in zip(frame_strings, self.feature_sizes, strict=True)
        ]
        return self._assemble(matrices, num_frames)

    def _assemble(self, matrices, num_frames, zero_padded=False):
        """Per-feature `[B, T, size]` uint8 -> `[B, T, D]` (float32 with `dequantize`), zero past
        `num_frames` (`zero_padded`: the matrices already are)."""
        video_matrix = matrices[0] if len(matrices) == 1 else tf.concat(matrices, axis=2)
        valid = tf.sequence_mask(num_frames, maxlen=tf.shape(video_matrix)[1])
        if not zero_padded:
            video_matrix = video_matrix * tf.cast(valid, tf.uint8)[:, :, tf.newaxis]
        video_matrix = tf.ensure_shape(video_matrix, [None, None, self.feature_size])
        if self.dequantize:
            video_matrix = utils.dequantize(video_matrix) * tf.cast(valid, tf.float32)[..., None]
        return video_matrix


class YT8MAggregatedFeatureReader(BaseReader):
    """Reads video-level Examples (`mean_rgb`, `mean_audio` floats) into `[B, D]` matrices."""

    def __init__(
        self,
        num_classes=3862,
        feature_sizes=(1024, 128),
        feature_names=("mean_rgb", "mean_audio"),
        video_id_key="id",
        corrupt_record_policy="fail",
    ):
        super().__init__(
            num_classes, feature_names, feature_sizes, video_id_key, corrupt_record_policy
        )

    def parse_serialized(self, serialized):
        """Parses serialized Examples.

        Args:
          serialized: `[B]` string tensor.

        Returns:
          dict with `video_ids [B]`, `video_matrix [B, D]` float32, `num_frames [B]` (all 1),
          `labels [B, C]` bool (B: the videos kept; see `_apply_policy`).
        """
        features = self._context_features()
        for name in self.feature_names:
            features[name] = tf.io.RaggedFeature(tf.float32)
        parsed = tf.io.parse_example(serialized, features)
        video_ids = parsed[self.video_id_key]
        problems = []
        columns = []
        for name, size in zip(self.feature_names, self.feature_sizes, strict=True):
            values = parsed[name]
            lengths = values.row_lengths()
            bad_video = tf.not_equal(lengths, size)
            problems.append(
                (
                    bad_video,
                    [
                        f"Wrong size of feature '{name}' (expected {size} floats) in video",
                        tf.boolean_mask(video_ids, bad_video)[:1],
                        "sizes found",
                        tf.boolean_mask(lengths, bad_video)[:3],
                    ],
                    f"wrong size of feature '{name}' (expected {size} floats)",
                )
            )
            # Rows of another size are cut or padded here and dropped or refused below.
            columns.append(values.to_tensor(shape=[None, size]))
        video_matrix = columns[0] if len(columns) == 1 else tf.concat(columns, axis=1)
        labels, label_problem = self._labels_to_multi_hot(video_ids, parsed["labels"])
        problems.append(label_problem)
        return self._apply_policy(
            {
                "video_ids": video_ids,
                "video_matrix": video_matrix,
                "num_frames": tf.ones_like(video_ids, dtype=tf.int32),
                "labels": labels,
            },
            problems,
        )


def get_reader(frame_features, num_classes, feature_names, feature_sizes, **options):
    """Returns the frame-level or video-level reader for the given model flags."""
    if frame_features:
        return YT8MFrameFeatureReader(
            num_classes=num_classes,
            feature_names=feature_names,
            feature_sizes=feature_sizes,
            **options,
        )
    for frame_option in (
        "max_frames",
        "dequantize",
        "frame_stride",
        "frame_sampling",
        "sampling_seed",
        "keep_all_frames",
    ):
        options.pop(frame_option, None)
    return YT8MAggregatedFeatureReader(
        num_classes=num_classes,
        feature_names=feature_names,
        feature_sizes=feature_sizes,
        **options,
    )


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


def make_record_batches(
    data_pattern,
    batch_size,
    num_epochs=1,
    shuffle=False,
    shuffle_buffer_size=1024,
    num_readers=4,
    drop_remainder=False,
    seed=None,
    flag_name="data pattern",
    corrupt_record_policy="fail",
    skipped=None,
    record_shard=None,
):
    """Files matching `data_pattern` -> batches of `[B]` serialized records, unparsed.

    Arguments as `BaseReader.make_dataset`; with `corrupt_record_policy="skip"` each shard is
    read up to its first damaged record, which is reported to `skipped` (a SkippedRecords).
    Returns (dataset, sorted list of files).
    """
    if batch_size < 1:
        raise utils.UserInputError(f"--batch_size must be >= 1, got {batch_size}.")
    check_corrupt_record_policy(corrupt_record_policy)
    files = utils.glob_data_files(data_pattern, flag_name)
    if corrupt_record_policy == "skip":
        skipped = skipped if skipped is not None else SkippedRecords()
        sizes = tf.constant([tf.io.gfile.stat(path).length for path in files], tf.int64)
        file_dataset = tf.data.Dataset.from_tensor_slices((files, sizes))

        def read_shard(path, size):
            return read_shard_skipping_damage(path, size, skipped)

    else:
        file_dataset = tf.data.Dataset.from_tensor_slices(files)
        read_shard = tf.data.TFRecordDataset
    if shuffle:
        file_dataset = file_dataset.shuffle(len(files), seed=seed)
    records = file_dataset.interleave(
        read_shard,
        cycle_length=max(1, min(num_readers, len(files))),
        num_parallel_calls=AUTOTUNE,
        deterministic=not shuffle,
    )
    if record_shard is not None:
        records = records.shard(*record_shard)
    if shuffle:
        records = records.shuffle(shuffle_buffer_size, seed=seed)
    if num_epochs != 1:
        records = records.repeat(num_epochs)
    return records.batch(batch_size, drop_remainder=drop_remainder), files


def reader_from_model_flags(
    model_flags,
    video_id_key="id",
    dequantize=False,
    training=False,
    keep_all_frames=False,
    corrupt_record_policy="fail",
):
    """Builds the reader that a model trained with `model_flags` (model_flags.json) reads with.

    The model's frame selection (`frame_stride`, `frame_sampling`) is part of its flags, so train,
    eval and inference select the same frames. Random sampling draws anew in training and is a
    fixed function of the video id (`frame_sampling_seed`) otherwise.
    """
    options = {"video_id_key": video_id_key, "corrupt_record_policy": corrupt_record_policy}
    if model_flags["frame_features"]:
        options.update(
            max_frames=model_flags["max_frames"],
            dequantize=dequantize,
            frame_stride=model_flags.get("frame_stride", 1),
            frame_sampling=model_flags.get("frame_sampling", "uniform"),
            sampling_seed=None if training else model_flags.get("frame_sampling_seed", 0),
            keep_all_frames=keep_all_frames,
        )
    return get_reader(
        model_flags["frame_features"],
        model_flags["num_classes"],
        model_flags["feature_names"],
        model_flags["feature_sizes"],
        **options,
    )


@contextlib.contextmanager
def data_errors(files):
    """Turns the runtime errors of reading and parsing `files` into one `utils.UserInputError`.

    A corrupt or truncated shard (`DataLossError`) is located and named; a malformed record
    (wrong feature size, label out of range, unparsable) is reported with what the reader's
    checks name (the video id).
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


def iterate_batches(dataset, files, skipped=None, max_reported=5, drop_empty=True):
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

    Yields:
      the dataset's batch dicts, without the `skipped_*` entries.
    """
    skipped = skipped if skipped is not None else SkippedRecords()
    iterator = iter(dataset)
    while True:
        with data_errors(files):
            try:
                batch = next(iterator)
            except StopIteration:
                return
        if "skipped_video_ids" in batch:
            skipped_ids = distribution.local_values(batch.pop("skipped_video_ids")).numpy()
            reasons = distribution.local_values(batch.pop("skipped_reasons")).numpy()
            if len(skipped_ids):
                skipped.add_malformed(
                    [video_id.decode("utf-8", "replace") for video_id in skipped_ids],
                    [reason.decode("utf-8") for reason in reasons],
                )
        video_ids = distribution.local_values(batch["video_ids"])
        if drop_empty and video_ids.shape[0] == 0:
            continue
        empty = distribution.local_values(batch["num_frames"]).numpy() == 0
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
