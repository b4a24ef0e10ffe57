"""Which frames of each video a model sees: the choice of frame indices, nothing else.

A selection is a sampling (`FRAME_SAMPLINGS`) and how many frames it takes from a video of N
frames: with a stride j (`--frame_stride`) ceil(N / j), 1 frame in j; with a count k
(`--frames_per_video`) min(k, N), k frames whatever the video's length. The reader (readers.py)
applies the choice: it decodes only the frames chosen here.
"""

import tensorflow as tf

import utils

FRAME_SAMPLINGS = ("uniform", "random", "first", "middle", "last", "first_middle_last")
# The samplings that read consecutive frames at fixed places in the video, and where.
FIXED_PLACES = {
    "first": "the first frames of each video",
    "middle": "consecutive frames at the middle of each video",
    "last": "the last frames of each video",
    "first_middle_last": "consecutive frames at the start, middle and end of each video",
}


def check_frame_selection(frame_stride, frame_sampling, frames_per_video=0, max_frames=None):
    """Raises `utils.UserInputError` for a stride below 1, an unknown sampling, a count below 0
    or above `max_frames` (None: unchecked), or a count together with a stride."""
    if frame_stride < 1:
        raise utils.UserInputError(f"--frame_stride must be >= 1, got {frame_stride}.")
    if frame_sampling not in FRAME_SAMPLINGS:
        raise utils.UserInputError(
            f"--frame_sampling={frame_sampling}: choose one of {', '.join(FRAME_SAMPLINGS)}."
        )
    if frames_per_video < 0:
        raise utils.UserInputError(
            f"--frames_per_video must be >= 0 (0: read 1 frame in --frame_stride), got "
            f"{frames_per_video}."
        )
    if frames_per_video and frame_stride > 1:
        raise utils.UserInputError(
            f"--frames_per_video={frames_per_video} and --frame_stride={frame_stride} both say "
            "how many frames to read: give one (--frames_per_video=k reads k frames of each "
            "video, --frame_stride=j 1 frame in j)."
        )
    if max_frames is not None and frames_per_video > max_frames:
        raise utils.UserInputError(
            f"--frames_per_video={frames_per_video} is larger than --max_frames={max_frames}: "
            f"a video is read to at most {max_frames} frames."
        )


def random_offset_problem(frame_stride, frame_sampling, frames_per_video=0, max_frames=None):
    """Why a model with this selection has no random offset to draw, or "" when it has one:
    uniform sampling with a stride j > 1, or with a count k below `max_frames` (None: any k)."""
    if frame_sampling == "random":
        return (
            "--random_frame_offset shifts uniform sampling; --frame_sampling=random already "
            "draws its frames at random."
        )
    if frame_sampling in FIXED_PLACES:
        return (
            f"--random_frame_offset shifts the phase of uniform sampling; "
            f"--frame_sampling={frame_sampling} reads {FIXED_PLACES[frame_sampling]}, fixed "
            "places with no phase to shift: pass --norandom_frame_offset."
        )
    if frames_per_video:
        if max_frames is not None and frames_per_video >= max_frames:
            return (
                f"--random_frame_offset needs --frames_per_video below --max_frames="
                f"{max_frames}: a model that reads every frame it is given has no offset to "
                "draw."
            )
        return ""
    if frame_stride == 1:
        return (
            "--random_frame_offset needs --frame_stride > 1 or --frames_per_video: a model "
            "that reads every frame has no offset to draw."
        )
    return ""


def check_random_frame_offset(
    random_frame_offset, frame_stride, frame_sampling, frames_per_video=0, max_frames=None
):
    """Raises `utils.UserInputError` when --random_frame_offset has no uniform spacing to shift
    (`random_offset_problem`)."""
    if random_frame_offset:
        problem = random_offset_problem(frame_stride, frame_sampling, frames_per_video, max_frames)
        if problem:
            raise utils.UserInputError(problem)


def describe_frame_selection(frame_stride, frame_sampling, frames_per_video=0):
    """The flags of a selection, for messages: e.g. "--frame_stride=10 --frame_sampling=uniform"
    or "--frames_per_video=10 --frame_sampling=first"."""
    amount = (
        f"--frames_per_video={frames_per_video}"
        if frames_per_video
        else f"--frame_stride={frame_stride}"
    )
    return f"{amount} --frame_sampling={frame_sampling}"


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


def offset_draws(video_ids, sampling_seed):
    """`[B]` float32 draws in [0, 1), one per video, for its random offset: new at every call
    with `sampling_seed` None, else `hashed_draws` of (video id, "offset", seed)."""
    if sampling_seed is None:
        return tf.random.uniform([tf.shape(video_ids)[0]], dtype=tf.float32)
    draws = hashed_draws(video_ids[:, tf.newaxis], tf.constant([["offset"]]), sampling_seed)
    return draws[:, 0]


def draw_below(draws, limits):
    """floor(draw * limit) for `[B]` draws in [0, 1) and `[B]` int32 limits >= 1: an int32 in
    [0, limit) (clipped, against float rounding up to the limit)."""
    scaled = tf.cast(draws * tf.cast(limits, tf.float32), tf.int32)
    return tf.minimum(scaled, limits - 1)


def selected_frame_counts(num_frames, num_input_frames, frame_stride, frames_per_video=0):
    """How many frames a selection takes of `[B]` videos of N frames padded to T:
    (selected_num_frames `[B]` int32, ceil(N / j) at a stride j or min(k, N) at a count k; the
    batch's width T', a scalar int32, ceil(T / j) or min(k, T))."""
    if frames_per_video:
        return (
            tf.minimum(num_frames, frames_per_video),
            tf.minimum(num_input_frames, frames_per_video),
        )
    return (
        (num_frames + frame_stride - 1) // frame_stride,
        (num_input_frames + frame_stride - 1) // frame_stride,
    )


def first_middle_last_sizes(selected_num_frames):
    """The frames that First-Middle-Last takes at the start, middle and end of each video, for
    `[B]` counts n: n // 3 each, the remainder placed symmetrically in time (1 left over: one
    more in the middle; 2 left over: one more at the start and one more at the end).

    Returns:
      (start `[B]` int32, middle `[B]` int32); the end takes as many as the start.
    """
    third, left_over = selected_num_frames // 3, selected_num_frames % 3
    start = third + tf.cast(tf.equal(left_over, 2), tf.int32)
    middle = third + tf.cast(tf.equal(left_over, 1), tf.int32)
    return start, middle


def select_frame_indices(
    num_frames,
    num_input_frames,
    frame_stride,
    frame_sampling,
    video_ids,
    sampling_seed=None,
    random_offset=False,
    frames_per_video=0,
):
    """Chooses which frames of each video a model sees, in time order.

    A video of N frames gives n of them: n = ceil(N / j) with the stride j = `frame_stride`
    (`frames_per_video` 0), n = min(k, N) with a count k = `frames_per_video`; a video with no
    more than n frames gives all of them. For i = 0, ..., n - 1 the i-th selected frame is:
    - uniform, stride: i * j (frames 0, j, 2j, ...). With `random_offset` (training only) each
      video starts at its own offset o, drawn uniformly from [0, min(j, N)): frames o + i * j
      below N, i.e. n = ceil((N - o) / j) frames, the same spacing at another phase.
    - uniform, count: floor(i * N / n), n equally spaced frames from frame 0 (for N = k * j the
      stride's frames 0, j, 2j, ...). With `random_offset` floor((i * N + m) / n), m drawn
      uniformly from the integers [0, N): a phase in [0, N / n) of the spacing N / n.
    - random: n frames drawn without replacement from the N, kept in time order.
    - first: i, the first n frames.
    - middle: floor((N - n) / 2) + i, n consecutive frames centred on the middle of the video
      (half a frame earlier when N - n is odd).
    - last: N - n + i, the last n frames.
    - first_middle_last: three runs of consecutive frames: `first_middle_last_sizes` of them
      from frame 0, from floor((N - middle) / 2) and up to frame N - 1; they never overlap, and
      for N = n they are the whole video.
    With `sampling_seed` None the draws (random frames, offsets) are new at every call; with a
    seed they are a hash of (video id, frame index or "offset", seed), so a video gets the same
    frames whatever batch it is in: eval and inference use `frame_sampling_seed`; training a
    string of its seed and the epoch (new frames every epoch, the same ones when a resumed run
    reads that epoch again).

    Args:
      num_frames: `[B]` int32, frames of each video.
      num_input_frames: scalar int32 T, the padded length of the batch.
      frame_stride: j >= 1 (1 with a count).
      frame_sampling: one of `FRAME_SAMPLINGS`.
      video_ids: `[B]` strings (for the seeded draws).
      sampling_seed: None, an int, or a scalar string tensor.
      random_offset: uniform sampling from a random offset or phase (see above).
      frames_per_video: k >= 1, or 0 to select 1 frame in `frame_stride`.

    Returns:
      (frame_indices `[B, T']` int32 with T' = ceil(T / j), or min(k, T) with a count, the
      original index of each selected frame, 0 past the selected count; selected_num_frames
      `[B]` int32, n as above).
    """
    selected_num_frames, num_selected = selected_frame_counts(
        num_frames, num_input_frames, frame_stride, frames_per_video
    )
    batch_size = tf.shape(num_frames)[0]
    if frame_sampling == "random":
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
    if frame_sampling == "uniform" and not frames_per_video:
        indices = tf.range(num_selected, dtype=tf.int32) * frame_stride
        if not random_offset:
            return tf.tile(indices[tf.newaxis, :], [batch_size, 1]), selected_num_frames
        offsets = draw_below(
            offset_draws(video_ids, sampling_seed),
            tf.minimum(frame_stride, tf.maximum(num_frames, 1)),
        )
        # o < N for a video with frames, o = 0 for an empty one: the count is never negative.
        selected_num_frames = (num_frames - offsets + frame_stride - 1) // frame_stride
        shifted = offsets[:, tf.newaxis] + indices[tf.newaxis, :]
        valid = tf.range(num_selected)[tf.newaxis, :] < selected_num_frames[:, tf.newaxis]
        return tf.where(valid, shifted, 0), selected_num_frames
    position = tf.range(num_selected, dtype=tf.int32)[tf.newaxis, :]  # i, [1, T']
    video_frames = num_frames[:, tf.newaxis]  # N, [B, 1]
    selected = selected_num_frames[:, tf.newaxis]  # n, [B, 1]
    if frame_sampling == "uniform":
        phase = tf.zeros_like(num_frames)  # m
        if random_offset:
            phase = draw_below(offset_draws(video_ids, sampling_seed), tf.maximum(num_frames, 1))
        # i * N + m in int64: i * N overflows int32 for videos of more than 46,340 frames.
        spread = tf.cast(position, tf.int64) * tf.cast(video_frames, tf.int64)
        shifted = spread + tf.cast(phase, tf.int64)[:, tf.newaxis]
        indices = tf.cast(shifted // tf.cast(tf.maximum(selected, 1), tf.int64), tf.int32)
    elif frame_sampling == "first":
        indices = position + tf.zeros_like(video_frames)
    elif frame_sampling == "middle":
        indices = (video_frames - selected) // 2 + position
    elif frame_sampling == "last":
        indices = video_frames - selected + position
    elif frame_sampling == "first_middle_last":
        start, middle = (
            size[:, tf.newaxis] for size in first_middle_last_sizes(selected_num_frames)
        )
        indices = tf.where(
            position < start,
            position,
            tf.where(
                position < start + middle,
                (video_frames - middle) // 2 + position - start,
                video_frames - selected + position,
            ),
        )
    else:
        raise ValueError(f"unknown frame sampling {frame_sampling!r}")
    valid = position < selected
    return tf.where(valid, indices, 0), selected_num_frames


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
    frames_per_video=0,
):
    """`select_frame_indices` for a batch that may hold records of a frame cache (frame_cache.py).

    A full record's selected frames sit at their video indices; a cached record already holds
    only frames 0, j, 2j, ... of its video, so its selected frames are its first
    ceil(max_frames / j) frames, in order. Both give the same `frame_indices`. Only uniform
    sampling at a stride j > 1 from frame 0 reads a cache: for any other selection the reader
    refuses cached records (frame_cache.cache_stride_problem), so they are not told apart here.

    Args:
      num_frames: `[B]` int32, frames in each record (at most `max_frames`).
      num_input_frames: scalar int32 T, the padded length of the batch's records.
      frame_stride, frame_sampling, video_ids, sampling_seed, random_offset, frames_per_video:
        as `select_frame_indices`.
      cached: `[B]` bool, records of a cache written for `frame_stride` (uniform sampling only);
        None: none is.
      max_frames: the frames a full record is read to (for a cached record's count).

    Returns:
      (positions `[B, T']` int32, each selected frame's index in its record; frame_indices
      `[B, T']` int32, its index in the video; selected_num_frames `[B]` int32), 0 past the
      selected count.
    """
    reads_cache = (
        frame_sampling == "uniform"
        and frame_stride > 1
        and not random_offset
        and not frames_per_video
    )
    if cached is None or not reads_cache:
        frame_indices, selected_num_frames = select_frame_indices(
            num_frames,
            num_input_frames,
            frame_stride,
            frame_sampling,
            video_ids,
            sampling_seed,
            random_offset,
            frames_per_video,
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


def exit_stages_of(num_positions, exit_stages):
    """The coarse-to-fine stage of each of a model's selected frames, `[num_positions]` int32:
    with S = `exit_stages`, the frame at position m (the m-th the model reads) is in stage
    S - 1 - (the number of levels l in 1 .. S-1 with 2^l dividing m). With S = 3 stage 0 holds
    every 4th frame (0, 4, 8, ...), stage 1 the frames that make it every 2nd (2, 6, ...) and
    stage 2 the rest: a model that stops after stage s has read every 2^(S-1-s)-th frame, and
    the stages up to s hold 1 / 2^(S-1-s) of its frames. One stage: every frame in stage 0."""
    positions = tf.range(num_positions, dtype=tf.int32)
    stage = tf.fill([num_positions], exit_stages - 1)
    for level in range(1, exit_stages):
        stage -= tf.cast(tf.equal(positions % (2**level), 0), tf.int32)
    return stage
