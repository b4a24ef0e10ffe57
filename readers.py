"""Input pipelines: YouTube-8M TFRecord shards (local or gs://) -> batches of tensors.

Two readers, as in the starter:
- `YT8MFrameFeatureReader` reads frame-level `tf.train.SequenceExample`s: context `id` and `labels`,
  one feature list per feature (`rgb`, `audio`), each frame a string of uint8 bytes.
- `YT8MAggregatedFeatureReader` reads video-level `tf.train.Example`s (`mean_rgb`, `mean_audio`).

Both turn a file pattern into a `tf.data.Dataset` of batches:
  {"video_ids": [B] string, "video_matrix": [B, T, D] (frame) or [B, D] (video),
   "num_frames": [B] int32, "labels": [B, C] bool multi-hot}
Files are interleaved, records are batched first and parsed a batch at a time
(`tf.io.parse_sequence_example`), and batches are prefetched. Frame features stay uint8 by
default: the model dequantizes them inside its compiled step, which is cheaper than converting
every frame here (`dequantize=True` gives the starter's float32 matrices instead).

Malformed data fails loudly: a frame of the wrong byte size or a label outside [0, num_classes)
raises `tf.errors.InvalidArgumentError` whose message names the video id; a corrupt or truncated
shard raises `tf.errors.DataLossError`, and `find_unreadable_file` names the shard.
"""

import contextlib

import tensorflow as tf
from absl import logging

import utils

AUTOTUNE = tf.data.AUTOTUNE


def assert_feature_size(video_ids, bad_video, sizes_found, message):
    """An in-graph check that no video is flagged in `bad_video`; its failure names the first.

    Args:
      video_ids: `[B]` strings.
      bad_video: `[B]` bool, True for a video whose feature has the wrong size.
      sizes_found: 1-D tensor of the wrong sizes, shown in the message (first three).
      message: text before the video id, e.g. "Wrong size of feature 'rgb' ... in video".

    Returns:
      the assert op, for `tf.control_dependencies`.
    """
    return tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad_video)),
        [message, tf.boolean_mask(video_ids, bad_video)[:1], "sizes found", sizes_found[:3]],
        summarize=5,
    )


class BaseReader:
    """Shared pipeline: files -> interleaved records -> batches -> parse -> prefetch."""

    def __init__(self, num_classes, feature_names, feature_sizes, video_id_key):
        feature_names, feature_sizes = utils.get_list_of_feature_names_and_sizes(
            feature_names, feature_sizes
        )
        if num_classes < 1:
            raise utils.UserInputError(f"--num_classes must be >= 1, got {num_classes}.")
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
        )
        batches = records.map(self.parse_serialized, num_parallel_calls=AUTOTUNE)
        return batches.prefetch(AUTOTUNE), files

    def _context_features(self):
        return {
            self.video_id_key: tf.io.FixedLenFeature([], tf.string),
            "labels": tf.io.VarLenFeature(tf.int64),
        }

    def _labels_to_multi_hot(self, video_ids, sparse_labels):
        """Checks label range and turns sparse labels into a `[B, num_classes]` bool matrix."""
        values = sparse_labels.values
        out_of_range = tf.logical_or(values < 0, values >= self.num_classes)
        bad_rows = tf.boolean_mask(sparse_labels.indices[:, 0], out_of_range)
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(out_of_range)),
            [
                "Label out of range [0, num_classes) in video",
                tf.gather(video_ids, bad_rows[:1]),
                "label",
                tf.boolean_mask(values, out_of_range)[:1],
                "num_classes",
                self.num_classes,
            ],
            summarize=5,
        )
        with tf.control_dependencies([check]):
            dense_shape = tf.stack(
                [tf.shape(video_ids, out_type=tf.int64)[0], tf.constant(self.num_classes, tf.int64)]
            )
            indices = tf.stack([sparse_labels.indices[:, 0], values], axis=1)
            multi_hot = tf.sparse.SparseTensor(
                indices, tf.ones_like(values, dtype=tf.bool), dense_shape
            )
            multi_hot = tf.sparse.reorder(multi_hot)
            return tf.sparse.to_dense(multi_hot, default_value=False, validate_indices=False)


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
        """
        super().__init__(num_classes, feature_names, feature_sizes, video_id_key)
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
        """
        sequence_features = {
            name: tf.io.FixedLenSequenceFeature([], tf.string) for name in self.feature_names
        }
        context, frame_lists, _ = tf.io.parse_sequence_example(
            serialized,
            context_features=self._context_features(),
            sequence_features=sequence_features,
        )
        video_ids = context[self.video_id_key]
        frame_strings = []
        num_frames = None
        for name, size in zip(self.feature_names, self.feature_sizes, strict=True):
            frames = frame_lists[name][:, : self.max_frames]  # [B, T] strings, "" as padding
            frame_bytes = tf.strings.length(frames)
            # A present frame (non-empty string) must hold exactly `size` bytes.
            wrong_size = tf.logical_and(frame_bytes > 0, tf.not_equal(frame_bytes, size))
            check = assert_feature_size(
                video_ids,
                tf.reduce_any(wrong_size, axis=1),
                tf.boolean_mask(frame_bytes, wrong_size),
                f"Wrong size of feature '{name}' (expected {size} bytes per frame) in video",
            )
            with tf.control_dependencies([check]):
                frame_strings.append(tf.identity(frames))
            feature_frames = tf.reduce_sum(tf.cast(frame_bytes > 0, tf.int32), axis=1)
            # Features of unequal length: keep only the frames every feature has.
            num_frames = (
                feature_frames if num_frames is None else tf.minimum(num_frames, feature_frames)
            )
        num_input_frames = tf.shape(frame_strings[0])[1]
        frame_indices, selected_num_frames = select_frame_indices(
            num_frames,
            num_input_frames,
            self.frame_stride,
            self.frame_sampling,
            video_ids,
            self.sampling_seed,
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
            "labels": self._labels_to_multi_hot(video_ids, context["labels"]),
        }
        if self.keep_all_frames:
            batch["full_video_matrix"] = self._decode(frame_strings, num_frames)
            batch["full_num_frames"] = num_frames
        return batch

    def _decode(self, frame_strings, num_frames):
        """Per-feature `[B, T]` frame strings -> `[B, T, D]` matrix, zero past `num_frames`."""
        matrices = [
            tf.io.decode_raw(strings, tf.uint8, fixed_length=size)
            for strings, size in zip(frame_strings, self.feature_sizes, strict=True)
        ]
        video_matrix = matrices[0] if len(matrices) == 1 else tf.concat(matrices, axis=2)
        valid = tf.sequence_mask(num_frames, maxlen=tf.shape(video_matrix)[1])
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
    ):
        super().__init__(num_classes, feature_names, feature_sizes, video_id_key)

    def parse_serialized(self, serialized):
        """Parses serialized Examples.

        Args:
          serialized: `[B]` string tensor.

        Returns:
          dict with `video_ids [B]`, `video_matrix [B, D]` float32, `num_frames [B]` (all 1),
          `labels [B, C]` bool.
        """
        features = self._context_features()
        for name in self.feature_names:
            features[name] = tf.io.RaggedFeature(tf.float32)
        parsed = tf.io.parse_example(serialized, features)
        video_ids = parsed[self.video_id_key]
        columns = []
        for name, size in zip(self.feature_names, self.feature_sizes, strict=True):
            values = parsed[name]
            lengths = values.row_lengths()
            bad_video = tf.not_equal(lengths, size)
            check = assert_feature_size(
                video_ids,
                bad_video,
                tf.boolean_mask(lengths, bad_video),
                f"Wrong size of feature '{name}' (expected {size} floats) in video",
            )
            with tf.control_dependencies([check]):
                columns.append(values.to_tensor(shape=[None, size]))
        video_matrix = columns[0] if len(columns) == 1 else tf.concat(columns, axis=1)
        return {
            "video_ids": video_ids,
            "video_matrix": video_matrix,
            "num_frames": tf.ones_like(video_ids, dtype=tf.int32)[:],
            "labels": self._labels_to_multi_hot(video_ids, parsed["labels"]),
        }


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
):
    """Files matching `data_pattern` -> batches of `[B]` serialized records, unparsed.

    Arguments as `BaseReader.make_dataset`. Returns (dataset, sorted list of files).
    """
    if batch_size < 1:
        raise utils.UserInputError(f"--batch_size must be >= 1, got {batch_size}.")
    files = utils.glob_data_files(data_pattern, flag_name)
    file_dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        file_dataset = file_dataset.shuffle(len(files), seed=seed)
    records = file_dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=max(1, min(num_readers, len(files))),
        num_parallel_calls=AUTOTUNE,
        deterministic=not shuffle,
    )
    if shuffle:
        records = records.shuffle(shuffle_buffer_size, seed=seed)
    if num_epochs != 1:
        records = records.repeat(num_epochs)
    return records.batch(batch_size, drop_remainder=drop_remainder), files


def reader_from_model_flags(
    model_flags, video_id_key="id", dequantize=False, training=False, keep_all_frames=False
):
    """Builds the reader that a model trained with `model_flags` (model_flags.json) reads with.

    The model's frame selection (`frame_stride`, `frame_sampling`) is part of its flags, so train,
    eval and inference select the same frames. Random sampling draws anew in training and is a
    fixed function of the video id (`frame_sampling_seed`) otherwise.
    """
    options = {"video_id_key": video_id_key}
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
    if "Feature list" in detail and "is required but could not be found" in detail:
        return (
            ". The records lack that frame-level feature list: check --feature_names, or for "
            "video-level records use --frame_features=false --feature_names=mean_rgb,mean_audio"
        )
    if "sizes found 0" in detail:
        return ". The feature is missing from the records: check --feature_names"
    if "Inconsistent max number of elements for feature" in detail or "Key: " in detail:
        return ". Check --video_id_key ('id' in 2018 data, 'video_id' in 2017) and --feature_names"
    return ""


def iterate_batches(dataset, files, max_reported=5):
    """Iterates a reader's dataset, turning data errors into one clear `utils.UserInputError`.

    A corrupt or truncated shard (`DataLossError`) is located and named; a malformed record
    (wrong feature size, label out of range, unparsable) is reported with the video id the
    reader's checks name. Videos with 0 frames are logged as warnings (the models give them a
    finite prediction from no frames).

    Args:
      dataset: from `make_dataset`.
      files: the files it reads (for error messages).
      max_reported: at most this many empty-video ids are logged per batch.

    Yields:
      the dataset's batch dicts.
    """
    iterator = iter(dataset)
    while True:
        with data_errors(files):
            try:
                batch = next(iterator)
            except StopIteration:
                return
        empty = batch["num_frames"].numpy() == 0
        if empty.any():
            ids = [video_id.decode("utf-8", "replace") for video_id in batch["video_ids"].numpy()]
            empty_ids = [
                video_id for video_id, is_empty in zip(ids, empty, strict=True) if is_empty
            ]
            logging.warning(
                "%d video(s) with 0 frames (prediction from no frames): %s",
                len(empty_ids),
                ", ".join(empty_ids[:max_reported]),
            )
        yield batch
