"""Input pipelines: YouTube-8M TFRecord shards (local or gs://) -> batches of tensors.

Two readers, as in the starter, registered by the kind of input they read (`READERS`);
`reader_for(config)` gives the one a model reads with:
- "frame": `YT8MFrameFeatureReader` reads frame-level `tf.train.SequenceExample`s: context `id`
  and `labels`, one feature list per feature (`rgb`, `audio`), each frame a string of uint8
  bytes.
- "video": `YT8MAggregatedFeatureReader` reads video-level `tf.train.Example`s (`mean_rgb`,
  `mean_audio`).

Both turn a file pattern into a `tf.data.Dataset` of batches:
  {"video_ids": [B] string, "video_matrix": [B, T, D] (frame) or [B, D] (video),
   "num_frames": [B] int32, "labels": [B, C] bool multi-hot}
Files are interleaved, records are batched first (record_batches.py) and parsed a batch at
a time (`tf.io.parse_sequence_example`), and batches are prefetched. A model that reads 1 frame
in j, or k frames of each video, gets the frames `frame_selection.py` chooses, and only those
are decoded; records laid out as YouTube-8M writes them are not parsed at all:
`record_slicing.py` cuts the selected frames straight out of the serialized bytes, and a batch
with any other record is parsed. Records of a frame cache (frame_cache.py: `frame_stride` in
their context) already hold only the frames a model with that stride and uniform sampling
reads, and are read as they are; other models (another stride, sampling or a count of frames)
refuse them. Frame features stay uint8 by default: the model dequantizes them inside its
compiled step, which is cheaper than converting every frame here (`dequantize=True` gives the
starter's float32 matrices instead).

Bad data (a frame of the wrong size, a label out of range, a missing feature list, a damaged
shard) is failed on or skipped by `corrupt_record_policy` (corrupt_records.py); iterate a
reader's dataset with `corrupt_records.iterate_batches`.
"""

import tensorflow as tf

import utils
from pipeline import corrupt_records, frame_cache, frame_selection, record_batches, record_slicing
from registry import Registry

AUTOTUNE = tf.data.AUTOTUNE


class BaseReader:
    """Shared pipeline: files -> interleaved records -> batches -> parse -> prefetch."""

    input_kind = None  # the key of a concrete reader in READERS

    def __init__(
        self,
        num_classes,
        feature_names,
        feature_sizes,
        video_id_key,
        corrupt_record_policy,
        check_labels=True,
    ):
        feature_names, feature_sizes = utils.get_list_of_feature_names_and_sizes(
            feature_names, feature_sizes
        )
        if num_classes < 1:
            raise utils.UserInputError(f"--num_classes must be >= 1, got {num_classes}.")
        corrupt_records.check_corrupt_record_policy(corrupt_record_policy)
        self.corrupt_record_policy = corrupt_record_policy
        # What the "skip" policy left out, over all of the reader's datasets.
        self.skipped_records = corrupt_records.SkippedRecords()
        self.num_classes = num_classes
        self.feature_names = feature_names
        self.feature_sizes = feature_sizes
        self.video_id_key = video_id_key
        # False: labels outside [0, num_classes) are left out silently (inference, which does
        # not use them, reads unlabelled and differently labelled data).
        self.check_labels = check_labels

    @property
    def feature_size(self):
        """Width D of the concatenated feature vector."""
        return sum(self.feature_sizes)

    @classmethod
    def from_config(cls, config, video_id_key="id", training=False, **options):
        """The reader of a model's RunConfig (see `reader_for`): its classes and features, and
        what `config_options` takes from it for this kind of input."""
        return cls(
            num_classes=config.num_classes,
            feature_names=config.feature_names,
            feature_sizes=config.feature_sizes,
            video_id_key=video_id_key,
            **cls.config_options(config, training),
            **options,
        )

    @classmethod
    def config_options(cls, config, training):
        """The reader's own arguments taken from the RunConfig (none for video-level input)."""
        return {}

    def parse_serialized(self, serialized, draw_seed=None):
        """Parses a `[B]` string tensor of serialized records into a batch dict. `draw_seed`
        (a scalar string tensor) replaces the reader's own seed for the frames it draws (a
        training epoch's; see frame_selection.select_frame_indices)."""
        raise NotImplementedError

    def make_dataset(self, data_pattern, batch_size, **batching):
        """The batched `tf.data.Dataset` of batch dicts for all files matching `data_pattern`.

        Args:
          data_pattern: comma-separated glob patterns, local paths or gs:// URLs.
          batch_size: videos per batch.
          **batching: `record_batches.make_record_batches`'s options (num_epochs, shuffle,
            shuffle_buffer_size, num_readers, drop_remainder, seed, flag_name, record_shard).
            Without `shuffle` the same files give the same batches in the same order.

        Returns:
          (dataset, files): the dataset of batch dicts and the sorted list of files it reads.
          What the "skip" policy leaves out is tallied in `skipped_records`.

        Raises:
          utils.UserInputError: when no file matches.
        """
        records, files = record_batches.make_record_batches(
            data_pattern,
            batch_size,
            corrupt_record_policy=self.corrupt_record_policy,
            skipped=self.skipped_records,
            **batching,
        )
        self.check_files(files, batching.get("flag_name", "data pattern"))
        batches = records.map(self.parse_serialized, num_parallel_calls=AUTOTUNE)
        return batches.prefetch(AUTOTUNE), files

    def check_files(self, files, flag_name):
        """Raises `utils.UserInputError` for files this reader cannot read, before reading them
        (the frame reader refuses a frame cache of another stride)."""

    def _context_features(self):
        return {
            self.video_id_key: tf.io.FixedLenFeature([], tf.string),
            "labels": tf.io.VarLenFeature(tf.int64),
        }

    def _labels_to_multi_hot(self, video_ids, sparse_labels):
        """Sparse labels -> (`[B, num_classes]` bool multi-hot, the out-of-range problem).

        Labels outside [0, num_classes) are left out of the matrix; the problem (see
        `corrupt_records.apply_policy`) flags their videos.
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
                corrupt_records.LABEL_OUT_OF_RANGE,
                tf.gather(video_ids, tf.boolean_mask(rows, out_of_range)[:1]),
                "label",
                tf.boolean_mask(values, out_of_range)[:1],
                "largest label",
                tf.reduce_max(tf.concat([values, [-1]], axis=0)),
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
        if not self.check_labels:
            problem = (tf.zeros_like(bad_video), problem[1], problem[2])
        dense = tf.sparse.to_dense(multi_hot, default_value=False, validate_indices=False)
        # A static class count: a replica left without videos at the end of the data gets an
        # empty batch of this shape.
        return tf.ensure_shape(dense, [None, self.num_classes]), problem


class YT8MFrameFeatureReader(BaseReader):
    """Reads frame-level SequenceExamples into `[B, T, D]` matrices (T <= max_frames).

    With `frame_stride` j > 1 only 1 frame in j is selected, with `frames_per_video` k only k
    frames of each video (`frame_selection.select_frame_indices`), and only the selected frames
    are decoded: the cost of what follows the parse falls with the frames selected.
    """

    input_kind = utils.FRAME_INPUT

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
        random_frame_offset=False,
        frames_per_video=0,
        keep_all_frames=False,
        corrupt_record_policy="fail",
        slice_records=True,
        check_labels=True,
    ):
        """Args:
        num_classes: size C of the label space.
        feature_sizes: bytes per frame of each feature list.
        feature_names: the feature lists to read, concatenated in this order.
        max_frames: frames beyond this are dropped (before selection).
        video_id_key: context key of the video id ("id" in 2018, "video_id" in 2017).
        dequantize: yield float32 dequantized features instead of uint8.
        frame_stride: select 1 frame in this many (j).
        frame_sampling: one of `frame_selection.FRAME_SAMPLINGS`: "uniform" (frames 0, j, 2j,
          ...), "random" (as many, at random), "first", "middle", "last" or
          "first_middle_last" (as many consecutive frames at those places of the video).
        sampling_seed: for "random": None draws anew each time (training); an int makes the
          draw a fixed function of the video id (eval, inference).
        random_frame_offset: uniform sampling from a random offset per video, drawn anew each
          time (training with --random_frame_offset; `frame_selection.select_frame_indices`).
        frames_per_video: select k frames of each video (min(k, N) of a video of N frames)
          instead of 1 in `frame_stride`; 0: use the stride.
        keep_all_frames: also yield every frame (`full_video_matrix`, `full_num_frames`), for a
          teacher that is distilled into a model reading the selected frames.
        corrupt_record_policy: "fail" or "skip" (see corrupt_records.py).
        slice_records: cut the selected frames straight out of records laid out as YouTube-8M
          writes them (`parse_serialized`); False always uses the protobuf parser.
        check_labels: False leaves labels outside [0, num_classes) out silently (inference).
        """
        super().__init__(
            num_classes,
            feature_names,
            feature_sizes,
            video_id_key,
            corrupt_record_policy,
            check_labels,
        )
        if max_frames < 1:
            raise utils.UserInputError(f"--max_frames must be >= 1, got {max_frames}.")
        frame_selection.check_frame_selection(
            frame_stride, frame_sampling, frames_per_video, max_frames
        )
        frame_selection.check_random_frame_offset(
            random_frame_offset, frame_stride, frame_sampling, frames_per_video, max_frames
        )
        self.max_frames = max_frames
        self.dequantize = dequantize
        self.frame_stride = frame_stride
        self.frame_sampling = frame_sampling
        self.sampling_seed = sampling_seed
        self.random_frame_offset = random_frame_offset
        self.frames_per_video = frames_per_video
        self.keep_all_frames = keep_all_frames
        self.slice_records = slice_records

    @classmethod
    def config_options(cls, config, training):
        """The frame selection of the model's RunConfig; random sampling draws anew in
        training and is a fixed function of the video id otherwise; a random offset shifts
        uniform sampling in training only."""
        return {
            "max_frames": config.max_frames,
            "frame_stride": config.frame_stride,
            "frame_sampling": config.frame_sampling,
            "sampling_seed": None if training else config.frame_sampling_seed,
            "random_frame_offset": config.random_frame_offset and training,
            "frames_per_video": config.frames_per_video,
        }

    def _context_features(self):
        """The context keys read: the video id, the labels, and the stride of a frame cache's
        records (1 for full records)."""
        features = super()._context_features()
        features[frame_cache.CACHE_STRIDE_KEY] = tf.io.FixedLenFeature([], tf.int64, 1)
        return features

    @property
    def selects_frames(self):
        """True when the reader may pass on fewer frames than the video has (a count of at
        least `max_frames` takes every frame read, whatever the sampling)."""
        return self.frame_stride > 1 or 0 < self.frames_per_video < self.max_frames

    def parse_serialized(self, serialized, draw_seed=None):
        """Parses serialized SequenceExamples.

        Args:
          serialized: `[B]` string tensor.
          draw_seed: None, or a scalar string tensor that seeds the frames drawn (random
            sampling, random offsets) in place of the reader's seed: a training epoch's.

        Returns:
          dict with `video_ids [B]`, `video_matrix [B, T', D]` (uint8, or float32 when
          `dequantize`), `num_frames [B]` int32 (selected frames; 0 for an empty video),
          `frame_indices [B, T']` int32 (each selected frame's index in the video) and
          `labels [B, C]` bool. T is the longest video of the batch capped at `max_frames` and
          T' = ceil(T / frame_stride), or min(frames_per_video, T); shorter videos are
          zero-padded. With `keep_all_frames`,
          also `full_video_matrix [B, T, D]` and `full_num_frames [B]`.

        Records laid out as YouTube-8M writes them (every frame of a feature list the same
        size) have only their selected frames cut out of the serialized bytes, each checked for
        its 9-byte framing (`parse_by_slicing`); a batch with any other record is parsed by
        `tf.io.parse_sequence_example`, which gives the same tensors.
        """
        if self.keep_all_frames or not self.slice_records or not self.selects_frames:
            return self.parse_with_parser(serialized, draw_seed)
        sliced, sliced_ok = self.parse_by_slicing(serialized, draw_seed)
        return tf.cond(
            sliced_ok, lambda: sliced, lambda: self.parse_with_parser(serialized, draw_seed)
        )

    def _select_frames(self, num_frames, num_input_frames, video_ids, record_strides, draw_seed):
        """`frame_selection.select_frame_positions` with this reader's selection and seed (or
        `draw_seed`): (positions in the records, frame_indices in the videos,
        selected_num_frames)."""
        return frame_selection.select_frame_positions(
            num_frames,
            num_input_frames,
            self.frame_stride,
            self.frame_sampling,
            video_ids,
            self.sampling_seed if draw_seed is None else draw_seed,
            cached=tf.not_equal(record_strides, 1),
            max_frames=self.max_frames,
            random_offset=self.random_frame_offset,
            frames_per_video=self.frames_per_video,
        )

    def _cache_problem(self, video_ids, record_strides):
        """`frame_cache.cache_stride_problem` for this reader's selection and frames."""
        return frame_cache.cache_stride_problem(
            video_ids,
            record_strides,
            self.frame_stride,
            self.frame_sampling,
            self.keep_all_frames,
            self.random_frame_offset,
            self.frames_per_video,
        )

    def check_files(self, files, flag_name):
        """Refuses a frame cache this model cannot read, naming the file and both strides,
        before anything is read (`frame_cache.check_cache_stride`)."""
        frame_cache.check_cache_stride(
            files,
            self.frame_stride,
            self.frame_sampling,
            self.keep_all_frames,
            flag_name,
            self.random_frame_offset,
            self.frames_per_video,
        )

    def parse_by_slicing(self, serialized, draw_seed=None):
        """`parse_serialized`'s fast path: (batch, True when every record fitted it).

        The frames are located and cut out by `record_slicing`; only the context is parsed.
        """
        layout = record_slicing.locate_frames(
            serialized, self.feature_names, self.feature_sizes, self.max_frames
        )
        context_features = self._context_features()
        context_features[self.video_id_key] = tf.io.FixedLenFeature([], tf.string, "")
        context = tf.io.parse_example(layout["context"], context_features)
        video_ids = context[self.video_id_key]
        record_strides = context[frame_cache.CACHE_STRIDE_KEY]
        positions, frame_indices, selected_num_frames = self._select_frames(
            layout["num_frames"], layout["num_input_frames"], video_ids, record_strides, draw_seed
        )
        matrices, framed = record_slicing.cut_frames(
            serialized, layout["starts"], self.feature_sizes, positions, selected_num_frames
        )
        # Checked in every policy and only for the records that fit this path: a record
        # parsed instead is checked there.
        video_ids = corrupt_records.apply_policy(
            {"video_ids": video_ids},
            [self._cache_problem(video_ids, tf.where(layout["ok"], record_strides, 1))],
            "fail",
        )["video_ids"]
        labels, label_problem = self._labels_to_multi_hot(video_ids, context["labels"])
        batch = corrupt_records.apply_policy(
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
            self.corrupt_record_policy,
        )
        matrices = [batch.pop(f"frames/{name}") for name in self.feature_names]
        # The cuts are zero past each video's frames.
        batch["video_matrix"] = self._assemble(matrices, batch["num_frames"], zero_padded=True)
        return batch, tf.reduce_all(layout["ok"] & framed)

    def parse_with_parser(self, serialized, draw_seed=None):
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
        record_strides = context[frame_cache.CACHE_STRIDE_KEY]
        video_ids = corrupt_records.apply_policy(
            {"video_ids": context[self.video_id_key]},
            [self._cache_problem(context[self.video_id_key], record_strides)],
            "fail",
        )["video_ids"]
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
            corrupt_records.feature_list_problems(
                serialized, video_ids, num_frames, self.feature_names
            )
            + problems
        )
        labels, label_problem = self._labels_to_multi_hot(video_ids, context["labels"])
        problems.append(label_problem)
        # Bad videos are dropped (skip) or stop the batch (fail) before anything is decoded.
        checked = corrupt_records.apply_policy(
            {
                "video_ids": video_ids,
                "labels": labels,
                "num_frames": num_frames,
                "record_strides": record_strides,
                **{
                    f"frames/{name}": frames
                    for name, frames in zip(self.feature_names, frame_strings, strict=True)
                },
            },
            problems,
            self.corrupt_record_policy,
        )
        video_ids, num_frames = checked["video_ids"], checked["num_frames"]
        frame_strings = [checked[f"frames/{name}"] for name in self.feature_names]
        num_input_frames = tf.shape(frame_strings[0])[1]
        positions, frame_indices, selected_num_frames = self._select_frames(
            num_frames, num_input_frames, video_ids, checked.pop("record_strides"), draw_seed
        )
        if self.selects_frames:
            selected = [tf.gather(strings, positions, batch_dims=1) for strings in frame_strings]
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

    input_kind = utils.VIDEO_INPUT

    def __init__(
        self,
        num_classes=3862,
        feature_sizes=(1024, 128),
        feature_names=("mean_rgb", "mean_audio"),
        video_id_key="id",
        corrupt_record_policy="fail",
        check_labels=True,
    ):
        super().__init__(
            num_classes,
            feature_names,
            feature_sizes,
            video_id_key,
            corrupt_record_policy,
            check_labels,
        )

    def parse_serialized(self, serialized, draw_seed=None):
        """Parses serialized Examples (`draw_seed` is unused: no frame is drawn).

        Args:
          serialized: `[B]` string tensor.

        Returns:
          dict with `video_ids [B]`, `video_matrix [B, D]` float32, `num_frames [B]` (all 1),
          `labels [B, C]` bool (B: the videos kept; see `corrupt_records.apply_policy`).
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
        return corrupt_records.apply_policy(
            {
                "video_ids": video_ids,
                "video_matrix": video_matrix,
                "num_frames": tf.ones_like(video_ids, dtype=tf.int32),
                "labels": labels,
            },
            problems,
            self.corrupt_record_policy,
        )


READERS = Registry(
    "--frame_features",
    {
        utils.FRAME_INPUT: YT8MFrameFeatureReader,
        utils.VIDEO_INPUT: YT8MAggregatedFeatureReader,
    },
)


def reader_for(config, video_id_key="id", training=False, **options):
    """The reader a model of `config` (a config.RunConfig) reads with: the format of its input
    kind, with its classes, features and frame selection.

    The frame selection (`frame_stride` or `frames_per_video`, `frame_sampling`) is part of the
    model's config, so train, eval and inference select the same frames. Random sampling draws
    anew in training and is a fixed function of the video id (`frame_sampling_seed`) otherwise.

    Args:
      config: the model's RunConfig.
      video_id_key: context key of the video id.
      training: the reader of a training pipeline.
      **options: the reader's other arguments (`corrupt_record_policy`, `check_labels`; for
        frames also `dequantize`, `keep_all_frames`, `slice_records`).
    """
    kind = utils.FRAME_INPUT if config.frame_features else utils.VIDEO_INPUT
    return READERS.get(kind).from_config(config, video_id_key, training, **options)
