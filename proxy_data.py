"""Command line: writes the real-label proxy, YouTube-8M frame-level records built around the
real video-level ones.

    python proxy_data.py --output_dir=/tmp/proxy            # DIR/train/ and DIR/validate/
    python proxy_data.py --output_dir=/tmp/proxy --top_classes=100 --max_videos=2000

What the proxy is and how its frames are made: datasets/proxy.py.
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

import os

from absl import flags

import utils
from datasets.proxy import (
    DEFAULT_INPUT_PATTERNS,
    NUM_CLASSES,
    SPLITS,
    FrameSpec,
    compute_train_statistics,
    write_proxy_dataset,
)


def define_flags(flag_values=flags.FLAGS):
    """The command line's flags."""
    defaults = FrameSpec()
    flags.DEFINE_string(
        "output_dir",
        "",
        "Directory (local or gs://); each split is written into OUTPUT_DIR/<split>/.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "splits", ",".join(SPLITS), "Comma-separated splits to write.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "train_data_pattern",
        DEFAULT_INPUT_PATTERNS["train"],
        "Real video-level records of the train split (also the source of the noise scale and "
        "the class frequencies).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "validate_data_pattern",
        DEFAULT_INPUT_PATTERNS["validate"],
        "Real video-level records of the held-out validate split.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer("num_shards", 4, "TFRecord files per split.", flag_values=flag_values)
    flags.DEFINE_integer(
        "max_videos", 0, "Keep the first N videos of each split (0: all).", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "top_classes",
        0,
        "Keep the videos having one of the N most frequent training classes and only those "
        "labels (class ids unchanged: --num_classes stays 3862); 0: all.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "min_frames", defaults.min_frames, "Fewest frames a video.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "max_frames", defaults.max_frames, "Most frames a video.", flag_values=flag_values
    )
    flags.DEFINE_float(
        "mean_shot_length",
        defaults.mean_shot_length,
        "Mean shot length in frames (geometric lengths).",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "shot_noise",
        defaults.shot_noise,
        "Sd of a shot's offset, in units of each dimension's sd across the training means.",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "frame_noise",
        defaults.frame_noise,
        "Sd of each frame's own noise, in the same units.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "seed", 0, "Fixes the frames (with the split and video index).", flag_values=flag_values
    )


def main(argv, flag_values=None):
    """CLI: writes each split into OUTPUT_DIR/<split>/ and prints the shards; an error a user
    can cause is one `ERROR:` line and exit status 1."""
    flag_values = flags.FLAGS if flag_values is None else flag_values
    with utils.exit_on_user_error():
        if len(argv) > 1:
            raise utils.UserInputError(f"unexpected arguments: {' '.join(argv[1:])}")
        if not flag_values.output_dir:
            raise utils.UserInputError("--output_dir is required.")
        splits = [split.strip() for split in flag_values.splits.split(",") if split.strip()]
        unknown = sorted(set(splits) - set(SPLITS))
        if not splits or unknown:
            raise utils.UserInputError(
                f"--splits must name some of {', '.join(SPLITS)}, got '{flag_values.splits}'."
            )
        if flag_values.max_videos < 0 or flag_values.top_classes < 0:
            raise utils.UserInputError("--max_videos and --top_classes must be >= 0 (0: all).")
        # Checked before the training records are read.
        FrameSpec(
            flag_values.min_frames,
            flag_values.max_frames,
            flag_values.mean_shot_length,
            flag_values.shot_noise,
            flag_values.frame_noise,
        ).validate()
        statistics = compute_train_statistics(flag_values.train_data_pattern)
        input_patterns = {
            "train": flag_values.train_data_pattern,
            "validate": flag_values.validate_data_pattern,
        }
        for split in dict.fromkeys(splits):
            split_dir = os.path.join(flag_values.output_dir, split)
            written = write_proxy_dataset(
                split_dir,
                split,
                input_pattern=input_patterns[split],
                num_shards=flag_values.num_shards,
                max_videos=flag_values.max_videos or None,
                top_classes=flag_values.top_classes or None,
                min_frames=flag_values.min_frames,
                max_frames=flag_values.max_frames,
                mean_shot_length=flag_values.mean_shot_length,
                shot_noise=flag_values.shot_noise,
                frame_noise=flag_values.frame_noise,
                seed=flag_values.seed,
                statistics=statistics,
            )
            for path in written.paths:
                print(path)
            print(
                f"Wrote the {split} split: {written.num_videos} videos in "
                f"{len(written.paths)} shards (seed {flag_values.seed}) to {split_dir}; read it "
                f"with --num_classes={NUM_CLASSES}.",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
