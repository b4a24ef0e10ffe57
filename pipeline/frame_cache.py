"""Frame caches: YouTube-8M frame-level records that keep only the frames a student reads.

    files = frame_cache.write_frame_cache("data/train*.tfrecord", "cache/", frame_stride=10)

A model with `--frame_stride=j` and uniform selection reads frames 0, j, 2j, ... of each video
(frame_selection.py). A cache written for j holds exactly those frames, so every later epoch,
evaluation and inference of that model reads about 1/j of the bytes. Its records stay
YouTube-8M frame-level `tf.train.SequenceExample`s (any YouTube-8M tool reads them): the context
is the original one plus `frame_stride` (j) and `original_num_frames` (the frames the video had),
and each feature list holds the selected frames in order.

The readers recognise a cache by `frame_stride` in a record's context: a model reading 1 frame
in j uniformly from frame 0 reads a cache written for j as it is (no second selection); any
other model refuses it (`check_cache_stride`): a cache cannot give a teacher every frame,
another stride's frames, a random draw, frames at other places of the video (first, middle,
last, first_middle_last) or k frames spread over each whole video (`--frames_per_video`).
"""

import os
import uuid

import tensorflow as tf
from absl import logging

import utils
from pipeline import corrupt_records, frame_selection

CACHE_STRIDE_KEY = "frame_stride"  # context key: the stride a cache was written for
ORIGINAL_FRAMES_KEY = "original_num_frames"  # context key: the frames of the original video


def record_cache_stride(serialized):
    """The `frame_stride` a serialized SequenceExample was cached for; 1 for a full record, and
    None when it is not a SequenceExample."""
    try:
        example = tf.train.SequenceExample.FromString(serialized)
    except Exception:  # noqa: BLE001 (protobuf's DecodeError differs by implementation)
        return None
    feature = example.context.feature.get(CACHE_STRIDE_KEY)
    if feature is None or not feature.int64_list.value:
        return 1
    return int(feature.int64_list.value[0])


def first_record_cache_stride(files):
    """(path, stride) of the first readable record of `files`: the stride its cache was written
    for (1 for full records), or (None, None) when no record could be read."""
    for path in files:
        try:
            for record in tf.data.TFRecordDataset(path).take(1):
                stride = record_cache_stride(record.numpy())
                if stride is not None:
                    return path, stride
        except tf.errors.OpError:
            continue  # the pipeline's own checks name a damaged shard
    return None, None


def stride_mismatch(
    cache_stride,
    frame_stride,
    frame_sampling,
    keep_all_frames,
    random_frame_offset=False,
    frames_per_video=0,
):
    """Why a model cannot read records cached for `cache_stride`, or "" when it can.

    Full records (`cache_stride` 1) serve every model. A cache written for j serves only a model
    that reads 1 frame in j, uniformly from frame 0, and only its selected frames.
    """
    if cache_stride == 1:
        return ""
    written = f"a frame cache written for --frame_stride={cache_stride}"
    if keep_all_frames or (frame_stride == 1 and not frames_per_video):
        return (
            f"{written}, but the model reads every frame (--frame_stride=1; a teacher in "
            "distillation too): give it the full records"
        )
    if frames_per_video:
        return (
            f"{written}, which holds frames 0, j, 2j, ... only, but --frames_per_video="
            f"{frames_per_video} (--frame_sampling={frame_sampling}) reads {frames_per_video} "
            f"frames of each video, not 1 in {cache_stride}: give the full records (a cache "
            "serves uniform sampling at a --frame_stride only)"
        )
    if frame_stride != cache_stride:
        return (
            f"{written}, but the model reads --frame_stride={frame_stride}: give the full "
            f"records or write a cache for {frame_stride} with prepare_frames.py"
        )
    if frame_sampling == "random":
        return (
            f"{written}, but --frame_sampling={frame_sampling} draws frames the cache does not "
            "hold: give the full records"
        )
    if frame_sampling != "uniform":
        return (
            f"{written}, which holds frames 0, j, 2j, ... only, but --frame_sampling="
            f"{frame_sampling} reads {frame_selection.FIXED_PLACES[frame_sampling]}: give the "
            "full records"
        )
    if random_frame_offset:
        return (
            f"{written}, which holds frames 0, j, 2j, ... only, but --random_frame_offset (on "
            "in a student's default --distill_recipe=serial) trains on other offsets too: give "
            "the full records, or pass --norandom_frame_offset"
        )
    return ""


def cache_stride_problem(
    video_ids,
    record_strides,
    frame_stride,
    frame_sampling,
    keep_all_frames,
    random_frame_offset=False,
    frames_per_video=0,
):
    """The per-record problem (for `corrupt_records.apply_policy`) of records a model cannot
    read: full records (stride 1) serve every model, a cache only a model for which
    `stride_mismatch` finds nothing wrong with its own stride.

    Args:
      video_ids: `[B]` strings.
      record_strides: `[B]` int64, each record's `frame_stride` (1 for a full record).
      frame_stride, frame_sampling, keep_all_frames, random_frame_offset, frames_per_video: the
        reading model's.

    Returns:
      (unreadable `[B]` bool, the failure's message data, the reason).
    """
    readable = tf.equal(record_strides, 1)
    if frame_stride > 1 and not stride_mismatch(
        frame_stride,
        frame_stride,
        frame_sampling,
        keep_all_frames,
        random_frame_offset,
        frames_per_video,
    ):
        readable = readable | tf.equal(record_strides, frame_stride)
    unreadable = tf.logical_not(readable)
    return (
        unreadable,
        [
            "Video",
            tf.boolean_mask(video_ids, unreadable)[:1],
            "is in a frame cache written for --frame_stride=",
            tf.boolean_mask(record_strides, unreadable)[:1],
            "but the model reads "
            + frame_selection.describe_frame_selection(
                frame_stride, frame_sampling, frames_per_video
            )
            + f"{' --random_frame_offset' if random_frame_offset else ''}"
            f"{', with every frame for its teacher' if keep_all_frames else ''}: "
            "give the full records, or a cache written for the model's stride "
            "(prepare_frames.py; uniform sampling at a stride only)",
        ],
        "frame cache of another stride",
    )


def check_cache_stride(
    files,
    frame_stride,
    frame_sampling,
    keep_all_frames,
    flag_name,
    random_frame_offset=False,
    frames_per_video=0,
):
    """Refuses a cache the model cannot read, naming the file and both strides, before any
    training or evaluation starts. Looks at the first record only; the reader checks every
    record as it reads.

    Raises:
      utils.UserInputError: naming the flag, the file and the strides.
    """
    path, cache_stride = first_record_cache_stride(files)
    if cache_stride is None:
        return
    reason = stride_mismatch(
        cache_stride,
        frame_stride,
        frame_sampling,
        keep_all_frames,
        random_frame_offset,
        frames_per_video,
    )
    if reason:
        raise utils.UserInputError(f"{flag_name}: {path} is {reason}.")


def cache_shard_paths(files, output_dir, num_shards, frame_stride):
    """Output paths: one per input file under the input's name (when `num_shards` is None and the
    names are distinct), else `frames-stride{j}-{k:05d}-of-{n:05d}.tfrecord`."""
    names = [os.path.basename(path) for path in files]
    if num_shards is None and len(set(names)) == len(names):
        return [os.path.join(output_dir, name) for name in names]
    num_shards = num_shards or len(files)
    return [
        os.path.join(
            output_dir, f"frames-stride{frame_stride}-{shard:05d}-of-{num_shards:05d}.tfrecord"
        )
        for shard in range(num_shards)
    ]


def cache_record(serialized, frame_stride, feature_names, video_id_key):
    """One full record -> its cached record: frames 0, j, 2j, ... below the frames every feature
    list in `feature_names` has, and the context plus the stride and the original frame count.

    Returns:
      (serialized cached record, the video id, None), or (None, video id or None, the problem)
      for a record that cannot be cached.
    """
    try:
        example = tf.train.SequenceExample.FromString(serialized)
    except Exception:  # noqa: BLE001 (protobuf's DecodeError differs by implementation)
        return None, None, "not a tf.train.SequenceExample"
    id_feature = example.context.feature.get(video_id_key)
    video_id = None
    if id_feature is not None and id_feature.bytes_list.value:
        video_id = id_feature.bytes_list.value[0].decode("utf-8", "replace")
    if CACHE_STRIDE_KEY in example.context.feature:
        return None, video_id, "already a frame cache"
    lists = example.feature_lists.feature_list
    missing = [name for name in feature_names if name not in lists]
    if missing:
        return None, video_id, f"no feature list '{missing[0]}'"
    num_frames = min(len(lists[name].feature) for name in feature_names)
    cached = tf.train.SequenceExample()
    cached.context.CopyFrom(example.context)
    cached.context.feature[CACHE_STRIDE_KEY].int64_list.value.append(frame_stride)
    cached.context.feature[ORIGINAL_FRAMES_KEY].int64_list.value.append(num_frames)
    for name in feature_names:
        frames = lists[name].feature
        cached_frames = cached.feature_lists.feature_list[name].feature
        for index in range(0, num_frames, frame_stride):
            cached_frames.add().CopyFrom(frames[index])
    return cached.SerializeToString(deterministic=True), video_id, None


def write_frame_cache(
    data_pattern,
    output_dir,
    frame_stride,
    num_shards=None,
    corrupt_record_policy="fail",
    num_readers=4,
    video_id_key="id",
    feature_names=("rgb", "audio"),
    flag_name="--input_data_pattern",
):
    """Writes the frame cache of the files matching `data_pattern` for a model with
    `--frame_stride=frame_stride` (uniform selection).

    Every input file's records are read in order (`num_readers` files at a time) and each video
    goes to one output shard: by default one per input file, under the input's name, so the
    cache's pattern is the input's with another directory; with `num_shards`, videos are dealt
    round-robin into that many `frames-stride{j}-*` shards. Shards are written under temporary
    names and renamed once all are complete, so a cache that exists is whole. `output_dir` may be
    gs://.

    Args:
      data_pattern: comma-separated glob patterns of full frame-level records.
      output_dir: where the cache goes (created if missing).
      frame_stride: j >= 2, the stride of the model that will read the cache.
      num_shards: output shards; None: one per input file.
      corrupt_record_policy: "fail" stops at the first damaged shard or malformed record,
        naming it; "skip" leaves them out and logs them.
      num_readers: input files read in parallel.
      video_id_key: context key of the video id.
      feature_names: the feature lists to keep (the model's `--feature_names`).
      flag_name: how errors name `data_pattern`.

    Returns:
      (the written paths, a `corrupt_records.SkippedRecords` of what "skip" left out, the number
      of videos written).

    Raises:
      utils.UserInputError: for a bad argument, no matching file, a damaged shard or a record
        that cannot be cached (with "fail"), or when no video could be cached.
    """
    if frame_stride < 2:
        raise utils.UserInputError(
            f"--frame_stride must be >= 2 for a frame cache, got {frame_stride}: a model reading "
            "every frame reads the full records."
        )
    if num_shards is not None and num_shards < 1:
        raise utils.UserInputError(f"--num_shards must be >= 1, got {num_shards}.")
    if num_readers < 1:
        raise utils.UserInputError(f"--num_readers must be >= 1, got {num_readers}.")
    corrupt_records.check_corrupt_record_policy(corrupt_record_policy)
    if isinstance(feature_names, str):
        feature_names = [name.strip() for name in feature_names.split(",") if name.strip()]
    files = utils.glob_data_files(data_pattern, flag_name)
    utils.check_writable_dir(output_dir, "--output_dir")
    paths = cache_shard_paths(files, output_dir, num_shards, frame_stride)
    one_per_file = num_shards is None and len(paths) == len(files)
    skipped = corrupt_records.SkippedRecords()
    temporary = {path: f"{path}.tmp-{uuid.uuid4().hex}" for path in paths}
    writers = {}
    written = 0
    try:
        writers = {path: tf.io.TFRecordWriter(temporary[path]) for path in paths}
        for file_index, serialized in _tagged_records(
            files, corrupt_record_policy, skipped, num_readers
        ):
            cached, video_id, problem = cache_record(
                serialized, frame_stride, feature_names, video_id_key
            )
            source = files[file_index]
            if problem is not None:
                described = f"video {video_id}" if video_id else "a record"
                if corrupt_record_policy == "fail":
                    raise utils.UserInputError(f"Cannot cache {described} in {source}: {problem}.")
                skipped.add_malformed([video_id or f"a record of {source}"], [problem])
                continue
            shard = file_index if one_per_file else written % len(paths)
            writers[paths[shard]].write(cached)
            written += 1
        for writer in writers.values():
            writer.close()
        if written == 0:
            left_out = f" {skipped.describe()}" if skipped.count else ""
            raise utils.UserInputError(
                f"{flag_name}={data_pattern} gave no video to cache.{left_out}"
            )
        for path in paths:
            tf.io.gfile.rename(temporary[path], path, overwrite=True)
    finally:
        for writer in writers.values():
            writer.close()
        for path in temporary.values():
            if tf.io.gfile.exists(path):
                tf.io.gfile.remove(path)
    if skipped.count:
        logging.warning("Left out of the cache: %s", skipped.describe())
    return paths, skipped, written


def _tagged_records(files, corrupt_record_policy, skipped, num_readers):
    """Yields (index of the file in `files`, serialized record) for every record, files read
    `num_readers` at a time, each file's records in order. "skip" reads each shard up to its
    first damaged record; "fail" names the damaged shard."""
    indices = tf.data.Dataset.range(len(files))
    paths = tf.constant(files)
    sizes = tf.constant([tf.io.gfile.stat(path).length for path in files], tf.int64)

    def read_file(index):
        if corrupt_record_policy == "skip":
            records = corrupt_records.read_shard_skipping_damage(
                paths[index], sizes[index], skipped
            )
        else:
            records = tf.data.TFRecordDataset(paths[index])
        return records.map(lambda record: (index, record))

    records = indices.interleave(
        read_file,
        cycle_length=max(1, min(num_readers, len(files))),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    iterator = iter(records.batch(256).prefetch(2))
    while True:
        with corrupt_records.data_errors(files):
            try:
                file_indices, batch = next(iterator)
            except StopIteration:
                return
        yield from zip(file_indices.numpy().tolist(), batch.numpy().tolist(), strict=True)
