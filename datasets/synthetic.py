"""Writes a synthetic data set in the YouTube-8M 2018 frame-level format.

One job: produce TFRecord shards of `tf.train.SequenceExample`s that any YouTube-8M frame-level
reader accepts (context `id` and `labels`; feature lists `rgb` and `audio`, one uint8 byte string
per frame), with labels that can only be recognised by looking at the right frames.

How a video is made (all in float "noise units", then scaled, clipped and quantized):

    x[t] = noise[t] + background[t] + sum over events e of amplitude * pattern[class(e)]
           for the frames t covered by e

- `noise` is white, `noise_sd` per dimension.
- `background` is a slowly drifting per-video AR(1) process (coefficient `background_ar`,
  stationary sd `background_sd` per dimension), started from its stationary distribution.
- Each label of a video gets a few short events (`min/max_events_per_label`, each
  `min/max_event_length` frames) at uniformly random positions. During an event the class's fixed
  pattern is added. The pattern of class c is a random direction per feature (separate for `rgb`
  and `audio`), fixed by the seed. Events of all features happen at the same frames.
- The per-dimension amplitude is `event_amplitude * sqrt(amplitude_reference_size / D)`, where D is
  the summed size of all features: a projection of one frame onto the class pattern then shows
  the event with the same signal-to-noise ratio (`event_amplitude * sqrt(reference)`, 9.6 by
  default) whatever the feature sizes.
- The defaults (reference 256, background sd 0.3) are set so that a small hierarchical teacher
  learns the classes from about a thousand videos. With reference 64 and background sd 1 (the
  D = 64 setting where the paper's ordering was first measured) a 64-cell teacher trained on
  1,200 videos of 1,152 features memorised the training set (train GAP 0.99) and reached only
  0.33 GAP on new videos: each video's drifting background is a fingerprint, and the weak
  per-dimension events are harder to learn than the fingerprints. Events stay 2-5 frames long,
  so a model reading every 10th frame still misses a label's every event about a quarter of
  the time.
- The float values are multiplied by `output_scale`, clipped to [-2, 2] and quantized to uint8
  exactly as the dataset is: dequantized value = q * 4/255 + 4/512 - 2.

No single fixed frame carries label information: event positions are uniform over the video, the
number of frames is drawn independently of the labels, and nothing is forced onto frame 0. A model
that sees every frame can find the events; one that sees every 10th frame misses many of them.

Train and evaluation sets: the class patterns depend only on `seed` (and the class index and the
feature sizes), while the videos depend on `seed`, `split` and the video index. So
`write_dataset(..., seed=s, split="train")` and `write_dataset(..., seed=s, split="validate")` share
their class patterns (the same classes mean the same thing) but contain different videos (and
different video ids, `syn-train-00000` vs `syn-validate-00000`). Each video has its own random
stream, so the videos do not depend on `num_shards`, and the same arguments give byte-identical
shards.

Class frequencies: the labels of a video are drawn without replacement with class weights
proportional to `(c + 1) ** -class_skew`; the default `class_skew=0` makes all classes equally
frequent, and e.g. 0.5 gives a mild long tail (class 0 most frequent).

Usage:
  python synthetic_data.py --output_dir=/tmp/syn --num_videos=4000 --num_shards=4 --split=train
  python synthetic_data.py --output_dir=/tmp/syn --num_videos=1000 --num_shards=2 --split=validate
"""

import dataclasses
import os
import uuid
import zlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

# The dataset's quantization range (values are clipped to it before quantizing).
MAX_QUANTIZED_VALUE = 2.0
MIN_QUANTIZED_VALUE = -2.0

# Independent random streams derived from the seed: class patterns vs videos.
_PATTERN_STREAM = 0
_VIDEO_STREAM = 1


@dataclasses.dataclass(frozen=True)
class SyntheticDatasetSpec:
    """How synthetic videos look. The defaults give the short-event regime described above.

    Attributes:
      feature_names: names of the frame feature lists, e.g. ("rgb", "audio").
      feature_sizes: uint8 values per frame of each feature, in the same order.
      min_frames, max_frames: a video has a uniformly drawn number of frames in this range.
      min_labels, max_labels: a video has a uniformly drawn number of distinct labels in this range.
      min_events_per_label, max_events_per_label: events per label of a video (uniform).
      min_event_length, max_event_length: frames per event (uniform).
      event_amplitude: event strength, per dimension in noise-sd units at the reference size.
      amplitude_reference_size: the per-dimension amplitude is scaled by
        sqrt(amplitude_reference_size / sum(feature_sizes)), which keeps the per-frame evidence
        of an event constant across feature sizes; None disables the scaling.
      noise_sd: sd of the white per-frame noise, per dimension.
      background_sd: stationary sd of the drifting per-video background, per dimension.
      background_ar: AR(1) coefficient of the background (near 1: slow drift).
      output_scale: float values are multiplied by this before clipping to [-2, 2].
      class_skew: class weights are proportional to (c + 1) ** -class_skew; 0 is uniform.
    """

    feature_names: tuple[str, ...] = ("rgb", "audio")
    feature_sizes: tuple[int, ...] = (1024, 128)
    min_frames: int = 60
    max_frames: int = 300
    min_labels: int = 1
    max_labels: int = 5
    min_events_per_label: int = 2
    max_events_per_label: int = 4
    min_event_length: int = 2
    max_event_length: int = 5
    event_amplitude: float = 0.6
    amplitude_reference_size: int | None = 256
    noise_sd: float = 1.0
    background_sd: float = 0.3
    background_ar: float = 0.95
    output_scale: float = 0.5
    class_skew: float = 0.0

    @property
    def total_feature_size(self) -> int:
        """Summed size D of all features."""
        return int(sum(self.feature_sizes))

    @property
    def per_dimension_amplitude(self) -> float:
        """Amount an event adds along each (unit-RMS) pattern dimension, in noise units."""
        if self.amplitude_reference_size is None:
            return float(self.event_amplitude)
        return float(
            self.event_amplitude * np.sqrt(self.amplitude_reference_size / self.total_feature_size)
        )

    def validate(self, num_classes: int) -> None:
        """Raises ValueError with a clear message when the spec cannot work with num_classes."""
        if len(self.feature_names) != len(self.feature_sizes):
            raise ValueError(
                f"feature_names and feature_sizes differ in length: {list(self.feature_names)} "
                f"vs {list(self.feature_sizes)}."
            )
        if not self.feature_names:
            raise ValueError("feature_names must name at least one feature.")
        if any(not name for name in self.feature_names):
            raise ValueError(
                f"feature_names must not be empty strings: {list(self.feature_names)}."
            )
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError(f"feature_names must be distinct: {list(self.feature_names)}.")
        if any(int(size) < 1 for size in self.feature_sizes):
            raise ValueError(f"feature_sizes must be >= 1, got {list(self.feature_sizes)}.")
        _check_range("min_frames", self.min_frames, "max_frames", self.max_frames, lowest=1)
        _check_range("min_labels", self.min_labels, "max_labels", self.max_labels, lowest=0)
        if self.max_labels > num_classes:
            raise ValueError(
                f"max_labels ({self.max_labels}) must be <= num_classes ({num_classes})."
            )
        _check_range(
            "min_events_per_label",
            self.min_events_per_label,
            "max_events_per_label",
            self.max_events_per_label,
            lowest=0,
        )
        _check_range(
            "min_event_length", self.min_event_length, "max_event_length", self.max_event_length
        )
        if self.max_event_length > self.min_frames:
            raise ValueError(
                f"max_event_length ({self.max_event_length}) must be <= min_frames "
                f"({self.min_frames})."
            )
        for name in ("event_amplitude", "noise_sd", "background_sd", "class_skew"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.amplitude_reference_size is not None and self.amplitude_reference_size < 1:
            raise ValueError(
                f"amplitude_reference_size must be >= 1 or None, got "
                f"{self.amplitude_reference_size}."
            )
        if not 0 <= self.background_ar < 1:
            raise ValueError(f"background_ar must be in [0, 1), got {self.background_ar}.")
        if self.output_scale <= 0:
            raise ValueError(f"output_scale must be > 0, got {self.output_scale}.")


class Event(NamedTuple):
    """One labelled event: `class_index` is present in frames [start, start + length)."""

    class_index: int
    start: int
    length: int


class SyntheticVideo(NamedTuple):
    """One generated video.

    Attributes:
      features: feature name -> uint8 array `[num_frames, feature_size]`, quantized.
      labels: int64 array `[num_labels]`, sorted and unique.
      events: the events that caused the labels (ground truth, not written to the shards).
    """

    features: dict[str, np.ndarray]
    labels: np.ndarray
    events: tuple[Event, ...]

    @property
    def num_frames(self) -> int:
        """Number of frames T of the video."""
        return int(next(iter(self.features.values())).shape[0])


def _check_range(low_name, low, high_name, high, lowest=1):
    if low < lowest:
        raise ValueError(f"{low_name} must be >= {lowest}, got {low}.")
    if low > high:
        raise ValueError(f"{low_name} ({low}) must be <= {high_name} ({high}).")


def quantize(
    values, max_quantized_value=MAX_QUANTIZED_VALUE, min_quantized_value=MIN_QUANTIZED_VALUE
):
    """Float features -> uint8, the inverse of the dataset's dequantization (round and clip).

    Args:
      values: float array of any shape, e.g. `[num_frames, feature_size]`.

    Returns:
      uint8 array of the same shape, q = round((x - min - range/512) * 255/range) clipped to
      [0, 255], so that q * range/255 + range/512 + min is within half a step of x for x in range.
    """
    quantized_range = max_quantized_value - min_quantized_value
    bias = quantized_range / 512.0 + min_quantized_value
    scaled = (np.asarray(values, dtype=np.float32) - bias) * (255.0 / quantized_range)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def dequantize(
    quantized, max_quantized_value=MAX_QUANTIZED_VALUE, min_quantized_value=MIN_QUANTIZED_VALUE
):
    """uint8 features -> float32, as the dataset's tools do: q * range/255 + range/512 + min.

    Args:
      quantized: uint8 array of any shape, e.g. `[num_frames, feature_size]`.

    Returns:
      float32 array of the same shape, in about [-2, 2].
    """
    quantized_range = max_quantized_value - min_quantized_value
    return np.asarray(quantized, dtype=np.float32) * np.float32(
        quantized_range / 255.0
    ) + np.float32(quantized_range / 512.0 + min_quantized_value)


def make_class_patterns(
    num_classes: int, seed: int, feature_sizes: Sequence[int]
) -> list[np.ndarray]:
    """The fixed event pattern of every class, for every feature.

    The pattern of class c in feature f depends only on (seed, f, c, size of f): it does not change
    with num_classes, the split, or the number of videos.

    Args:
      num_classes: number of classes C.
      seed: the data set's seed.
      feature_sizes: size of each feature, e.g. (1024, 128).

    Returns:
      One float32 array `[num_classes, feature_size]` per feature; each row is a random direction
      with unit root-mean-square value (norm sqrt(feature_size)).
    """
    patterns = []
    for feature_index, size in enumerate(feature_sizes):
        rows = np.empty((num_classes, size), dtype=np.float32)
        for class_index in range(num_classes):
            rng = np.random.default_rng([seed, _PATTERN_STREAM, feature_index, class_index])
            row = rng.standard_normal(size)
            rows[class_index] = row * (np.sqrt(size) / np.linalg.norm(row))
        patterns.append(rows)
    return patterns


def video_rng(seed: int, split: str, video_index: int) -> np.random.Generator:
    """The random stream of one video: depends on the seed, the split name and the video index."""
    split_code = zlib.crc32(split.encode("utf-8"))
    return np.random.default_rng([seed, _VIDEO_STREAM, split_code, video_index])


def video_id(split: str, video_index: int) -> str:
    """The id of video `video_index` of `split`, e.g. "syn-train-00042"."""
    return f"syn-{split}-{video_index:05d}"


def _class_weights(num_classes, class_skew):
    weights = (np.arange(num_classes, dtype=np.float64) + 1.0) ** -class_skew
    return weights / weights.sum()


def generate_video(
    rng: np.random.Generator,
    patterns: Sequence[np.ndarray],
    spec: SyntheticDatasetSpec | None = None,
) -> SyntheticVideo:
    """Generates one video: labels, their events, and quantized frames.

    Args:
      rng: the video's own random generator (see `video_rng`).
      patterns: from `make_class_patterns`, one `[num_classes, feature_size]` array per feature of
        `spec`.
      spec: how videos look (defaults: `SyntheticDatasetSpec()`).

    Returns:
      A `SyntheticVideo` with uint8 frames `[num_frames, feature_size]` per feature.
    """
    spec = spec or SyntheticDatasetSpec()
    pattern_sizes = [int(pattern.shape[1]) for pattern in patterns]
    if pattern_sizes != [int(size) for size in spec.feature_sizes]:
        raise ValueError(
            f"patterns have feature sizes {pattern_sizes} but spec.feature_sizes is "
            f"{list(spec.feature_sizes)}."
        )
    num_classes = patterns[0].shape[0]
    num_frames = int(rng.integers(spec.min_frames, spec.max_frames + 1))
    num_labels = int(rng.integers(spec.min_labels, spec.max_labels + 1))
    labels = np.sort(
        rng.choice(
            num_classes,
            size=num_labels,
            replace=False,
            p=_class_weights(num_classes, spec.class_skew) if spec.class_skew else None,
        )
    ).astype(np.int64)

    events = []
    for class_index in labels:
        num_events = int(rng.integers(spec.min_events_per_label, spec.max_events_per_label + 1))
        lengths = rng.integers(spec.min_event_length, spec.max_event_length + 1, size=num_events)
        for length in lengths:
            start = int(rng.integers(0, num_frames - length + 1))
            events.append(Event(int(class_index), start, int(length)))

    total_size = spec.total_feature_size
    frames = rng.standard_normal((num_frames, total_size), dtype=np.float32)
    if spec.noise_sd != 1.0:
        frames *= np.float32(spec.noise_sd)

    # AR(1) background, started in its stationary distribution (sd background_sd).
    if spec.background_sd > 0:
        ar = np.float32(spec.background_ar)
        # Filled with the innovations, then turned in place into the AR(1) process.
        background = rng.standard_normal((num_frames, total_size), dtype=np.float32)
        background *= np.float32(spec.background_sd * np.sqrt(1.0 - spec.background_ar**2))
        background[0] *= np.float32(1.0 / np.sqrt(1.0 - spec.background_ar**2))
        for t in range(1, num_frames):
            background[t] += ar * background[t - 1]
        frames += background

    amplitude = np.float32(spec.per_dimension_amplitude)
    event_signals = {
        class_index: amplitude * np.concatenate([pattern[class_index] for pattern in patterns])
        for class_index in {event.class_index for event in events}
    }
    for event in events:
        frames[event.start : event.start + event.length] += event_signals[event.class_index]

    frames *= np.float32(spec.output_scale)
    np.clip(frames, MIN_QUANTIZED_VALUE, MAX_QUANTIZED_VALUE, out=frames)
    quantized = quantize(frames)
    features = {}
    offset = 0
    for name, size in zip(spec.feature_names, spec.feature_sizes, strict=True):
        features[name] = np.ascontiguousarray(quantized[:, offset : offset + size])
        offset += size
    return SyntheticVideo(features, labels, tuple(events))


def iter_videos(
    num_videos: int,
    num_classes: int,
    seed: int,
    split: str = "train",
    spec: SyntheticDatasetSpec | None = None,
    start_index: int = 0,
) -> Iterator[tuple[str, SyntheticVideo]]:
    """Yields (video id, SyntheticVideo) for videos start_index .. start_index + num_videos - 1.

    These are exactly the videos `write_dataset` writes for the same arguments.
    """
    spec = spec or SyntheticDatasetSpec()
    patterns = make_class_patterns(num_classes, seed, spec.feature_sizes)
    for video_index in range(start_index, start_index + num_videos):
        yield (
            video_id(split, video_index),
            generate_video(video_rng(seed, split, video_index), patterns, spec),
        )


def visible_label_fraction(
    num_videos: int,
    num_classes: int,
    seed: int,
    split: str = "validate",
    spec: SyntheticDatasetSpec | None = None,
    frame_stride: int = 10,
) -> float:
    """The share of (video, label) pairs of a split whose label has an event covering one of
    the frames 0, j, 2j, ... (j = `frame_stride`): the labels a uniformly strided reader can see
    any evidence of. The others are invisible to it, whatever it is trained from.
    """
    pairs = visible = 0
    for _, video in iter_videos(num_videos, num_classes, seed, split=split, spec=spec):
        for label in video.labels:
            pairs += 1
            visible += any(
                event.class_index == label and (-event.start) % frame_stride < event.length
                for event in video.events
            )
    return visible / pairs if pairs else 0.0


def make_sequence_example(
    video_id_value: str, video: SyntheticVideo, video_id_key: str = "id"
) -> tf.train.SequenceExample:
    """Builds the YouTube-8M frame-level record of one video.

    Context: `video_id_key` (one bytes value) and `labels` (int64 list). Feature lists: one per
    feature, each frame one `bytes_list` holding the frame's uint8 values, as in the dataset.
    """
    context = {
        video_id_key: tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[video_id_value.encode("utf-8")])
        ),
        "labels": tf.train.Feature(int64_list=tf.train.Int64List(value=video.labels.tolist())),
    }
    feature_lists = {
        name: tf.train.FeatureList(
            feature=[
                tf.train.Feature(bytes_list=tf.train.BytesList(value=[row.tobytes()]))
                for row in frames
            ]
        )
        for name, frames in video.features.items()
    }
    return tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(feature_list=feature_lists),
    )


def shard_paths(output_dir: str, file_prefix: str, num_shards: int) -> list[str]:
    """The shard file names, e.g. `{output_dir}/train-00000-of-00004.tfrecord`."""
    return [
        os.path.join(output_dir, f"{file_prefix}-{shard:05d}-of-{num_shards:05d}.tfrecord")
        for shard in range(num_shards)
    ]


def validate_arguments(
    num_videos: int,
    num_shards: int,
    num_classes: int,
    seed: int,
    split: str,
    file_prefix: str,
    video_id_key: str,
    spec: SyntheticDatasetSpec,
) -> None:
    """Raises ValueError with a message naming the argument when the arguments cannot work."""
    if num_videos < 1:
        raise ValueError(f"num_videos must be >= 1, got {num_videos}.")
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}.")
    if num_shards > num_videos:
        raise ValueError(
            f"num_shards ({num_shards}) must be <= num_videos ({num_videos}): no empty shards."
        )
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}.")
    if not split or "/" in split:
        raise ValueError(f"split must be a non-empty name without '/', got {split!r}.")
    if not file_prefix or "/" in file_prefix:
        raise ValueError(f"file_prefix must be a non-empty name without '/', got {file_prefix!r}.")
    if not video_id_key or video_id_key == "labels":
        raise ValueError(f"video_id_key must be non-empty and not 'labels', got {video_id_key!r}.")
    spec.validate(num_classes)


def write_dataset(
    output_dir: str,
    num_videos: int,
    num_shards: int,
    num_classes: int,
    seed: int,
    split: str = "train",
    file_prefix: str | None = None,
    video_id_key: str = "id",
    spec: SyntheticDatasetSpec | None = None,
) -> list[str]:
    """Writes `num_videos` synthetic videos into `num_shards` TFRecord shards.

    Shard k holds a contiguous block of videos. Each shard is written under a temporary name in
    `output_dir` and renamed when complete, so a shard that exists is whole. `tf.io.gfile` is used
    throughout, so `output_dir` may be a `gs://` path.

    Args:
      output_dir: directory to write into (created if missing); existing shards of the same names
        are replaced.
      num_videos: videos to write, >= 1.
      num_shards: files to write, 1 <= num_shards <= num_videos.
      num_classes: size C of the label space; labels are in [0, C).
      seed: fixes the class patterns (shared by all splits) and, with `split`, the videos.
      split: name of the split, e.g. "train" or "validate": changes the videos and their ids but
        not the class patterns.
      file_prefix: shard name prefix; defaults to `split`.
      video_id_key: context key of the video id ("id" in 2018, "video_id" in 2017).
      spec: how videos look (defaults: `SyntheticDatasetSpec()`).

    Returns:
      The shard paths, in order.

    Raises:
      ValueError: when an argument is out of range; the message names it.
    """
    spec = spec or SyntheticDatasetSpec()
    if file_prefix is None:
        file_prefix = split
    validate_arguments(
        num_videos, num_shards, num_classes, seed, split, file_prefix, video_id_key, spec
    )
    tf.io.gfile.makedirs(output_dir)
    paths = shard_paths(output_dir, file_prefix, num_shards)
    patterns = make_class_patterns(num_classes, seed, spec.feature_sizes)
    for shard, path in enumerate(paths):
        first = shard * num_videos // num_shards
        last = (shard + 1) * num_videos // num_shards
        temporary_path = os.path.join(
            output_dir, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}"
        )
        try:
            with tf.io.TFRecordWriter(temporary_path) as writer:
                for video_index in range(first, last):
                    video = generate_video(video_rng(seed, split, video_index), patterns, spec)
                    example = make_sequence_example(
                        video_id(split, video_index), video, video_id_key
                    )
                    writer.write(example.SerializeToString(deterministic=True))
            tf.io.gfile.rename(temporary_path, path, overwrite=True)
        finally:
            if tf.io.gfile.exists(temporary_path):
                tf.io.gfile.remove(temporary_path)
    return paths
