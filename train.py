r"""Trains a model from the zoo on YouTube-8M TFRecords and writes checkpoints to --train_dir.

    python train.py --train_data_pattern='data/train*.tfrecord' --train_dir=/tmp/teacher \
        --model=HierarchicalTeacherModel
    python train.py --train_data_pattern='data/train*.tfrecord' --train_dir=/tmp/student \
        --model=DistilledStudentModel --frame_stride=10 [--teacher_train_dir=/tmp/teacher]

A student's default recipe (--distill_recipe=serial) trains its teacher first, in
/tmp/student/teacher, unless --teacher_train_dir names a trained one; --distill_recipe=paper
is the paper's joint scheme.

The command line only: flags -> config.RunConfig and config.TrainOptions -> a task (tasks.py)
-> the training loop (trainer.py), which documents checkpoints, resume and summaries. The
model's flags are written to `train_dir/model_flags.json`, so eval.py and inference.py rebuild
the same model without repeating them; when resuming, model flags not given on the command line
are taken from that file, and a given one that differs is an error.
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

from absl import flags, logging

import utils
from pipeline import corrupt_records, data_service_input, frame_selection
from runs import config, distribution, recipes, students
from serving import early_exit
from training import tasks, trainer


def define_flags(flag_values=flags.FLAGS):
    """The starter's training flags, plus the paper's model sizes."""
    flags.DEFINE_string(
        "train_data_pattern", "", "File glob of the training TFRecords.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "train_dir", "/tmp/yt8m_model/", "Where checkpoints and logs go.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "model", "HierarchicalTeacherModel", "Which model class to train.", flag_values=flag_values
    )
    flags.DEFINE_bool(
        "frame_features",
        True,
        "Frame-level (SequenceExample) input, else video.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "feature_names", "rgb,audio", "Comma-separated features to read.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "feature_sizes", "1024,128", "Their sizes, in the same order.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "num_classes", 3862, "Number of classes (3862 in YouTube-8M 2018).", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "max_frames", 300, "Frames beyond this are dropped.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "frame_stride", 1, "Read 1 frame in this many (j; k = 100/j %).", flag_values=flag_values
    )
    flags.DEFINE_enum(
        "frame_sampling",
        "uniform",
        list(frame_selection.FRAME_SAMPLINGS),
        "Which frames: uniform (0, j, 2j, ...; with --frames_per_video k equally spaced), "
        "random (as many, in time order), first, middle, last (as many consecutive frames "
        "there) or first_middle_last (a third at each).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "frame_sampling_seed",
        0,
        "Seed of random sampling at eval/inference.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "frames_per_video",
        0,
        "Read k frames of each video (all of a shorter one), whatever its length, instead of "
        "1 in --frame_stride (the follow-up paper's k). 0: use --frame_stride.",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "random_frame_offset",
        False,
        "Uniform sampling: in training each video's frames start at a random offset o, "
        "drawn anew every epoch: o, o + j, ... with o in [0, j) (with --frames_per_video=k, "
        "a phase in [0, N/k) of the spacing N/k of a video of N frames); eval and inference "
        "read from frame 0.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "video_id_key",
        "id",
        "Context key of the video id ('video_id' in 2017).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer("lstm_cells", 1024, "Cells per LSTM layer.", flag_values=flag_values)
    flags.DEFINE_integer("lstm_layers", 2, "LSTM layers at each level.", flag_values=flag_values)
    flags.DEFINE_float(
        "dropout", 0.5, "Dropout rate on the video representation.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "block_size", 20, "Frames per block of the hierarchical model (m).", flag_values=flag_values
    )
    flags.DEFINE_float(
        "l2_penalty", 1e-8, "L2 weight on the output layer's weights.", flag_values=flag_values
    )
    flags.DEFINE_enum(
        "classifier",
        "",
        ["", "logistic", "moe"],
        "Output layer: logistic (a sigmoid per class) or moe (the starter's mixture of "
        "experts). Empty: the model's published one (moe for NetVLAD, NeXtVLAD, DBoF).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "moe_num_mixtures", 2, "Experts per class of --classifier=moe.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "cluster_size",
        0,
        "Clusters of NetVLAD (rgb; audio half), NeXtVLAD (likewise) or DBoF's projection. "
        "0: the published 256, 128, 8192.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "hidden_size",
        0,
        "Hidden layer (the representation) of NetVLAD, NeXtVLAD, DBoF. 0: the published "
        "1024, 2048, 1024.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer("groups", 8, "NeXtVLAD: groups per frame.", flag_values=flag_values)
    flags.DEFINE_integer(
        "expansion", 2, "NeXtVLAD: frame width multiplier.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "gating_reduction", 8, "NeXtVLAD: context gating bottleneck.", flag_values=flag_values
    )
    flags.DEFINE_enum(
        "dbof_pooling", "max", ["max", "average"], "DbofModel: pooling.", flag_values=flag_values
    )
    flags.DEFINE_enum(
        "student_architecture",
        config.TEACHER_MODEL,
        list(config.STUDENT_ARCHITECTURES),
        "The model a DistilledStudentModel is built as. Default: the teacher's in "
        "--teacher_train_dir, else the hierarchical LSTM.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "exit_stages",
        1,
        "Read the frames coarse to fine in this many stages (every 4th of the model's frames, "
        "then every 2nd, then all, for 3), with an output after each, so that eval and "
        "inference can stop a video early (--exit_threshold), and a student is distilled "
        "after each. NetVLAD, NeXtVLAD and DBoF models (--student_architecture for a "
        "student). 1: one pass. Not given: the recipe's, 3 for a NeXtVLAD or NetVLAD student "
        "(--distill_recipe=serial), else 1.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "exit_calibration_data_pattern",
        "",
        "--exit_stages > 1: the videos the exit rule is calibrated on at the end of training "
        "(never the evaluation's). Empty: --train_data_pattern.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "exit_calibration_videos",
        early_exit.CALIBRATION_VIDEOS,
        "--exit_stages > 1: videos read for the exit rule's calibration.",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "distill_mode",
        "final",
        ["final", "intermediate"],
        "DistilledStudentModel: match the final representation, or also the lower-level "
        "outputs at the selected frames.",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "distill_weight",
        10.0,
        "Weight of ||E_T - E_S||^2 (averaged over dimensions).",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "intermediate_weight",
        1.0,
        "Weight of the intermediate term (--distill_mode=intermediate).",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "prediction_weight",
        0.0,
        "Weight of a prediction-level term in phase 1: the student's sigmoid outputs matched "
        "to the teacher's (cross-entropy with the teacher's as soft labels). 0: the paper's.",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "student_label_weight",
        0.0,
        "Weight of the student's own label loss in phase 1 (the paper's student meets the "
        "labels only when fine-tuned). 0: the paper's.",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "distill_recipe",
        recipes.DEFAULT_RECIPE,
        list(recipes.RECIPES),
        "How a DistilledStudentModel is distilled. serial: from a trained, frozen teacher "
        "(--teacher_train_dir, or its own, trained first in train_dir/teacher), on the teacher's "
        "representation and the labels, from random frame offsets (the best student measured). "
        "paper: the paper's joint scheme, representation only. A recipe "
        "sets --distill_weight, --prediction_weight, --student_label_weight and "
        "--random_frame_offset where they are not given.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "teacher_block_size",
        20,
        "Block size of the joint teacher, and of a serial student's own teacher.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "teacher_epochs",
        0,
        "Passes of a serial student's own teacher (0: --joint_epochs + --finetune_epochs).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "joint_epochs", 5, "Distillation phase 1: passes with the teacher.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "finetune_epochs",
        1,
        "Distillation phase 2: passes of the student alone.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "teacher_train_dir",
        "",
        "Distil from this trained, frozen teacher (serial) instead of training one.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "label_loss", "CrossEntropyLoss", "Loss class from losses.py.", flag_values=flag_values
    )
    flags.DEFINE_float(
        "regularization_penalty", 1.0, "Weight of the regularization loss.", flag_values=flag_values
    )
    flags.DEFINE_float(
        "clip_gradient_norm",
        1.0,
        "Clip each gradient to this norm (0: off).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer("batch_size", 256, "Videos per training batch.", flag_values=flag_values)
    flags.DEFINE_float(
        "base_learning_rate", 0.001, "Initial learning rate.", flag_values=flag_values
    )
    flags.DEFINE_float(
        "learning_rate_decay", 0.95, "Decay factor of the learning rate.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "learning_rate_decay_examples",
        4_000_000,
        "Examples between learning-rate decays.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer("num_epochs", 5, "Passes over the training data.", flag_values=flag_values)
    flags.DEFINE_integer(
        "max_steps", 0, "Stop after this many steps (0: no limit).", flag_values=flag_values
    )
    flags.DEFINE_bool(
        "start_new_model", False, "Delete train_dir and start a new model.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "export_model_steps",
        0,
        "Export a SavedModel every N steps (0: never).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "checkpoint_steps", 1000, "Save a checkpoint every N steps.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "checkpoint_secs",
        600,
        "Also save one whenever this many seconds have passed since the last: a kill loses at "
        "most this much work, whatever a step takes.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "log_every_n_steps", 100, "Print progress every N steps.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "max_checkpoints_to_keep", 5, "Older checkpoints are deleted.", flag_values=flag_values
    )
    flags.DEFINE_integer("num_readers", 4, "Shards read in parallel.", flag_values=flag_values)
    flags.DEFINE_integer(
        "shuffle_buffer_size", 1024, "Records held for shuffling.", flag_values=flag_values
    )
    flags.DEFINE_enum(
        "corrupt_record_policy",
        "fail",
        corrupt_records.CORRUPT_RECORD_POLICIES,
        corrupt_records.CORRUPT_RECORD_POLICY_HELP,
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "seed", 0, "Seed of the initialisation and of the shuffles.", flag_values=flag_values
    )
    flags.DEFINE_bool(
        "deterministic",
        False,
        "Make a --seed reproduce its run exactly: records read in a fixed order and "
        "TensorFlow's op determinism on (random frame sampling then draws in one thread). "
        "Costs some input throughput.",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "ordered_input",
        True,
        "Interleave the training shards in a fixed order, so that each epoch's batches are a "
        "function of --seed and the epoch and a resumed run takes exactly the batches the "
        "interrupted one had left. --noordered_input takes shards as they arrive (for slow "
        "storage; a resumed epoch's rest is then drawn anew).",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "strategy",
        "auto",
        distribution.STRATEGIES,
        distribution.STRATEGY_HELP,
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "mixed_precision",
        False,
        "Compute in float16 with float32 variables and dynamic loss scaling (for GPUs).",
        flag_values=flag_values,
    )
    data_service_input.define_flags(flag_values)


# Flags that only a DistilledStudentModel reads.
DISTILLATION_FLAGS = (
    "student_architecture",
    "teacher_train_dir",
    "joint_epochs",
    "finetune_epochs",
    "distill_mode",
    "distill_weight",
    "intermediate_weight",
    "prediction_weight",
    "student_label_weight",
    "teacher_block_size",
    "teacher_epochs",
    "distill_recipe",
)


def configure(flag_values):
    """The run's (RunConfig, TrainOptions, DistillOptions or None) from parsed flags.

    Raises:
      utils.UserInputError: for a missing or bad flag, or one the model would ignore.
    """
    options = config.TrainOptions.from_flags(flag_values)
    if not options.train_data_pattern:
        raise utils.UserInputError("--train_data_pattern is required.")
    requested = config.RunConfig.from_flags(flag_values)
    given = config.RunConfig.flags_given(flag_values)
    if requested.is_student:
        if "frame_stride" not in given and "frames_per_video" not in given:
            logging.warning(
                "--model=%s without --frame_stride reads every frame, as its teacher does; "
                "give --frame_stride=j to read 1 frame in j, or --frames_per_video=k.",
                requested.model,
            )
        requested = students.student_run_config(requested, given, flag_values.teacher_train_dir)
    else:
        # A model that is not a student has no recipe: it keeps the RunConfig's default.
        requested = requested.replace(distill_recipe=config.RunConfig.distill_recipe)
        ignored = [name for name in DISTILLATION_FLAGS if flag_values[name].present]
        if ignored:
            raise utils.UserInputError(
                f"--{ignored[0]} is for --model={config.STUDENT_MODEL}; "
                f"--model={requested.model} does not use it."
            )
    run_config = config.resolve_run_config(
        options.train_dir, requested, given, options.start_new_model
    )
    distill_options = None
    if run_config.is_student:
        distill_options = config.DistillOptions.from_flags(flag_values, run_config)
    return run_config, options, distill_options


def describe_result(result, train_dir):
    """The line train.py prints about one training (a stage of a run)."""
    if result["checkpoint"] is None:
        return (
            f"Stopped in phase {result['phase']} at step {result['global_step']}: the student "
            f"is not fine-tuned yet, so {train_dir} has no checkpoint for eval.py and "
            "inference.py. Rerun the same command to finish."
        )
    if not result["steps_run"]:
        return (
            f"Nothing to train: {train_dir} is at step {result['global_step']}. Raise "
            "--num_epochs (--joint_epochs, --finetune_epochs) or --max_steps to train further."
        )
    return f"Trained to step {result['global_step']}; checkpoint {result['checkpoint']}"


def describe_results(results, stages):
    """The lines train.py prints at the end: what each stage did, then how to evaluate the
    model once its training is done."""
    if len(stages) > 1 and not any(result["steps_run"] for result in results):
        done = ", ".join(
            f"the {stage.name} at step {result['global_step']} in {stage.options.train_dir}"
            for stage, result in zip(stages, results, strict=False)
        )
        lines = [
            f"Nothing to train: {done}. Raise --teacher_epochs, --joint_epochs or "
            "--finetune_epochs (or --max_steps) to train further."
        ]
    else:
        lines = [
            f"{stage.name.capitalize()}: {describe_result(result, stage.options.train_dir)}"
            if len(stages) > 1
            else describe_result(result, stage.options.train_dir)
            for stage, result in zip(stages, results, strict=False)
        ]
    if len(results) < len(stages):
        lines.append(
            f"Stopped in the {stages[len(results) - 1].name} stage, before the "
            f"{stages[len(results)].name}: rerun the same command to go on."
        )
    elif results[-1].get("finished") and results[-1]["checkpoint"]:
        lines.append(
            f"Evaluate it: python eval.py --train_dir={stages[-1].options.train_dir} "
            "--eval_data_pattern='<validation files>'"
        )
    return "\n".join(lines)


def calibrate_exits(run_config, options, results, flag_values):
    """For a model that reads in stages and has finished training, the exit rule calibrated on
    training videos (early_exit.py), written beside its checkpoints by the chief (the task that
    wrote them); the line train.py prints about it, or "" when there is nothing to calibrate."""
    finished = results and results[-1].get("finished") and results[-1]["checkpoint"]
    if run_config.exit_stages < 2 or not finished or not results[-1]["chief"]:
        return ""
    pattern = flag_values.exit_calibration_data_pattern or options.train_data_pattern
    calibration = early_exit.calibrate_train_dir(
        options.train_dir, pattern, flag_values.exit_calibration_videos, options.video_id_key
    )
    return (
        f"Exit rule calibrated on {calibration['videos']} videos of {pattern} "
        f"({early_exit.CALIBRATION_FILE}): give eval.py and inference.py --exit_threshold."
    )


def main(unused_argv):
    logging.set_verbosity(logging.INFO)
    with utils.exit_on_user_error():
        run_config, options, distill_options = configure(flags.FLAGS)
        stages = tasks.make_stages(run_config, options, distill_options)
        results = trainer.train_stages(stages)
        calibrated = calibrate_exits(run_config, options, results, flags.FLAGS)
    print(describe_results(results, stages))
    if calibrated:
        print(calibrated)


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
