"""Writes a real-label proxy: YouTube-8M frame-level records built around real video-level ones.

    python proxy_data.py --output_dir=/tmp/proxy            # DIR/train/ and DIR/validate/
    python proxy_data.py --output_dir=/tmp/proxy --top_classes=100 --max_videos=2000

What it is. Each real video-level record of YouTube-8M (2018, 3,862 classes) becomes one
frame-level `tf.train.SequenceExample` in the dataset's exact layout (context `id` and `labels`;
feature lists `rgb`, 1024 uint8 bytes a frame, and `audio`, 128), which every frame-level reader
and model of this repository reads. The real samples beside the repository (`../shared/data`,
"YouTube-8M, Google Research", CC BY 4.0) give the two splits:
`yt8m_2018_video_train_real/` (5,900 videos) -> `train`, `yt8m_2018_video_sample/` (1,202
videos) -> `validate`, held out.

Why. The synthetic set (synthetic_data.py) causes each label by events a few frames long at
random positions, so a model reading one frame in ten misses every event of a label in about a
quarter of the videos. Real video is redundant across neighbouring seconds: in the paper,
TEACHER-UNIFORM-10 loses only 2.6 % GAP against the teacher reading every frame (0.788 vs
0.809). Here the label information is the real video's mean feature, which every frame carries
under shot-level and frame-level variation, so one frame in ten still sees most of it: the
regime the paper's teacher-student results were measured in, with real labels.

What is real: the video ids, the label sets (all 3,862 classes, their real frequencies and
co-occurrences), and the mean of each video's frames: the mean over the frames of the
dequantized `rgb` / `audio` equals the real `mean_rgb` / `mean_audio` within half a quantization
step (below). What is synthesized: the number of frames, and how the frames vary around that
mean.

How a video's frames are made (D = 1024 + 128 dimensions, float64 until quantized):

    x[t] = mean + perturbation[t]
    perturbation[t] = feature_std * (shot_noise * offset[shot(t)] + frame_noise * noise[t])

- `num_frames` is uniform in [min_frames, max_frames] (60-300, as in the real data).
- The frames are cut into consecutive shots of geometric length (mean `mean_shot_length`
  frames); each shot has its own standard normal offset vector `offset`, each frame its own
  standard normal `noise`.
- `feature_std` `[D]` is each dimension's standard deviation across the training videos' mean
  features (0.39-0.96), computed once from the train split and used for both splits; the noise
  levels are multiples of it.
- The perturbations are centered: the mean over the video's frames is subtracted from each, so
  the frames' float mean is exactly the real mean.
- The quantized values lie in [LOWEST_VALUE, HIGHEST_VALUE] = [dequantize(0), dequantize(255)]
  = [-1.9921875, 2.0078125]. A dimension whose perturbation would leave that range is shrunk (all
  its frames by one factor, which keeps it centered) until its extreme frame just reaches the
  edge; a dimension whose real mean is an edge (every real frame 0 or 255) stays constant. So
  quantization never clips.
- Frames are quantized as YouTube-8M stores them, to the uint8 level nearest the value under
  the dataset's dequantization `q * 4/255 + 4/512 - 2` (synthetic_data.quantize: clip to 0..255,
  round).

The defaults are set from the 59 real frame-level videos of `../shared/data`: their frames vary
around the video's mean by about 2.1 `feature_std` (rgb) and 1.3 (audio) per dimension, with
autocorrelation 0.41 at one frame, 0.14 at 5 and 0.06 at 10: about half of that variation
persists over ~5 frames (shots), the rest is per frame. `shot_noise = frame_noise = 1` gives a
within-video deviation of 1.4 `feature_std` before the shrinking above and 1.27 after it (about
half of the dimensions of a video are shrunk, by 0.87 on average); larger levels mostly end up
shrunk (1.4 each: 94 % of the dimensions, by 0.68 on average).

Mean preservation. Without clipping, each dequantized value is within half a step s/2 = 2/255
(0.0078) of its float value, so the mean over the frames of the dequantized values is within s/2
of the frames' float mean, which is the real mean: |mean_t dequantize(q[t]) - real_mean| <= 2/255
in every dimension of every video, whatever the frame count (plus float32 round-off, ~1e-6).
The per-frame variation acts as dither, so the typical error is far smaller (about
s / sqrt(12 T)).

Labels and classes: labels are copied as they are, with their original class ids. With
`top_classes=N` only the videos having at least one of the N classes most frequent in the
training videos are kept, and the other labels are dropped; the ids stay the original ones, so
the vocabulary still names them and `--num_classes` stays 3862 in train.py and eval.py.

Determinism: video i of a split (its position in the split's input, files in sorted order, before
`top_classes` and `max_videos` select videos) draws from its own random stream, fixed by `seed`,
the split name and i. The same arguments write byte-identical shards, a video's frames do not
depend on `num_shards`, `max_videos` or `top_classes`, and another seed gives other frames.

Shards: contiguous blocks of the kept videos, `{split}-00000-of-0000N.tfrecord`, each written
under a temporary name and renamed when whole (tf.io.gfile: `output_dir` may be `gs://`); shards
of the split left from an earlier run with another shard count are removed. The split's real
records are held in memory while it is written (4.6 KB a video).
"""

import dataclasses
import os
import uuid
import zlib
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
from google.protobuf import message

import utils
from datasets import synthetic

NUM_CLASSES = 3862

# (video-level input feature, frame-level output feature, size), in the concatenation order.
FEATURES = (("mean_rgb", "rgb", 1024), ("mean_audio", "audio", 128))
TOTAL_FEATURE_SIZE = sum(size for _, _, size in FEATURES)

# The quantization step and the values the uint8 levels 0 and 255 dequantize to.
QUANTIZATION_STEP = (synthetic.MAX_QUANTIZED_VALUE - synthetic.MIN_QUANTIZED_VALUE) / 255
LOWEST_VALUE = float(synthetic.dequantize(np.uint8(0)))  # -1.9921875
HIGHEST_VALUE = float(synthetic.dequantize(np.uint8(255)))  # 2.0078125
# Real means may differ from the quantized range by float32 round-off only.
_RANGE_TOLERANCE = 1e-5

# The real samples beside the repository (as the tests find them).
SHARED_DATA = os.path.join(os.path.dirname(utils.REPO_DIR), "shared", "data")
DEFAULT_INPUT_PATTERNS = {
    "train": os.path.join(SHARED_DATA, "yt8m_2018_video_train_real", "*.tfrecord"),
    "validate": os.path.join(SHARED_DATA, "yt8m_2018_video_sample", "*.tfrecord"),
}
# The command-line flag of each split's input, named in error messages.
INPUT_FLAGS = {"train": "--train_data_pattern", "validate": "--validate_data_pattern"}
SPLITS = tuple(INPUT_FLAGS)

# Keeps the proxy's random streams apart from synthetic_data's (class patterns 0, videos 1).
_PROXY_STREAM = 2


@dataclasses.dataclass(frozen=True)
class WrittenSplit:
    """What `write_proxy_dataset` wrote: the shard paths, in order, and the videos in them."""

    paths: list
    num_videos: int


@dataclasses.dataclass(frozen=True)
class FrameSpec:
    """How the frames vary around a video's real mean (see the module docstring).

    Attributes:
      min_frames, max_frames: a video has a uniformly drawn number of frames in this range.
      mean_shot_length: mean length in frames of the geometric shot lengths (>= 1; 1: every
        frame its own shot).
      shot_noise: sd of a shot's offset, in units of each dimension's `feature_std`.
      frame_noise: sd of a frame's own noise, in the same units.
    """

    min_frames: int = 60
    max_frames: int = 300
    mean_shot_length: float = 5.0
    shot_noise: float = 1.0
    frame_noise: float = 1.0

    def validate(self) -> None:
        """Raises utils.UserInputError naming the flag of a value that cannot work."""
        if self.min_frames < 1:
            raise utils.UserInputError(f"--min_frames must be >= 1, got {self.min_frames}.")
        if self.max_frames < self.min_frames:
            raise utils.UserInputError(
                f"--max_frames ({self.max_frames}) must be >= --min_frames ({self.min_frames})."
            )
        if not np.isfinite(self.mean_shot_length) or self.mean_shot_length < 1:
            raise utils.UserInputError(
                f"--mean_shot_length must be >= 1 frame, got {self.mean_shot_length}."
            )
        for name in ("shot_noise", "frame_noise"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise utils.UserInputError(f"--{name} must be >= 0, got {value}.")


@dataclasses.dataclass(frozen=True)
class RealVideo:
    """One real video-level record.

    Attributes:
      index: position in its split's input (files in sorted order, then records in file order).
      video_id: the real id, e.g. "H2ax".
      labels: int64 `[num_labels]`, the real labels in their stored order.
      mean: float32 `[1152]`, `mean_rgb` then `mean_audio`.
    """

    index: int
    video_id: str
    labels: np.ndarray
    mean: np.ndarray


@dataclasses.dataclass(frozen=True)
class TrainStatistics:
    """What the proxy takes from the whole training split (whatever `max_videos` keeps).

    Attributes:
      feature_std: float64 `[1152]`, each dimension's standard deviation across the training
        videos' mean features: the unit of `shot_noise` and `frame_noise`.
      class_counts: int64 `[3862]`, training videos per class (for `top_classes`).
      num_videos: number of training videos.
    """

    feature_std: np.ndarray
    class_counts: np.ndarray
    num_videos: int


def iter_real_videos(data_pattern: str, flag_name: str) -> Iterator[RealVideo]:
    """Yields the video-level records of the files matching `data_pattern`, checked.

    Args:
      data_pattern: comma-separated globs of YouTube-8M video-level TFRecords (local or gs://).
      flag_name: the flag that gave the pattern, named in error messages.

    Raises:
      utils.UserInputError: no file matches; a file is not a TFRecord file of video-level
        records; a record lacks `id` or a feature, has a feature of the wrong size, a label
        outside [0, 3862) or a mean outside the quantized range. The message names the flag and
        the file.
    """
    index = 0
    for path in utils.glob_data_files(data_pattern, flag_name):
        try:
            for record_number, record in enumerate(
                tf.data.TFRecordDataset(path).as_numpy_iterator()
            ):
                yield _parse_real_video(record, index, path, record_number, flag_name)
                index += 1
        except tf.errors.DataLossError as error:
            raise utils.UserInputError(
                f"{flag_name}: {path} is not a readable TFRecord file: "
                f"{utils.describe_tf_error(error)}"
            ) from None


def _parse_real_video(record, index, path, record_number, flag_name):
    where = f"{flag_name}: {path}, record {record_number}"
    try:
        example = tf.train.Example.FromString(record)
    except message.DecodeError:
        raise utils.UserInputError(f"{where} is not a tf.train.Example.") from None
    features = example.features.feature
    id_values = features["id"].bytes_list.value if "id" in features else []
    if len(id_values) != 1:
        raise utils.UserInputError(
            f"{where} has no video id: a YouTube-8M video-level record has one bytes value 'id'."
        )
    video_id = id_values[0].decode("utf-8", errors="replace")
    where = f"{where} (video '{video_id}')"
    labels = np.array(features["labels"].int64_list.value, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise utils.UserInputError(
            f"{where} has labels outside [0, {NUM_CLASSES}): {labels.tolist()[:10]}."
        )
    parts = []
    for input_name, _, size in FEATURES:
        values = features[input_name].float_list.value if input_name in features else []
        if len(values) != size:
            raise utils.UserInputError(
                f"{where}: feature '{input_name}' has {len(values)} floats, expected {size} "
                f"(YouTube-8M video-level records: mean_rgb 1024, mean_audio 128)."
            )
        parts.append(np.asarray(values, dtype=np.float32))
    mean = np.concatenate(parts)
    lowest, highest = LOWEST_VALUE - _RANGE_TOLERANCE, HIGHEST_VALUE + _RANGE_TOLERANCE
    if not np.all(np.isfinite(mean)) or mean.min() < lowest or mean.max() > highest:
        raise utils.UserInputError(
            f"{where} has mean features outside the dataset's quantized range "
            f"[{LOWEST_VALUE}, {HIGHEST_VALUE}] (min {mean.min()}, max {mean.max()})."
        )
    np.clip(mean, LOWEST_VALUE, HIGHEST_VALUE, out=mean)
    return RealVideo(index, video_id, labels, mean)


def compute_train_statistics(
    train_pattern: str = DEFAULT_INPUT_PATTERNS["train"], flag_name: str = INPUT_FLAGS["train"]
) -> TrainStatistics:
    """One pass over the training split's video-level records: per-dimension sd and class counts.

    Raises:
      utils.UserInputError: as `iter_real_videos`, or fewer than 2 training videos.
    """
    total = np.zeros(TOTAL_FEATURE_SIZE, np.float64)
    total_squares = np.zeros(TOTAL_FEATURE_SIZE, np.float64)
    class_counts = np.zeros(NUM_CLASSES, np.int64)
    num_videos = 0
    for video in iter_real_videos(train_pattern, flag_name):
        mean = video.mean.astype(np.float64)
        total += mean
        total_squares += mean * mean
        class_counts[np.unique(video.labels)] += 1
        num_videos += 1
    if num_videos < 2:
        raise utils.UserInputError(
            f"{flag_name}: {num_videos} video(s) in '{train_pattern}'; the feature scale needs "
            "at least 2."
        )
    average = total / num_videos
    variance = np.maximum(total_squares / num_videos - average * average, 0.0)
    return TrainStatistics(np.sqrt(variance), class_counts, num_videos)


def top_class_ids(class_counts: np.ndarray, top_classes: int) -> np.ndarray:
    """The `top_classes` most frequent classes (ties: the lower id first), sorted by id.

    Raises:
      utils.UserInputError: when top_classes is < 1 or more than the classes that occur.
    """
    num_present = int(np.count_nonzero(class_counts))
    if not 1 <= top_classes <= num_present:
        raise utils.UserInputError(
            f"--top_classes must be in [1, {num_present}] (the classes that occur in the "
            f"training videos), got {top_classes}."
        )
    order = np.lexsort((np.arange(len(class_counts)), -class_counts))
    return np.sort(order[:top_classes]).astype(np.int64)


def video_rng(seed: int, split: str, video_index: int) -> np.random.Generator:
    """The random stream of video `video_index` of `split` (its position in the split's input)."""
    split_code = zlib.crc32(split.encode("utf-8"))
    return np.random.default_rng([seed, _PROXY_STREAM, split_code, video_index])


def synthesize_frames(
    mean: np.ndarray, feature_std: np.ndarray, rng: np.random.Generator, spec: FrameSpec
) -> np.ndarray:
    """The quantized frames of one video around its real mean feature.

    Args:
      mean: float `[D]`, the real mean feature, within [LOWEST_VALUE, HIGHEST_VALUE].
      feature_std: float `[D]`, the scale of the perturbations (`TrainStatistics.feature_std`).
      rng: the video's random stream (`video_rng`).
      spec: how the frames vary.

    Returns:
      uint8 `[num_frames, D]`: the mean over the frames of their dequantized values is within
      QUANTIZATION_STEP / 2 of `mean` in every dimension.
    """
    mean = np.asarray(mean, np.float64)
    num_frames = int(rng.integers(spec.min_frames, spec.max_frames + 1))
    # Shot lengths until the frames are covered; the last shot is cut at the end.
    shot_lengths = rng.geometric(1.0 / spec.mean_shot_length, size=num_frames)
    num_shots = int(np.searchsorted(np.cumsum(shot_lengths), num_frames) + 1)
    shot_of_frame = np.repeat(np.arange(num_shots), shot_lengths[:num_shots])[:num_frames]
    offsets = rng.standard_normal((num_shots, mean.size))
    noise = rng.standard_normal((num_frames, mean.size))
    perturbation = spec.shot_noise * offsets[shot_of_frame] + spec.frame_noise * noise
    perturbation *= np.asarray(feature_std, np.float64)
    perturbation -= perturbation.mean(axis=0)

    # Shrink a dimension whose extreme frame would leave the quantized range (centering kept).
    room_above = HIGHEST_VALUE - mean
    room_below = mean - LOWEST_VALUE
    highest = perturbation.max(axis=0)
    lowest = perturbation.min(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = np.minimum(
            np.where(highest > room_above, room_above / highest, 1.0),
            np.where(-lowest > room_below, room_below / -lowest, 1.0),
        )
    perturbation *= np.clip(shrink, 0.0, 1.0)
    # Only float round-off can reach past the range here.
    values = np.clip(mean + perturbation, LOWEST_VALUE, HIGHEST_VALUE)
    return synthetic.quantize(values)


def make_proxy_video(
    real_video: RealVideo,
    feature_std: np.ndarray,
    seed: int,
    split: str,
    spec: FrameSpec,
    kept_classes: np.ndarray | None = None,
) -> synthetic.SyntheticVideo:
    """The proxy of one real video: its frames per feature (uint8 `[T, size]`) and its labels
    (restricted to `kept_classes` when given, in their stored order)."""
    frames = synthesize_frames(
        real_video.mean, feature_std, video_rng(seed, split, real_video.index), spec
    )
    features = {}
    offset = 0
    for _, output_name, size in FEATURES:
        features[output_name] = np.ascontiguousarray(frames[:, offset : offset + size])
        offset += size
    labels = real_video.labels
    if kept_classes is not None:
        labels = labels[np.isin(labels, kept_classes)]
    return synthetic.SyntheticVideo(features, labels, ())


def select_videos(
    real_videos: list[RealVideo],
    kept_classes: np.ndarray | None,
    max_videos: int | None,
) -> list[RealVideo]:
    """The videos with at least one of `kept_classes` (all when None), the first `max_videos`."""
    if kept_classes is not None:
        real_videos = [video for video in real_videos if np.isin(video.labels, kept_classes).any()]
    if max_videos is not None:
        real_videos = real_videos[:max_videos]
    return real_videos


def write_proxy_dataset(
    output_dir: str,
    split: str,
    input_pattern: str | None = None,
    train_pattern: str | None = None,
    num_shards: int = 4,
    max_videos: int | None = None,
    top_classes: int | None = None,
    min_frames: int = 60,
    max_frames: int = 300,
    mean_shot_length: float = 5.0,
    shot_noise: float = 1.0,
    frame_noise: float = 1.0,
    seed: int = 0,
    statistics: TrainStatistics | None = None,
) -> WrittenSplit:
    """Writes one split of the proxy as frame-level TFRecord shards in `output_dir`.

    Args:
      output_dir: directory (local or gs://) to write `{split}-0000k-of-0000N.tfrecord` into;
        created if missing.
      split: "train" or "validate": names the shards and seeds the videos' random streams.
      input_pattern: the split's real video-level records; defaults to the shared samples
        (`DEFAULT_INPUT_PATTERNS[split]`).
      train_pattern: the training split's video-level records, for `feature_std` and the class
        frequencies; defaults to `DEFAULT_INPUT_PATTERNS["train"]`. Not read when `statistics`
        is given.
      num_shards: files to write, 1 <= num_shards <= videos kept.
      max_videos: keep only the first this many (after `top_classes`); None: all.
      top_classes: keep only the videos having one of the N most frequent training classes,
        and only those labels; None: all videos and labels.
      min_frames, max_frames, mean_shot_length, shot_noise, frame_noise: see `FrameSpec`.
      seed: with the split and each video's index, fixes the frames.
      statistics: the training split's `compute_train_statistics`, to compute it once for
        several splits or calls.

    Returns:
      A WrittenSplit: the shard paths, in order, and the number of videos written.

    Raises:
      utils.UserInputError: a bad argument or input, named by its command-line flag.
    """
    if split not in INPUT_FLAGS:
        raise utils.UserInputError(f"--splits: unknown split '{split}'; use {', '.join(SPLITS)}.")
    spec = FrameSpec(min_frames, max_frames, mean_shot_length, shot_noise, frame_noise)
    spec.validate()
    if num_shards < 1:
        raise utils.UserInputError(f"--num_shards must be >= 1, got {num_shards}.")
    if max_videos is not None and max_videos < 1:
        raise utils.UserInputError(f"--max_videos must be >= 1 (0: all), got {max_videos}.")
    if seed < 0:
        raise utils.UserInputError(f"--seed must be >= 0, got {seed}.")
    if statistics is None:
        statistics = compute_train_statistics(
            train_pattern or DEFAULT_INPUT_PATTERNS["train"], INPUT_FLAGS["train"]
        )
    kept_classes = None
    if top_classes is not None:
        kept_classes = top_class_ids(statistics.class_counts, top_classes)
    input_pattern = input_pattern or DEFAULT_INPUT_PATTERNS[split]
    real_videos = select_videos(
        list(iter_real_videos(input_pattern, INPUT_FLAGS[split])), kept_classes, max_videos
    )
    if len(real_videos) < num_shards:
        raise utils.UserInputError(
            f"--num_shards ({num_shards}) is more than the {len(real_videos)} {split} videos "
            f"kept from '{input_pattern}': no shard may be empty."
        )

    tf.io.gfile.makedirs(output_dir)
    paths = synthetic.shard_paths(output_dir, split, num_shards)
    for shard, path in enumerate(paths):
        first = shard * len(real_videos) // num_shards
        last = (shard + 1) * len(real_videos) // num_shards
        temporary_path = os.path.join(
            output_dir, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}"
        )
        try:
            with tf.io.TFRecordWriter(temporary_path) as writer:
                for real_video in real_videos[first:last]:
                    video = make_proxy_video(
                        real_video, statistics.feature_std, seed, split, spec, kept_classes
                    )
                    example = synthetic.make_sequence_example(real_video.video_id, video)
                    writer.write(example.SerializeToString(deterministic=True))
            tf.io.gfile.rename(temporary_path, path, overwrite=True)
        finally:
            if tf.io.gfile.exists(temporary_path):
                tf.io.gfile.remove(temporary_path)
    _remove_stale_shards(output_dir, split, paths)
    return WrittenSplit(paths, len(real_videos))


def _remove_stale_shards(output_dir, split, paths):
    """Removes `{split}-?????-of-?????.tfrecord` shards of another shard count (an earlier run)."""
    pattern = os.path.join(output_dir, f"{split}-?????-of-?????.tfrecord")
    current = {os.path.basename(path) for path in paths}
    for path in tf.io.gfile.glob(pattern):
        if os.path.basename(path) not in current:
            tf.io.gfile.remove(path)
