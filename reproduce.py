r"""Trains and evaluates the paper's whole grid on one data set: its Table 1, Table 2 and two plots.

    python reproduce.py --output_dir=reproduce_out               (what `make reproduce` runs)
    python reproduce.py --preset=paper --train_data_pattern='gs://.../train*.tfrecord' \
        --eval_data_pattern='gs://.../validate*.tfrecord' --output_dir=gs_grid

The grid (names as in the paper's Table 1; k = % of the frames read, j = 100 / k the stride):
- TEACHER-FULL: `HierarchicalTeacherModel` over every frame, blocks of `teacher_block_size` (20).
- TEACHER-UNIFORM-k and TEACHER-RANDOM-k: the same architecture trained from scratch on 1 frame
  in j (`frame_stride=j`, `frame_sampling=uniform|random`), no distillation. They use the
  student's block size (5), not the teacher's: a baseline then differs from its student only in
  how it is trained, and a block of 20 strided frames would span 20 j seconds of video.
- STUDENT-k-FINAL and STUDENT-k-INTERMEDIATE: `DistilledStudentModel` (block 5, 1 frame in j),
  `distill_mode=final|intermediate`. `--distill_scheme=joint` (the default, the paper's) trains
  a teacher, the student and a shared output layer together for `joint_epochs`, then fine-tunes
  the student alone for `finetune_epochs`; `serial` distils from this grid's TEACHER-FULL, frozen.
k in {5, 10, 25, 50} (`--ks`) gives 1 + 4 x 4 = 17 models (`--methods` narrows the four methods; the
teacher is always in). Every model gets the same number of
passes over the training data: the teachers and baselines train joint_epochs + finetune_epochs
epochs, the students joint_epochs + finetune_epochs.

Families (`--families`, runs.config.FAMILIES): every model of a grid is one family's
architecture; `hierarchical` (the paper's, the default), `nextvlad`, `netvlad` or `dbof`. For the
last three TEACHER-FULL is that model over every frame, TEACHER-UNIFORM-k the same model on 1
frame in j and STUDENT-k-DEFAULT a DistilledStudentModel built as it; the paper's intermediate
students and joint scheme are the hierarchical family's. Several families each get their own
grid in `--output_dir/FAMILY/`, sharing `--output_dir/data/`. `--methods` also takes the
follow-up's frame-selection baselines (first, middle, last, first_middle_last), not run by
default.

The code: grid.py defines the grid (methods, models, presets, settings, each model's flags),
grid_runner.py trains, evaluates and reuses its models, grid_report.py writes results.md and
the plots; this file is the command line.

Data: without `--train_data_pattern`/`--eval_data_pattern`, `--data` chooses what is written to
`output_dir/data/<one directory per data configuration>` (and reused when it exists), in the
exact YouTube-8M frame-level format: `synthetic` (synthetic_data.py; labels come from short
events, so skipped frames cost accuracy) or `proxy` (proxy_data.py: the real ids, labels and
mean features of the train and held-out real samples, frames synthesized around them with
`--proxy_shot_noise` and `--proxy_frame_noise`, by default 0 and 2: frame-level noise only, the
setting in which frames 0, j, 2j lose the most (UNIFORM-10 2-5 % below the teacher, as in the
paper); `--proxy_top_classes` keeps the most frequent classes). With both patterns, any
YouTube-8M frame-level data.

Seeds: `--seeds=N` trains every model N times, with training seeds --seed, --seed + 1, ...
(initialisation, shuffles, frames drawn) on the same data; each seed's run is deterministic
(`TrainOptions.deterministic`), so a seed reproduces its figures. The small preset runs 3.

Outputs in `--output_dir` (grid_runner.py writes the models, config.json and results.json;
grid_report.py the tables and plots):
- `models/NAME/seedS/`: each model's train dir for training seed S (checkpoints,
  model_flags.json, eval_metrics.json).
- `config.json`: the preset, data and sizes of this grid. A rerun with other settings is refused.
- `results.json`: `models`, one entry per model and seed: `name`, `method`, `k`, `seed`,
  `frame_stride`, `gap`,
  `avg_hit_at_one`, `avg_perr`, `map`, `avg_loss`, `eval_videos`, `eval_seconds` (eval.py's
  whole evaluation, tracing included), `videos_per_second` (eval_videos / eval_seconds),
  `inference_seconds` (a warm forward pass over the eval set, the fastest of four after a
  first that traces: reading and the model, no tracing, no metrics), `train_seconds`, `global_step`,
  `checkpoint`, `commit` (the source it ran on); `summary`, per model name: `n`, `seeds` and
  `<metric>_mean`, `<metric>_std` over the seeds; `machine` (CPU, cores, TensorFlow).
- `results.md`: Table 1 (Hit@1, PERR, mAP, GAP, mean ± std over the seeds; ours beside the
  paper's), each student against its baselines (the GAP difference, two standard errors, and the
  share of the UNIFORM-k -> TEACHER-FULL gap it closes) and Table 2 (eval time of TEACHER-FULL
  and of the k % models, seconds and fraction of the teacher's; the paper's hours).
- `gap_vs_frames.png`, `time_vs_frames.png`.
- A model that reads in exit stages (`--exit_stages`; the NeXtVLAD and NetVLAD families'
  STUDENT-k-DEFAULT) is also evaluated at each of `--exit_thresholds` after its exit rule is
  calibrated on the training videos (`exit_calibration.json` in its directory): its
  results.json entries get
  `exit_sweep` (GAP, frames read per video and the share stopping after each stage, first
  with every stage read), results.md a table "Stopping videos early", and gap_vs_frames.png
  its curve of GAP against the % of frames read.
All are replaced atomically (temporary name, then rename). results.json is rewritten after each
model, and a rerun reuses every model it lists whose checkpoint is still there; a model that
was stopped mid-training resumes from its checkpoints (the training loop, trainer.py, resumes).

Presets (`--preset`, grid.PRESETS; any size can be overridden by its flag):

| preset | train / eval videos | classes | LSTM | batch | epochs (joint + fine-tune) | lr |
|---|---|---|---|---|---|---|
| small | 3,000 / 1,000 synthetic, 60-300 frames | 10 | 64 x 2 | 32 | 3 + 1 | 0.003 |
| small, `--data=proxy` | the proxy's 5,900 / 1,202 | 3,862 | 64 x 2 | 32 | 9 + 1 | 0.01 |
| paper | real, or 10,000 / 2,000 synthetic | 3,862 (real), 10 | 1,024 x 2 | 256 | 4 + 1 | 0.001 |

Both decay the learning rate by 0.95 every 4,000,000 examples (the starter's schedule; never
reached on the small set), teacher blocks 20, student and baseline blocks 5, dropout 0.5,
distillation weights 10 (final) and 1 (intermediate). On the proxy the small LSTMs need the
higher rate: at 0.003 they predict the class priors for about 4 passes before learning.
`tiny` is the tests' grid: seconds per model, figures without meaning.

The small preset, measured on 2 CPU cores (tensorflow-cpu 2.21.0): `reproduce.py --ks=10
--seeds=3` on a fresh directory, 1,230 s for 5 models x 3 seeds, deterministic training
(TEACHER-FULL trains in 54-87 s, a baseline in 19-23 s, a student in 52-109 s; the data, 34 s);
one seed of the whole grid (17 models) took 13 min 23 s before training was made deterministic.
Its GAPs are in README.md (results/grid_synthetic). On the proxy (`--data=proxy
--proxy_top_classes=100 --ks=10 --seeds=3`, 9 + 1 passes): writing the data 76 s, TEACHER-FULL
204-237 s, a baseline 54-88 s, a student 198-287 s; 2,373 s for the 13 models left after seed
1's teacher and UNIFORM-10 were reused, about 45 min for all 15 (results/grid_proxy).
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

import os
import time

import tensorflow as tf
from absl import app, flags, logging

import utils
from experiments import grid, grid_report, grid_runner
from runs.config import FAMILIES


def define_flags(flag_values=flags.FLAGS):
    """The CLI's flags. Size flags left unset take the preset's value."""
    flags.DEFINE_string(
        "output_dir", "reproduce_out", "Where data, models and results go.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "preset", "small", "Sizes of the grid: small or paper.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "ks",
        ",".join(str(k) for k in grid.DEFAULT_KS),
        "Comma list of k (% of frames read; 100/k integer).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "families",
        "hierarchical",
        "Comma list of model families, each a grid of its own: hierarchical (the paper's), "
        "netvlad, nextvlad, dbof. One family writes to --output_dir; several to "
        "--output_dir/FAMILY, sharing --output_dir/data.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "methods",
        ",".join(grid.DEFAULT_METHODS),
        "Comma list of the methods run at each k: uniform, random, final, intermediate "
        "(the paper's), default (train.py's default recipe), first, middle, last, "
        "first_middle_last (the follow-up's frame-selection baselines; not run by default). "
        "TEACHER-FULL is always in the grid.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "exit_thresholds",
        "0.5,0.8,0.9,0.95",
        "Comma list of exit thresholds (agreement targets in [0, 1], eval.py's "
        "--exit_threshold) at which each model that reads in exit stages (the NeXtVLAD and "
        "NetVLAD families' STUDENT-k-DEFAULT) is evaluated again, after calibrating its exit "
        "rule on the training videos: the 'Stopping videos early' table and the curve of GAP "
        "against frames read. Empty: none.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "distill_scheme",
        "joint",
        "joint: teacher and student trained together (the paper); "
        "serial: distil from this grid's trained TEACHER-FULL.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "train_data_pattern",
        "",
        "Real training TFRecords (else synthetic).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "eval_data_pattern",
        "",
        "Real evaluation TFRecords (else synthetic).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "feature_names", "rgb,audio", "Frame features read.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "feature_sizes", "1024,128", "Their sizes, in the same order.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "video_id_key",
        "id",
        "Context key of the video id ('video_id' in 2017).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "seed",
        1,
        "Seed of the synthetic data, the initialisation and shuffles.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "data",
        "synthetic",
        "The grid's data when no patterns are given: synthetic (synthetic_data.py: labels from "
        "short events) or proxy (proxy_data.py: real YouTube-8M ids, labels and mean features, "
        "frames synthesized around them).",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "proxy_shot_noise",
        0.0,
        "The proxy's shot-level variation, in each dimension's sd across videos (the default "
        "and --proxy_frame_noise's are calibrated: UNIFORM-10 then loses 2-5 % GAP).",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "proxy_frame_noise",
        2.0,
        "The proxy's frame-level variation, in the same units.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "proxy_top_classes",
        0,
        "Keep the proxy's videos of the N most frequent classes and only those labels (0: all).",
        flag_values=flag_values,
    )
    for name, default, help_text in (
        ("distill_weight", 10.0, "Students: weight of ||E_T - E_S||^2."),
        ("intermediate_weight", 1.0, "INTERMEDIATE students: weight of the lower-level term."),
        ("prediction_weight", 0.0, "Students: weight of matching the teacher's sigmoids."),
        ("student_label_weight", 0.0, "Students: weight of their own label loss in phase 1."),
    ):
        flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
    flags.DEFINE_bool(
        "align_teacher_blocks",
        False,
        "Joint students: their teacher's blocks are the student's blocks in video frames "
        "(student block x j), so the intermediate term compares the same spans (not the paper's).",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "random_frame_offset",
        False,
        "UNIFORM-k baselines and students train on frames o, o + j, ... from a random offset o "
        "per video and epoch (evaluation still reads 0, j, 2j, ...; not the paper's).",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "dbof_pooling",
        None,
        ["max", "average"],
        "The DBoF family's pooling over frames (default: average, grid.DBOF_GRID_POOLING; max is "
        "the starter's, better where labels hang on brief events).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "seeds",
        None,
        "Training seeds per model: --seed, --seed + 1, ... (preset: 3 small, 1 paper). The "
        "data is the same for every seed.",
        flag_values=flag_values,
    )
    for name, help_text in grid.SIZE_FLAG_HELP.items():
        if name == "base_learning_rate":
            flags.DEFINE_float(name, None, help_text, flag_values=flag_values)
        else:
            flags.DEFINE_integer(name, None, help_text, flag_values=flag_values)


def parse_families(text):
    """Parses `--families`: a comma list of runs.config.FAMILIES, in the order given.

    Raises:
      utils.UserInputError: naming --families and the bad value.
    """
    families = []
    for item in text.split(","):
        family = item.strip()
        if family not in FAMILIES:
            raise utils.UserInputError(
                f"--families={text}: '{family}' is not one of {', '.join(FAMILIES)}."
            )
        if family not in families:
            families.append(family)
    return families


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    flag_values = flags.FLAGS
    if not flag_values["verbosity"].present:
        # One line per model; each model's own progress lines with --verbosity=0.
        logging.set_verbosity(logging.WARNING)
        tf.get_logger().setLevel("ERROR")  # a new tf.function per model is expected
    start = time.time()
    with utils.exit_on_user_error():
        ks = grid.parse_ks(flag_values.ks)
        methods = grid.parse_methods(flag_values.methods)
        families = parse_families(flag_values.families)
        exit_thresholds = grid_runner.parse_exit_thresholds(flag_values.exit_thresholds)
        configs = [
            grid.resolve_config(
                preset=flag_values.preset,
                distill_scheme=flag_values.distill_scheme,
                train_data_pattern=flag_values.train_data_pattern,
                eval_data_pattern=flag_values.eval_data_pattern,
                feature_names=flag_values.feature_names,
                feature_sizes=flag_values.feature_sizes,
                video_id_key=flag_values.video_id_key,
                seed=flag_values.seed,
                data=flag_values.data,
                proxy_shot_noise=flag_values.proxy_shot_noise,
                proxy_frame_noise=flag_values.proxy_frame_noise,
                proxy_top_classes=flag_values.proxy_top_classes,
                distill_weight=flag_values.distill_weight,
                intermediate_weight=flag_values.intermediate_weight,
                prediction_weight=flag_values.prediction_weight,
                student_label_weight=flag_values.student_label_weight,
                align_teacher_blocks=flag_values.align_teacher_blocks,
                random_frame_offset=flag_values.random_frame_offset,
                family=family,
                dbof_pooling=flag_values.dbof_pooling,
                **{name: flag_values[name].value for name in grid.SIZE_FLAG_HELP},
            )
            for family in families
        ]
        for config in configs:  # every refusal before anything is trained
            grid.check_methods_for_family(config, methods)
        seeds = grid.training_seeds(configs[0], flag_values.seeds)
        print(grid_report.describe_data(configs[0]), flush=True)
        for config in configs:
            output_dir = flag_values.output_dir
            if len(configs) > 1:
                output_dir = os.path.join(flag_values.output_dir, config.family)
                print(f"[{config.family}] the {config.family} family's grid", flush=True)
            outcome = grid_runner.run_grid(
                config,
                ks,
                output_dir,
                report=lambda line: print(line, flush=True),
                methods=methods,
                seeds=seeds,
                data_root=flag_values.output_dir,
                exit_thresholds=exit_thresholds,
            )
            print()
            print(grid_report.format_markdown(config, outcome["results"]))
            print(
                f"Results in {output_dir} ({grid_runner.RESULTS_FILE}, "
                f"{grid_report.RESULTS_MARKDOWN_FILE}, {grid_report.GAP_PLOT_FILE}, "
            )
            print(
                f"{grid_report.TIME_PLOT_FILE}); {len(outcome['trained'])} model(s) trained or "
                "evaluated this run, "
            )
    print(f"{time.time() - start:.0f} s in all.")


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
