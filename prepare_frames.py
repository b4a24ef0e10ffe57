r"""Writes a student's frame cache: the full frame-level records cut to the frames it reads.

    python prepare_frames.py --input_data_pattern='data/train*.tfrecord' \
        --output_dir=data/stride10 --frame_stride=10

The command line of frame_cache.py. A model with `--frame_stride=10` (uniform selection) then
reads `data/stride10/train*.tfrecord` wherever it read the full records (train.py's fine-tuning,
eval.py, inference.py) and reads about a tenth of the bytes. The cache is a set of ordinary
YouTube-8M frame-level TFRecords with `frame_stride` and `original_num_frames` added to each
record's context. It holds frames 0, j, 2j, ... only, so every other model refuses it: another
stride, a teacher, any other `--frame_sampling` (random, first, middle, last,
first_middle_last) and a count of frames (`--frames_per_video`, whose frames depend on each
video's length).
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

from absl import flags, logging

import utils
from pipeline import corrupt_records, frame_cache


def define_flags(flag_values=flags.FLAGS):
    flags.DEFINE_string(
        "input_data_pattern",
        "",
        "File glob of the full frame-level TFRecords (local or gs://).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "output_dir", "", "Where the cache is written (local or gs://).", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "frame_stride",
        10,
        "The --frame_stride of the model that will read the cache (>= 2; uniform sampling, "
        "no --frames_per_video).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "num_shards",
        0,
        "Output shards; 0: one per input file, under the input file's name.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer("num_readers", 4, "Input files read in parallel.", flag_values=flag_values)
    flags.DEFINE_string(
        "feature_names", "rgb,audio", "The feature lists to keep.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "video_id_key", "id", "Context key of the video id.", flag_values=flag_values
    )
    flags.DEFINE_enum(
        "corrupt_record_policy",
        "fail",
        corrupt_records.CORRUPT_RECORD_POLICIES,
        corrupt_records.CORRUPT_RECORD_POLICY_HELP,
        flag_values=flag_values,
    )


def main(unused_argv):
    flag_values = flags.FLAGS
    logging.set_verbosity(logging.INFO)
    with utils.exit_on_user_error():
        if not flag_values.input_data_pattern:
            raise utils.UserInputError("--input_data_pattern is required.")
        if not flag_values.output_dir:
            raise utils.UserInputError("--output_dir is required.")
        paths, skipped, written = frame_cache.write_frame_cache(
            flag_values.input_data_pattern,
            flag_values.output_dir,
            flag_values.frame_stride,
            num_shards=flag_values.num_shards or None,
            corrupt_record_policy=flag_values.corrupt_record_policy,
            num_readers=flag_values.num_readers,
            video_id_key=flag_values.video_id_key,
            feature_names=flag_values.feature_names,
        )
    left_out = f" {skipped.describe()}" if skipped.count else ""
    print(
        f"Wrote the --frame_stride={flag_values.frame_stride} frame cache of {written} videos "
        f"to {len(paths)} shard(s) in {flag_values.output_dir}.{left_out}"
    )


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
