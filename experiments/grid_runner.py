"""Runs the grid: writes its data, trains and evaluates each model, reuses finished ones.

`run_grid` fills an output directory: `config.json` (the GridConfig; another grid in the same
directory is refused), `data/` (the synthetic splits, written once), `models/NAME/seedS/` (each
model's train dir for training seed S, with `trained.json` naming the checkpoint its training
finished at), `results.json` (one entry per model and seed, and their summary, rewritten after
each) and, at the end, the reports of grid_report.py. Models are trained by the training loop
(trainer.py, tasks.py), evaluated by evaluator.py, and timed on a warm forward pass of the
model that checkpoints.py restores.
"""

import dataclasses
import gc
import json
import os
import time

import tensorflow as tf

import eval_util
import readers
import utils
from datasets import proxy, synthetic
from experiments import grid, grid_report
from pipeline import corrupt_records
from runs import checkpoints
from runs.config import RunConfig, resolve_run_config
from serving import early_exit, evaluator
from training import tasks, trainer

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"
TRAINED_MARKER_FILE = "trained.json"
# The exit threshold of a sweep's reference point: every video reads every stage.
EVERY_STAGE = -1.0


def check_config(output_dir, config):
    """Refuses an output_dir that holds a grid with other settings; writes config.json.

    Returns:
      True when output_dir already held this configuration (its results may be reused).
    """
    path = os.path.join(output_dir, CONFIG_FILE)
    wanted = dataclasses.asdict(config)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as handle:
            stored = json.load(handle)
        # A setting added since the directory was written counts as its default there.
        defaults = {
            field.name: field.default
            for field in dataclasses.fields(config)
            if field.default is not dataclasses.MISSING
        }
        stored = {**defaults, **stored}
        differences = [
            f"{name} {stored.get(name)!r} (now {wanted.get(name)!r})"
            for name in sorted(set(stored) | set(wanted))
            if stored.get(name) != wanted.get(name)
        ]
        if differences:
            raise utils.UserInputError(
                f"--output_dir={output_dir} holds a grid run with other settings: "
                f"{'; '.join(differences)}. Use another --output_dir, or delete this one to "
                "start over."
            )
        return True
    tf.io.gfile.makedirs(output_dir)
    write_json(path, wanted)
    return False


def prepare_data(output_dir, config, report):
    """The train and eval file patterns: the user's, or a synthetic set written (once) here.

    Synthetic splits go to `output_dir/data/<split>-<videos>-<classes>-<frames>-<features>-seed`,
    one directory per configuration, each marked COMPLETE when whole and then reused.
    """
    if config.data == "files":
        return {"train": config.train_data_pattern, "eval": config.eval_data_pattern}
    if config.data == "proxy":
        return prepare_proxy_data(output_dir, config, report)
    names, widths = utils.get_list_of_feature_names_and_sizes(
        config.feature_names, config.feature_sizes
    )
    spec = synthetic.SyntheticDatasetSpec(
        feature_names=tuple(names),
        feature_sizes=tuple(widths),
        min_frames=config.synthetic_min_frames,
        max_frames=config.synthetic_max_frames,
        max_labels=min(5, config.num_classes),
    )
    features = "-".join(f"{name}{width}" for name, width in zip(names, widths, strict=True))

    def directory_name(split, num_videos):
        return (
            f"{split}-{num_videos}videos-{config.num_classes}classes-"
            f"{spec.min_frames}to{spec.max_frames}frames-{features}-seed{config.seed}"
        )

    def write_split(split, split_dir, num_videos):
        num_shards = max(1, min(8, num_videos // 150))
        try:
            synthetic.write_dataset(
                split_dir,
                num_videos,
                num_shards,
                config.num_classes,
                seed=config.seed,
                split=split,
                video_id_key=config.video_id_key,
                spec=spec,
            )
        except ValueError as error:
            raise utils.UserInputError(f"synthetic {split} split: {error}") from None
        return f"{num_videos} synthetic videos in {num_shards} shard(s)"

    return write_splits_once(output_dir, config, directory_name, write_split, report)


def prepare_proxy_data(output_dir, config, report):
    """The train and eval patterns of the real-label proxy (proxy_data.py), written (once) to
    `output_dir/data/proxy-<split>-<noise>-<classes>-<videos>-seed`, each marked COMPLETE when
    whole. The train split is the real `yt8m_2018_video_train_real` sample, the eval split the
    held-out `yt8m_2018_video_sample`."""
    statistics = None  # the training split's statistics, computed once for both splits

    def directory_name(split, num_videos):
        return (
            f"proxy-{split}-shot{config.proxy_shot_noise:g}-frame{config.proxy_frame_noise:g}-"
            f"top{config.proxy_top_classes or 'all'}-{num_videos or 'all'}videos-"
            f"seed{config.seed}"
        )

    def write_split(split, split_dir, num_videos):
        nonlocal statistics
        if statistics is None:
            statistics = proxy.compute_train_statistics()
        written = proxy.write_proxy_dataset(
            split_dir,
            split,
            num_shards=8 if split == "train" else 4,
            max_videos=num_videos or None,
            top_classes=config.proxy_top_classes or None,
            shot_noise=config.proxy_shot_noise,
            frame_noise=config.proxy_frame_noise,
            seed=config.seed,
            statistics=statistics,
        )
        return f"real-label proxy, {written.num_videos} videos in {len(written.paths)} shard(s)"

    return write_splits_once(output_dir, config, directory_name, write_split, report)


def write_splits_once(output_dir, config, directory_name, write_split, report):
    """The train and eval patterns of data the grid writes itself: each split goes to
    `output_dir/data/<directory_name(split, videos)>`, marked COMPLETE when whole and reused
    when marked.

    Args:
      directory_name: (split, num_videos) -> the split's directory name.
      write_split: (split, directory, num_videos) -> a description of what it wrote.
    """
    patterns = {}
    for role, split, num_videos in (
        ("train", "train", config.num_train_videos),
        ("eval", "validate", config.num_eval_videos),
    ):
        split_dir = os.path.join(output_dir, "data", directory_name(split, num_videos))
        patterns[role] = os.path.join(split_dir, f"{split}-*.tfrecord")
        marker = os.path.join(split_dir, "COMPLETE")
        if tf.io.gfile.exists(marker):
            report(f"[data] {split}: reusing {split_dir}")
            continue
        start = time.time()
        written = write_split(split, split_dir, num_videos)
        utils.write_text_atomically(marker, "written\n")
        report(f"[data] {split}: {written}, {time.time() - start:.0f} s")
    return patterns


def read_json(path, default):
    if not tf.io.gfile.exists(path):
        return default
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def write_json(path, value):
    utils.write_text_atomically(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def latest_checkpoint_name(model_dir):
    """The basename of the latest checkpoint in `model_dir` (e.g. `ckpt-252`), or None."""
    latest = tf.train.latest_checkpoint(model_dir) if tf.io.gfile.isdir(model_dir) else None
    return os.path.basename(latest) if latest else None


def train_model(model, config, model_dir, train_pattern, teacher_dir, seed):
    """Trains one grid model with training seed `seed` to the end (resuming it) unless its
    trained.json says it is done.

    Returns:
      (train seconds, True when this call trained).
    """
    marker = read_json(os.path.join(model_dir, TRAINED_MARKER_FILE), None)
    if marker and marker["checkpoint"] == latest_checkpoint_name(model_dir):
        return marker["train_seconds"], False
    requested = grid.run_config_for(model, config)
    run_config = resolve_run_config(
        model_dir, requested, set(RunConfig.flag_names()), start_new_model=False
    )
    options = grid.train_options_for(config, model_dir, train_pattern, seed)
    task = tasks.make_task(run_config, grid.distill_options_for(config, teacher_dir, model))
    start = time.time()
    trained = trainer.train(task, options)
    train_seconds = time.time() - start
    write_json(
        os.path.join(model_dir, TRAINED_MARKER_FILE),
        {
            "checkpoint": os.path.basename(trained["checkpoint"]),
            "global_step": trained["global_step"],
            "train_seconds": train_seconds,
        },
    )
    return train_seconds, True


def time_inference(model_dir, eval_pattern, batch_size, video_id_key, timed_passes):
    """Seconds of a warm forward pass over the eval set (reading and the model, no metrics).

    A first pass traces the compiled forward for the batch shapes; the fastest of the next
    `timed_passes` is returned (the other work on the machine only ever adds time).
    """
    model, run_config, _ = checkpoints.restore_model(model_dir)
    reader = readers.reader_for(run_config, video_id_key=video_id_key)

    @tf.function(reduce_retracing=True)
    def forward(video_matrix, num_frames):
        return model(video_matrix, num_frames=num_frames, training=False)["predictions"]

    timings = []
    for _ in range(1 + timed_passes):
        dataset, files = reader.make_dataset(
            eval_pattern, batch_size, flag_name="--eval_data_pattern"
        )
        start = time.time()
        for batch in corrupt_records.iterate_batches(dataset, files):
            forward(batch["video_matrix"], batch["num_frames"]).numpy()
        timings.append(time.time() - start)
    return min(timings[1:])


def evaluate_model(model, config, model_dir, eval_pattern):
    """Evaluates the latest checkpoint of one model; returns its results.json entry."""
    metrics = evaluator.evaluate_checkpoint(
        model_dir,
        eval_pattern,
        batch_size=config.eval_batch_size,
        video_id_key=config.video_id_key,
    )
    evaluator.write_metrics(model_dir, metrics)
    inference_seconds = time_inference(
        model_dir,
        eval_pattern,
        config.eval_batch_size,
        config.video_id_key,
        grid.PRESETS[config.preset].inference_timed_passes,
    )
    return {
        "name": model.name,
        "method": model.method,
        "k": model.k,
        "frame_stride": model.frame_stride,
        **{name: metrics[name] for name in eval_util.METRIC_LABELS},
        "eval_videos": metrics["num_examples"],
        "eval_seconds": metrics["eval_seconds"],
        "videos_per_second": metrics["num_examples"] / max(metrics["eval_seconds"], 1e-9),
        "inference_seconds": inference_seconds,
        "global_step": metrics["global_step"],
        "checkpoint": os.path.basename(metrics["checkpoint"]),
        "mean_frames_read": metrics["mean_frames_read"],
    }


def sweep_points(exit_thresholds):
    """The thresholds a sweep evaluates: EVERY_STAGE (the reference), then `exit_thresholds`."""
    return [EVERY_STAGE, *exit_thresholds] if exit_thresholds else []


def sweep_exits(config, model_dir, train_pattern, eval_pattern, exit_thresholds):
    """For a model that reads in exit stages (`--exit_stages` > 1): its exit rule calibrated on
    the grid's training videos (early_exit.py; once per checkpoint), then an evaluation at each
    of `sweep_points(exit_thresholds)`.

    Returns:
      [{threshold, gap, avg_hit_at_one, mean_frames_read, exit_stage_shares}], one per point
      in that order (EVERY_STAGE first: every video reads every stage); [] for a model that
      reads in one pass, or no thresholds.
    """
    stages = RunConfig.load(model_dir).exit_stages
    if not exit_thresholds or stages < 2:
        return []
    checkpoint = tf.train.latest_checkpoint(model_dir)
    calibration = read_json(os.path.join(model_dir, early_exit.CALIBRATION_FILE), {})
    if calibration.get("checkpoint") != checkpoint:
        early_exit.calibrate_train_dir(
            model_dir, train_pattern, early_exit.CALIBRATION_VIDEOS, config.video_id_key
        )
    sweep = []
    for threshold in sweep_points(exit_thresholds):
        metrics = evaluator.evaluate_checkpoint(
            model_dir,
            eval_pattern,
            batch_size=config.eval_batch_size,
            video_id_key=config.video_id_key,
            exit_threshold=threshold,
        )
        sweep.append(
            {
                "threshold": threshold,
                "gap": metrics["gap"],
                "avg_hit_at_one": metrics["avg_hit_at_one"],
                "mean_frames_read": metrics["mean_frames_read"],
                "exit_stage_shares": metrics.get("exit_stage_shares", [0.0] * (stages - 1) + [1.0]),
            }
        )
    return sweep


def add_exit_sweep(entry, config, model_dir, patterns, exit_thresholds):
    """Sets a results.json entry's `exit_sweep` (`sweep_exits` on the `patterns`' train and eval
    files) unless it holds one of these thresholds already, or no thresholds are asked; True
    when the entry changed (a model that reads in one pass gets none)."""
    swept = [point["threshold"] for point in entry.get("exit_sweep", [])]
    if swept == (sweep_points(exit_thresholds) or swept):
        return False
    sweep = sweep_exits(config, model_dir, patterns["train"], patterns["eval"], exit_thresholds)
    if sweep:
        entry["exit_sweep"] = sweep
    return bool(sweep)


def parse_exit_thresholds(text):
    """Parses `--exit_thresholds`: a comma list of agreement targets in [0, 1] ("" : none).

    Raises:
      utils.UserInputError: naming --exit_thresholds and the bad value.
    """
    thresholds = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            threshold = float(item)
        except ValueError:
            threshold = None
        if threshold is None or not 0.0 <= threshold <= 1.0:
            raise utils.UserInputError(
                f"--exit_thresholds={text}: '{item}' is not an agreement target in [0, 1]."
            )
        thresholds.append(threshold)
    return sorted(set(thresholds))


def format_progress(index, total, entry, reused):
    """One line per model and seed: name, seed, GAP, seconds."""
    how = "reused" if reused else f"trained {entry['train_seconds']:.0f} s"
    return (
        f"[{index:2d}/{total}] {entry['name']:<24s} seed {entry['seed']:<3d} GAP "
        f"{entry['gap']:.4f}  Hit@1 {entry['avg_hit_at_one']:.4f}  eval "
        f"{entry['eval_seconds']:.1f} s  ({how})"
    )


def entry_key(entry):
    """Table 1's order, then the seed."""
    return (*grid.row_order(entry["name"]), entry["seed"])


def read_results(results_path):
    """The results.json entries of a previous run, keyed by (name, seed); {} for none, or for a
    results.json of the one-seed layout (a bare list), whose models lie elsewhere."""
    stored = read_json(results_path, {})
    if not isinstance(stored, dict):
        return {}
    return {(entry["name"], entry["seed"]): entry for entry in stored.get("models", [])}


def write_results(results_path, results):
    """results.json: `models` (every entry, Table 1's order then seed), `summary` (per model
    name: mean and std of each metric over its seeds, `n`), and the `machine`."""
    ordered = sorted(results.values(), key=entry_key)
    write_json(
        results_path,
        {
            "models": ordered,
            "summary": grid_report.summarize(ordered),
            "machine": utils.machine_facts(),
        },
    )
    return ordered


def run_grid(
    config,
    ks,
    output_dir,
    report=print,
    methods=grid.DEFAULT_METHODS,
    seeds=None,
    data_root=None,
    exit_thresholds=(),
):
    """Trains and evaluates every model of the grid for `ks` and each training seed, reusing
    finished ones.

    Args:
      config: GridConfig.
      ks: list of k (% of frames) from `parse_ks`.
      output_dir: where data, models and results go (see the module docstring).
      report: callable taking one progress line.
      methods: the methods beside the teacher, from `parse_methods`.
      seeds: training seeds (`grid.training_seeds`); None: `[config.seed]`. The data is the
        same for every seed.
      data_root: where the grid's own data is written (`data_root/data`); None: output_dir.
        Grids of several families share one.
      exit_thresholds: agreement targets at which each model that reads in exit stages is
        evaluated again (`sweep_exits`, its entry's `exit_sweep`).

    Returns:
      dict with `results` (the results.json entries, Table 1 order then seed) and `trained`
      (`NAME/seedS` of the models this call trained or evaluated; the others were reused).
    """
    seeds = list(seeds) if seeds else [config.seed]
    if config.data == "files":  # a wrong pattern is reported before anything is written
        utils.glob_data_files(config.train_data_pattern, "--train_data_pattern")
        utils.glob_data_files(config.eval_data_pattern, "--eval_data_pattern")
    grid.check_methods_for_family(config, methods)
    same_config = check_config(output_dir, config)
    patterns = prepare_data(data_root or output_dir, config, report)
    results_path = os.path.join(output_dir, RESULTS_FILE)
    results = read_results(results_path) if same_config else {}
    models = grid.grid_models(ks, methods)
    total = len(models) * len(seeds)
    trained_names = []
    index = 0
    for seed in seeds:
        teacher_dir = grid.model_dir(output_dir, "TEACHER-FULL", seed)
        for model in models:
            index += 1
            directory = grid.model_dir(output_dir, model.name, seed)
            done = results.get((model.name, seed))
            if done and done.get("checkpoint") == latest_checkpoint_name(directory):
                if add_exit_sweep(done, config, directory, patterns, exit_thresholds):
                    write_results(results_path, results)
                report(format_progress(index, total, done, reused=True))
                continue
            train_seconds, _ = train_model(
                model, config, directory, patterns["train"], teacher_dir, seed
            )
            entry = evaluate_model(model, config, directory, patterns["eval"])
            entry["seed"] = seed
            entry["train_seconds"] = train_seconds
            entry["commit"] = utils.source_commit()
            add_exit_sweep(entry, config, directory, patterns, exit_thresholds)
            results[(model.name, seed)] = entry
            trained_names.append(f"{model.name}/seed{seed}")
            # Each model builds new Keras layers and tf.functions: free the previous ones.
            tf.keras.backend.clear_session()
            gc.collect()
            write_results(results_path, results)
            report(format_progress(index, total, entry, reused=False))
    ordered = write_results(results_path, results)
    grid_report.write_reports(output_dir, config, ordered)
    return {"results": ordered, "trained": trained_names}
