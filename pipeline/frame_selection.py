"""Which frames a model that reads 1 frame in j sees: the choice of frame indices, nothing else.

The reader (readers.py) applies the choice: it decodes only the frames chosen here.
"""

import tensorflow as tf

import utils

FRAME_SAMPLINGS = ("uniform", "random")


def check_frame_selection(frame_stride, frame_sampling):
    """Raises `utils.UserInputError` for a stride below 1 or an unknown sampling."""
    if frame_stride < 1:
        raise utils.UserInputError(f"--frame_stride must be >= 1, got {frame_stride}.")
    if frame_sampling not in FRAME_SAMPLINGS:
        raise utils.UserInputError(
            f"--frame_sampling={frame_sampling}: choose one of {', '.join(FRAME_SAMPLINGS)}."
        )


def check_random_frame_offset(random_frame_offset, frame_stride, frame_sampling):
    """Raises `utils.UserInputError` when --random_frame_offset has no uniform stride to shift."""
    if not random_frame_offset:
        return
    if frame_sampling != "uniform":
        raise utils.UserInputError(
            f"--random_frame_offset shifts uniform sampling; --frame_sampling={frame_sampling} "
            "already draws its frames at random."
        )
    if frame_stride == 1:
        raise utils.UserInputError(
            "--random_frame_offset needs --frame_stride > 1: a model that reads every frame "
            "has no offset to draw."
        )


def hashed_draws(video_ids, names, seed):
    """Uniform draws in [0, 1) that are a fixed function of (video id, name, seed): a hash.

    Args:
      video_ids: `[B, 1]` strings.
      names: `[1, N]` strings (frame indices, or a word naming the draw).
      seed: an int, or a scalar string tensor (training: the run's seed and the epoch).

    Returns:
      `[B, N]` float32.
    """
    shape = tf.stack([tf.shape(video_ids)[0], tf.shape(names)[1]])
    seed_text = seed if tf.is_tensor(seed) else tf.constant(str(seed))
    keys = tf.strings.join(
        [
            tf.broadcast_to(video_ids, shape),
            tf.broadcast_to(names, shape),
            tf.fill(shape, seed_text),
        ],
        separator=":",
    )
    buckets = tf.strings.to_hash_bucket_fast(keys, 1 << 24)
    return tf.cast(buckets, tf.float32) / float(1 << 24)


def select_frame_indices(
    num_frames,
    num_input_frames,
    frame_stride,
    frame_sampling,
    video_ids,
    sampling_seed=None,
    random_offset=False,
):
    """Chooses which frames a model that reads 1 in `frame_stride` frames sees.

    Uniform: frames 0, j, 2j, ... below the video's frame count (j = `frame_stride`), so a video
    of N frames gives ceil(N / j) frames and a video shorter than j gives its first frame.
    With `random_offset` (training only) each video starts at its own offset o, drawn
    uniformly from [0, min(j, N)): frames o, o + j, o + 2j, ... below N, i.e. ceil((N - o) / j)
    frames, the same spacing at another phase.
    Random: the same number of frames, drawn without replacement from the video's N frames and
    kept in time order.
    With `sampling_seed` None the draws are new at every call; with a seed they are a hash of
    (video id, frame index or "offset", seed), so a video gets the same frames whatever batch it
    is in: eval and inference use `frame_sampling_seed`; training a string of its seed and the
    epoch (new frames every epoch, the same ones when a resumed run reads that epoch again).

    Args:
      num_frames: `[B]` int32, frames of each video.
      num_input_frames: scalar int32 T, the padded length of the batch.
      frame_stride: j >= 1.
      frame_sampling: "uniform" or "random".
      video_ids: `[B]` strings (for the seeded random draw).
      sampling_seed: None, an int, or a scalar string tensor.
      random_offset: uniform sampling from a random offset (see above).

    Returns:
      (frame_indices `[B, T']` int32 with T' = ceil(T / j), the original index of each selected
      frame, 0 past the selected count; selected_num_frames `[B]` int32 = ceil(N / j), or
      ceil((N - o) / j) with `random_offset`).
    """
    selected_num_frames = (num_frames + frame_stride - 1) // frame_stride
    num_selected = (num_input_frames + frame_stride - 1) // frame_stride
    batch_size = tf.shape(num_frames)[0]
    if frame_sampling == "uniform":
        indices = tf.range(num_selected, dtype=tf.int32) * frame_stride
        if not random_offset:
            return tf.tile(indices[tf.newaxis, :], [batch_size, 1]), selected_num_frames
        offset_choices = tf.minimum(frame_stride, tf.maximum(num_frames, 1))
        if sampling_seed is None:
            draws = tf.random.uniform([batch_size], dtype=tf.float32)
        else:
            draws = hashed_draws(video_ids[:, tf.newaxis], tf.constant([["offset"]]), sampling_seed)
            draws = draws[:, 0]
        offsets = tf.minimum(
            tf.cast(draws * tf.cast(offset_choices, tf.float32), tf.int32), offset_choices - 1
        )
        # o < N for a video with frames, o = 0 for an empty one: the count is never negative.
        selected_num_frames = (num_frames - offsets + frame_stride - 1) // frame_stride
        shifted = offsets[:, tf.newaxis] + indices[tf.newaxis, :]
        valid = tf.range(num_selected)[tf.newaxis, :] < selected_num_frames[:, tf.newaxis]
        return tf.where(valid, shifted, 0), selected_num_frames
    frame_range = tf.range(num_input_frames)
    if sampling_seed is None:
        scores = tf.random.uniform([batch_size, num_input_frames], dtype=tf.float32)
    else:
        frame_names = tf.strings.as_string(frame_range)[tf.newaxis, :]
        scores = hashed_draws(video_ids[:, tf.newaxis], frame_names, sampling_seed)
    present = frame_range[tf.newaxis, :] < num_frames[:, tf.newaxis]
    scores = tf.where(present, scores, -1.0)  # absent frames rank last
    _, chosen = tf.math.top_k(scores, k=num_selected, sorted=True)
    chosen_valid = tf.range(num_selected)[tf.newaxis, :] < selected_num_frames[:, tf.newaxis]
    chosen = tf.sort(tf.where(chosen_valid, chosen, num_input_frames), axis=1)
    return tf.where(chosen_valid, chosen, 0), selected_num_frames


def select_frame_positions(
    num_frames,
    num_input_frames,
    frame_stride,
    frame_sampling,
    video_ids,
    sampling_seed=None,
    cached=None,
    max_frames=None,
    random_offset=False,
):
    """`select_frame_indices` for a batch that may hold records of a frame cache (frame_cache.py).

    A full record's selected frames sit at their video indices; a cached record already holds
    only frames 0, j, 2j, ... of its video, so its selected frames are its first
    ceil(max_frames / j) frames, in order. Both give the same `frame_indices`.

    Args:
      num_frames: `[B]` int32, frames in each record (at most `max_frames`).
      num_input_frames: scalar int32 T, the padded length of the batch's records.
      frame_stride, frame_sampling, video_ids, sampling_seed, random_offset: as
        `select_frame_indices`.
      cached: `[B]` bool, records of a cache written for `frame_stride` (uniform sampling only);
        None: none is.
      max_frames: the frames a full record is read to (for a cached record's count).

    Returns:
      (positions `[B, T']` int32, each selected frame's index in its record; frame_indices
      `[B, T']` int32, its index in the video; selected_num_frames `[B]` int32), 0 past the
      selected count.
    """
    if cached is None or frame_sampling != "uniform" or frame_stride == 1 or random_offset:
        # A shifted selection never reads a cache: the reader refuses cached records then.
        frame_indices, selected_num_frames = select_frame_indices(
            num_frames,
            num_input_frames,
            frame_stride,
            frame_sampling,
            video_ids,
            sampling_seed,
            random_offset,
        )
        return frame_indices, frame_indices, selected_num_frames
    most_cached = (max_frames + frame_stride - 1) // frame_stride
    selected_num_frames = tf.where(
        cached,
        tf.minimum(num_frames, most_cached),
        (num_frames + frame_stride - 1) // frame_stride,
    )
    num_selected = tf.reduce_max(tf.concat([selected_num_frames, [0]], axis=0))
    selected_range = tf.range(num_selected, dtype=tf.int32)
    batch_size = tf.shape(num_frames)[0]
    frame_indices = tf.tile(selected_range[tf.newaxis, :] * frame_stride, [batch_size, 1])
    positions = tf.where(cached[:, tf.newaxis], selected_range[tf.newaxis, :], frame_indices)
    # Past its selected frames a row may point beyond its record: 0 there.
    valid = selected_range[tf.newaxis, :] < selected_num_frames[:, tf.newaxis]
    return tf.where(valid, positions, 0), frame_indices, selected_num_frames
