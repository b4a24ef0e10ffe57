"""Command line: writes a synthetic data set in the YouTube-8M 2018 frame-level format.

  python synthetic_data.py --output_dir=/tmp/syn --num_videos=4000 --num_shards=4 --split=train
  python synthetic_data.py --output_dir=/tmp/syn --num_videos=1000 --num_shards=2 --split=validate

How the videos are made: datasets/synthetic.py.
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

import sys

from absl import app, flags

from datasets.synthetic import SyntheticDatasetSpec, write_dataset


def define_flags(flag_values=flags.FLAGS):
    flags.DEFINE_string(
        "output_dir",
        None,
        "Directory (local or gs://) to write the shards into.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer("num_videos", 1000, "Number of videos to write.", flag_values=flag_values)
    flags.DEFINE_integer("num_shards", 4, "Number of TFRecord files.", flag_values=flag_values)
    flags.DEFINE_integer(
        "num_classes",
        15,
        "Number of classes; pass the same --num_classes to train and eval.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "seed",
        0,
        "Fixes the class patterns (shared by all splits) and videos.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "split",
        "train",
        "Split name (train, validate, ...): changes the videos, not the patterns.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "file_prefix", None, "Shard name prefix; defaults to --split.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "video_id_key", "id", "Context key of the video id.", flag_values=flag_values
    )
    defaults = SyntheticDatasetSpec()
    flags.DEFINE_string(
        "feature_names",
        ",".join(defaults.feature_names),
        "Frame features.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "feature_sizes",
        ",".join(str(s) for s in defaults.feature_sizes),
        "Their sizes.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "min_frames", defaults.min_frames, "Fewest frames per video.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "max_frames", defaults.max_frames, "Most frames per video.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "min_labels", defaults.min_labels, "Fewest labels per video.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "max_labels", defaults.max_labels, "Most labels per video.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "min_events_per_label",
        defaults.min_events_per_label,
        "Fewest events per label.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "max_events_per_label",
        defaults.max_events_per_label,
        "Most events per label.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "min_event_length",
        defaults.min_event_length,
        "Shortest event, frames.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "max_event_length",
        defaults.max_event_length,
        "Longest event, frames.",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "event_amplitude",
        defaults.event_amplitude,
        "Event strength in noise-sd units.",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "class_skew",
        defaults.class_skew,
        "0: uniform classes; >0: long tail.",
        flag_values=flag_values,
    )


def _spec_from_flags(flag_values):
    names = tuple(name.strip() for name in flag_values.feature_names.split(","))
    try:
        sizes = tuple(int(size) for size in flag_values.feature_sizes.split(","))
    except ValueError:
        raise ValueError(
            f"feature_sizes must be comma-separated integers, got {flag_values.feature_sizes!r}."
        ) from None
    return SyntheticDatasetSpec(
        feature_names=names,
        feature_sizes=sizes,
        min_frames=flag_values.min_frames,
        max_frames=flag_values.max_frames,
        min_labels=flag_values.min_labels,
        max_labels=flag_values.max_labels,
        min_events_per_label=flag_values.min_events_per_label,
        max_events_per_label=flag_values.max_events_per_label,
        min_event_length=flag_values.min_event_length,
        max_event_length=flag_values.max_event_length,
        event_amplitude=flag_values.event_amplitude,
        class_skew=flag_values.class_skew,
    )


def main(argv, flag_values):
    """CLI: writes the shards and prints where; a bad argument is a one-line error, exit 1."""
    if len(argv) > 1:
        print(f"error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        return 1
    try:
        if not flag_values.output_dir:
            raise ValueError("output_dir must be given (--output_dir=DIR).")
        spec = _spec_from_flags(flag_values)
        paths = write_dataset(
            output_dir=flag_values.output_dir,
            num_videos=flag_values.num_videos,
            num_shards=flag_values.num_shards,
            num_classes=flag_values.num_classes,
            seed=flag_values.seed,
            split=flag_values.split,
            file_prefix=flag_values.file_prefix,
            video_id_key=flag_values.video_id_key,
            spec=spec,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    shards = f"{len(paths)} shard" + ("" if len(paths) == 1 else "s")
    print(
        f"Wrote {flag_values.num_videos} videos ({flag_values.split}, seed {flag_values.seed}, "
        f"{flag_values.num_classes} classes) into {shards} in {flag_values.output_dir}."
    )
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(lambda argv: main(argv, flags.FLAGS))
