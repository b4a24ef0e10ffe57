"""Trains a model from the zoo on YouTube-8M TFRecords and writes checkpoints to --train_dir.

    python train.py --train_data_pattern='data/train*.tfrecord' --train_dir=/tmp/teacher \
        --model=HierarchicalTeacherModel

Adam with a staircase exponential learning-rate decay, as the starter. Checkpoints go to
`train_dir` through `tf.train.CheckpointManager` and training resumes from the latest one unless
--start_new_model. The model's flags are written to `train_dir/model_flags.json`, so eval.py and
inference.py rebuild the same model without repeating them; when resuming, model flags not given
on the command line are taken from that file, and a given one that differs is an error.
TensorBoard summaries (loss, learning rate, examples/sec, GAP and Hit@1 of the training batch)
go to `train_dir`.
"""

import dataclasses
import os
import signal
import sys
import threading
import time

import tensorflow as tf
from absl import app, flags, logging

import distribution
import eval_util
import export_model
import losses
import models
import readers
import student_models
import utils

# The flags that define a model: saved in model_flags.json, reused by eval.py and inference.py.
MODEL_FLAG_NAMES = (
    "model",
    "frame_features",
    "feature_names",
    "feature_sizes",
    "num_classes",
    "max_frames",
    "frame_stride",
    "frame_sampling",
    "frame_sampling_seed",
    "lstm_cells",
    "lstm_layers",
    "dropout",
    "block_size",
    "l2_penalty",
    "label_loss",
    "distill_mode",
    "distill_weight",
    "intermediate_weight",
    "teacher_block_size",
)

# Defaults of the model flags that older model_flags.json files may lack.
MODEL_FLAG_DEFAULTS = {
    "frame_stride": 1,
    "frame_sampling": "uniform",
    "frame_sampling_seed": 0,
    "distill_mode": "final",
    "distill_weight": 10.0,
    "intermediate_weight": 1.0,
    "teacher_block_size": 20,
}


@dataclasses.dataclass
class TrainOptions:
    """How to train (everything except the model flags)."""

    train_data_pattern: str
    train_dir: str
    batch_size: int = 256
    base_learning_rate: float = 0.001
    learning_rate_decay: float = 0.95
    learning_rate_decay_examples: int = 4_000_000
    num_epochs: int = 5
    max_steps: int = 0  # 0: no limit
    regularization_penalty: float = 1.0
    clip_gradient_norm: float = 1.0  # each gradient tensor clipped to this norm (0: off)
    start_new_model: bool = False
    export_model_steps: int = 0  # 0: never
    checkpoint_steps: int = 1000
    log_every_n_steps: int = 100
    max_checkpoints_to_keep: int = 5
    num_readers: int = 4
    shuffle_buffer_size: int = 1024
    video_id_key: str = "id"
    seed: int = 0
    corrupt_record_policy: str = "fail"  # or "skip" (readers.py)
    strategy: str = "auto"  # distribution.STRATEGIES
    mixed_precision: bool = False  # float16 compute, float32 variables, loss scaling
    summary_dir: str = ""  # TensorBoard logs; "" = train_dir
    final_export_dir: str = ""  # the chief exports a SavedModel here at the end; "" = none

    def validate(self):
        """Raises utils.UserInputError naming the first bad flag."""
        checks = [
            ("batch_size", self.batch_size >= 1),
            ("base_learning_rate", self.base_learning_rate > 0),
            ("learning_rate_decay", 0 < self.learning_rate_decay <= 1),
            ("learning_rate_decay_examples", self.learning_rate_decay_examples >= 1),
            ("num_epochs", self.num_epochs >= 1),
            ("max_steps", self.max_steps >= 0),
            ("regularization_penalty", self.regularization_penalty >= 0),
            ("clip_gradient_norm", self.clip_gradient_norm >= 0),
            ("export_model_steps", self.export_model_steps >= 0),
            ("checkpoint_steps", self.checkpoint_steps >= 1),
            ("log_every_n_steps", self.log_every_n_steps >= 1),
            ("num_readers", self.num_readers >= 1),
        ]
        for name, is_valid in checks:
            if not is_valid:
                raise utils.UserInputError(f"--{name}={getattr(self, name)} is out of range.")
        if not self.train_dir:
            raise utils.UserInputError("--train_dir is required.")
        readers.check_corrupt_record_policy(self.corrupt_record_policy)
        if self.strategy not in distribution.STRATEGIES:
            raise utils.UserInputError(
                f"--strategy={self.strategy}: choose one of {', '.join(distribution.STRATEGIES)}."
            )
        return self


def normalise_model_flags(model_flags):
    """Returns model flags with parsed feature lists and checked values (raises on bad ones).

    Flags added after a model was trained take their defaults, so older train_dirs still load.
    """
    normalised = dict(MODEL_FLAG_DEFAULTS)
    normalised.update(model_flags)
    names, sizes = utils.get_list_of_feature_names_and_sizes(
        model_flags["feature_names"], model_flags["feature_sizes"]
    )
    normalised["feature_names"] = names
    normalised["feature_sizes"] = sizes
    if normalised["max_frames"] < 1:
        raise utils.UserInputError(f"--max_frames={normalised['max_frames']} must be >= 1.")
    if normalised["frame_stride"] < 1:
        raise utils.UserInputError(f"--frame_stride={normalised['frame_stride']} must be >= 1.")
    if normalised["frame_sampling"] not in readers.FRAME_SAMPLINGS:
        raise utils.UserInputError(
            f"--frame_sampling={normalised['frame_sampling']}: choose uniform or random."
        )
    if normalised["model"] not in models.model_names():
        raise utils.UserInputError(
            f"--model={normalised['model']} is not a known model; choose one of "
            f"{', '.join(models.model_names())}."
        )
    frame_level = models.is_frame_level(normalised["model"])
    if frame_level != bool(normalised["frame_features"]):
        kind = "frame-level" if frame_level else "video-level"
        raise utils.UserInputError(
            f"--model={normalised['model']} is a {kind} model: set "
            f"--frame_features={str(frame_level).lower()} and matching --feature_names."
        )
    if normalised["distill_mode"] not in ("final", "intermediate"):
        raise utils.UserInputError(
            f"--distill_mode={normalised['distill_mode']}: choose final or intermediate."
        )
    for name in ("distill_weight", "intermediate_weight"):
        if normalised[name] < 0:
            raise utils.UserInputError(f"--{name}={normalised[name]} must be >= 0.")
    if normalised["teacher_block_size"] < 1:
        raise utils.UserInputError(
            f"--teacher_block_size={normalised['teacher_block_size']} must be >= 1."
        )
    loss_class = getattr(losses, normalised["label_loss"], None)
    is_loss = isinstance(loss_class, type) and issubclass(loss_class, losses.BaseLoss)
    if not is_loss or loss_class is losses.BaseLoss:
        raise utils.UserInputError(
            f"--label_loss={normalised['label_loss']} is not a known loss; choose "
            "CrossEntropyLoss, HingeLoss or SoftmaxLoss."
        )
    models.config_from_model_flags(normalised).validate()
    return normalised


def resolve_model_flags(train_dir, given_flags, explicitly_set, start_new_model):
    """Decides the model flags of this run.

    A new model takes `given_flags`. When resuming (a checkpoint and model_flags.json exist and
    not `start_new_model`), flags not in `explicitly_set` come from the file, and an explicitly set
    flag that differs from the file is an error: the checkpoint was built with the file's value.

    Args:
      train_dir: the training directory.
      given_flags: dict of every model flag's value on this command line (defaults included).
      explicitly_set: names of the flags the user gave.
      start_new_model: ignore what is in train_dir.

    Returns:
      the normalised model flags dict.
    """
    given = normalise_model_flags(given_flags)
    path = os.path.join(train_dir, utils.MODEL_FLAGS_FILE)
    has_checkpoint = tf.io.gfile.isdir(train_dir) and tf.train.latest_checkpoint(train_dir)
    if start_new_model or not has_checkpoint or not tf.io.gfile.exists(path):
        return given
    stored = normalise_model_flags(utils.load_model_flags(train_dir))
    conflicts = [
        f"--{name}={given[name]} (the checkpoint has {stored[name]})"
        for name in MODEL_FLAG_NAMES
        if name in explicitly_set and given[name] != stored[name]
    ]
    if conflicts:
        raise utils.UserInputError(
            f"{train_dir} holds a model built with other flags: {'; '.join(conflicts)}. "
            "Drop these flags to resume it, or pass --start_new_model to start over."
        )
    return stored


def student_model_flags(given, explicitly_set, teacher_train_dir):
    """Model flags of a DistilledStudentModel: the paper's student block size (5) unless
    --block_size is given, and, when distilling from a trained teacher, the teacher's classes,
    features and LSTM sizes for the flags not given."""
    student = dict(given)
    if "block_size" not in explicitly_set:
        student["block_size"] = student_models.STUDENT_BLOCK_SIZE
    if teacher_train_dir:
        teacher_flags = utils.load_model_flags(teacher_train_dir)
        inherited = ("num_classes", "feature_names", "feature_sizes", "lstm_cells", "lstm_layers")
        for name in inherited:
            if name not in explicitly_set:
                student[name] = teacher_flags[name]
        if "max_frames" not in explicitly_set:
            student["max_frames"] = teacher_flags["max_frames"]
    return student


def make_learning_rate(options):
    """The starter's schedule: base * decay ** floor(examples seen / decay examples)."""
    return tf.keras.optimizers.schedules.ExponentialDecay(
        options.base_learning_rate,
        decay_steps=options.learning_rate_decay_examples / options.batch_size,
        decay_rate=options.learning_rate_decay,
        staircase=True,
    )


def format_progress(step, loss, learning_rate, examples_per_second, gap, hit_at_one):
    """One progress line."""
    return (
        f"step {step:>7d} | loss {loss:9.4f} | lr {learning_rate:.3e} | "
        f"{examples_per_second:8.1f} examples/s | batch GAP {gap:.4f} | "
        f"batch Hit@1 {hit_at_one:.4f}"
    )


class ProgressLogger:
    """A progress line and TensorBoard scalars every `every_n_steps` steps (and at step 1).

    Logs the loss, the learning rate, examples/s (over all replicas), and the GAP and Hit@1 of
    this worker's share of the batch, plus any extra scalars a step reports (e.g. distillation
    terms). Only the chief writes summaries (`log_dir`); other workers get `write_summaries`
    False.
    """

    def __init__(self, log_dir, every_n_steps, learning_rate, write_summaries=True):
        """`learning_rate`: a callable of no argument returning the current rate."""
        if write_summaries:
            self.writer = tf.summary.create_file_writer(log_dir)
        else:
            self.writer = tf.summary.create_noop_writer()
        self.every_n_steps = every_n_steps
        self.learning_rate = learning_rate
        self.examples = 0
        self.start = time.time()

    def record(self, step, result):
        """Takes the `StepResult` of global step `step`."""
        self.examples += int(result.num_examples)
        if step % self.every_n_steps and step != 1:
            return
        labels = distribution.local_values(result.labels).numpy()
        predictions = distribution.local_values(result.predictions).numpy()
        gap = eval_util.calculate_gap(predictions, labels)
        hit_at_one = eval_util.calculate_hit_at_one(predictions, labels)
        examples_per_second = self.examples / max(time.time() - self.start, 1e-9)
        rate = float(self.learning_rate())
        loss = float(result.loss)
        line = format_progress(step, loss, rate, examples_per_second, gap, hit_at_one)
        scalars = {name: float(value) for name, value in result.scalars.items()}
        if scalars:
            line += " | " + " | ".join(f"{name} {value:.4f}" for name, value in scalars.items())
        logging.info(line)
        scalars.update(
            loss=loss,
            learning_rate=rate,
            examples_per_second=examples_per_second,
            gap=gap,
            hit_at_one=hit_at_one,
        )
        with self.writer.as_default(step=step):
            for name, value in scalars.items():
                tf.summary.scalar(name, value)
        self.examples = 0
        self.start = time.time()

    def flush(self):
        self.writer.flush()


@dataclasses.dataclass
class StepResult:
    """What one training step returns: `loss` (mean over the global batch), `predictions`
    `[batch, num_classes]` and `labels` (per replica: distributed values under a strategy),
    `num_examples` in the global batch, and extra scalars (global means) to log."""

    loss: tf.Tensor
    predictions: object
    labels: object
    num_examples: tf.Tensor
    scalars: dict


def distributed_step(strategy, replica_step):
    """Compiles `replica_step` to run on every replica of `strategy` (one step of training).

    Args:
      strategy: the run's tf.distribute strategy.
      replica_step: callable(batch) -> (loss share, predictions, {name: scalar share}), run in
        each replica's context on its part of the batch; shares are scaled with
        `distribution.replica_share`, so their sum over replicas is the global mean.

    Returns:
      step(batch) -> StepResult; `batch` is a batch dict from a distributed dataset.
    """
    sum_op = tf.distribute.ReduceOp.SUM

    @tf.function(reduce_retracing=True)
    def compiled_step(batch):
        loss, predictions, scalars = strategy.run(replica_step, args=(batch,))
        batch_size = strategy.run(lambda labels: tf.shape(labels)[0], args=(batch["labels"],))
        return (
            strategy.reduce(sum_op, loss, axis=None),
            predictions,
            strategy.reduce(sum_op, batch_size, axis=None),
            {name: strategy.reduce(sum_op, value, axis=None) for name, value in scalars.items()},
        )

    def step(batch):
        loss, predictions, num_examples, scalars = compiled_step(batch)
        return StepResult(loss, predictions, batch["labels"], num_examples, scalars)

    return step


# In the message of the error raised when a step's loss is NaN or infinite.
NONFINITE_LOSS_MESSAGE = "the training loss is not finite"


def apply_gradients(optimizer, tape, loss, variables, clip_gradient_norm):
    """One optimizer step on `variables`, each gradient clipped to `clip_gradient_norm` (0: no).

    Runs in a replica's context. With several replicas, the gradients are summed over them
    before clipping and before the loss scaler checks them (the optimizer sums what it receives,
    so each replica then passes its share of the sum): the update is the one a single device
    makes on the global batch. With a `LossScaleOptimizer` (mixed precision) the loss is scaled,
    and the gradients are unscaled around the clipping.

    A NaN or infinite `loss` raises `tf.errors.InvalidArgumentError` (with
    NONFINITE_LOSS_MESSAGE) before any variable changes.
    """
    # The variables' updates wait for the check (Keras moves its step counter regardless).
    finite = tf.debugging.Assert(tf.math.is_finite(loss), [NONFINITE_LOSS_MESSAGE, loss])
    loss_scale = None
    if isinstance(optimizer, tf.keras.optimizers.LossScaleOptimizer):
        loss_scale = tf.cast(optimizer.dynamic_scale, loss.dtype)
    with tf.control_dependencies([finite]):
        # The tape has stopped recording: the scaled loss's gradients are the loss's times the
        # scale, which `output_gradients` applies.
        gradients = tape.gradient(loss, variables, output_gradients=loss_scale)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    # Clipping, and the loss scaler's finiteness check, must see the sum over replicas.
    aggregate = replicas > 1 and (clip_gradient_norm > 0 or loss_scale is not None)
    if aggregate:
        gradients = distribution.sum_over_replicas(gradients)
    if clip_gradient_norm > 0:
        if loss_scale is not None:
            gradients = scale_gradients(gradients, 1.0 / loss_scale)
        gradients = [
            None if gradient is None else tf.clip_by_norm(gradient, clip_gradient_norm)
            for gradient in gradients
        ]
        if loss_scale is not None:
            gradients = scale_gradients(gradients, loss_scale)
    if aggregate:
        gradients = scale_gradients(gradients, 1.0 / replicas)
    optimizer.apply_gradients(zip(gradients, variables, strict=True))


def scale_gradients(gradients, factor):
    """Each gradient times `factor` (None stays None)."""
    return [None if gradient is None else gradient * factor for gradient in gradients]


def regularization_loss(model, regularization_penalty):
    """The model's regularization losses times the penalty, divided among the replicas (0.0
    when it has none)."""
    if not model.losses:
        return 0.0
    return distribution.share_of_replicas(regularization_penalty * tf.add_n(model.losses))


def make_supervised_step(model, label_loss_fn, optimizer, options, strategy):
    """A compiled step that trains all of `model` on its label loss, on every replica.

    Returns:
      step(batch) -> StepResult (loss: the label loss, no extra scalars).
    """

    def replica_step(batch):
        labels = batch["labels"]
        with tf.GradientTape() as tape:
            outputs = model(batch["video_matrix"], num_frames=batch["num_frames"], training=True)
            label_loss = distribution.replica_share(
                label_loss_fn.calculate_loss(
                    outputs["predictions"], labels, logits=outputs["logits"]
                ),
                tf.shape(labels)[0],
            )
            total_loss = label_loss + regularization_loss(model, options.regularization_penalty)
        apply_gradients(
            optimizer, tape, total_loss, model.trainable_variables, options.clip_gradient_norm
        )
        return label_loss, outputs["predictions"], {}

    return distributed_step(strategy, replica_step)


class TrainingInterrupted(Exception):
    """SIGTERM or SIGINT stopped training; a checkpoint of the last step was written."""

    def __init__(self, signal_name, step, checkpoint):
        super().__init__(
            f"{signal_name} received: stopped at step {step} and saved {checkpoint}. Run the "
            "same command again to resume from there."
        )
        self.signal_name = signal_name
        self.exit_code = 128 + signal.Signals[signal_name].value


class StopSignals:
    """While active, SIGTERM (a preemption) and SIGINT (Ctrl-C) ask training to stop after the
    current step instead of killing it; a second SIGINT interrupts at once.

    Signal handlers can only be set from the main thread; elsewhere this does nothing.
    """

    HANDLED = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signal_number in self.HANDLED:
                self._previous[signal_number] = signal.signal(signal_number, self._handle)
        return self

    def __exit__(self, *unused_exception):
        for signal_number, handler in self._previous.items():
            signal.signal(signal_number, handler)
        self._previous = {}

    def _handle(self, signal_number, unused_frame):
        if self.received is not None and signal_number == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signal_number).name
        logging.warning("%s received: stopping after this step.", self.received)


def run_steps(step, batches, current_step, manager, options, logger, export=None, stop=None):
    """Runs `step` on each batch, with logging, periodic checkpoints and exports.

    Args:
      step: callable(batch) -> StepResult.
      batches: iterable of batch dicts.
      current_step: callable returning the global step after a training step.
      manager: the CheckpointManager to save into every `options.checkpoint_steps`.
      options: TrainOptions.
      logger: ProgressLogger.
      export: callable(step) writing a SavedModel, or None.
      stop: a StopSignals; when it has received a signal, a checkpoint is saved and
        TrainingInterrupted raised.

    Returns:
      (the last loss or None, True when --max_steps was reached).

    Raises:
      utils.UserInputError: when a step's loss is NaN or infinite (nothing of that step is
        applied or saved: the latest checkpoint keeps the last good weights).
      TrainingInterrupted: after SIGTERM or SIGINT, once the checkpoint is written.
    """
    loss = None
    for batch in batches:
        next_step = current_step() + 1
        try:
            result = step(batch)
        except tf.errors.InvalidArgumentError as error:
            if NONFINITE_LOSS_MESSAGE not in str(error):
                raise
            raise utils.UserInputError(
                f"The training loss is NaN or infinite at step {next_step}; training "
                f"stopped. The latest checkpoint ({manager.latest_checkpoint}) holds the last "
                "weights saved before it. Lower --base_learning_rate or check the input data."
            ) from None
        global_step = current_step()
        loss = result.loss
        logger.record(global_step, result)
        if global_step % options.checkpoint_steps == 0:
            manager.save(checkpoint_number=global_step)
        if export and options.export_model_steps and global_step % options.export_model_steps == 0:
            export(global_step)
        if stop is not None and stop.received:
            save_if_new(manager, global_step)
            raise TrainingInterrupted(stop.received, global_step, manager.latest_checkpoint)
        if options.max_steps and global_step >= options.max_steps:
            return loss, True
    return loss, False


def save_if_new(manager, step):
    """Saves a checkpoint at `step` unless the latest one is already that step's."""
    latest = manager.latest_checkpoint
    if latest is None or not latest.endswith(f"-{step}"):
        manager.save(checkpoint_number=step)


def set_precision_policy(mixed_precision):
    """Keras' global dtype policy: float16 compute with float32 variables, or float32."""
    tf.keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")


def make_optimizer(learning_rate, mixed_precision):
    """Adam as the starter; with mixed precision wrapped in Keras' dynamic loss scaling."""
    optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
    if mixed_precision:
        optimizer = tf.keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def prepare_train_dir(options, model_flags, strategy):
    """Checks the data pattern and builds the model under `strategy`, then (with
    --start_new_model, on the chief) empties `train_dir`: nothing is deleted while a user's input
    can still fail.

    Returns:
      (the list of training files, the built model).
    """
    options.validate()
    files = utils.glob_data_files(options.train_data_pattern, "--train_data_pattern")
    if options.batch_size % strategy.num_replicas_in_sync:
        raise utils.UserInputError(
            f"--batch_size={options.batch_size} is the global batch: it must be a multiple of "
            f"the {strategy.num_replicas_in_sync} replicas."
        )
    chief = distribution.is_chief(strategy)
    if chief:
        utils.check_writable_dir(options.train_dir, "--train_dir")
    tf.keras.utils.set_random_seed(options.seed)
    set_precision_policy(options.mixed_precision)
    with strategy.scope():
        model = models.build_from_model_flags(model_flags)
    if chief and options.start_new_model and tf.io.gfile.exists(options.train_dir):
        logging.info("--start_new_model: removing %s", options.train_dir)
        tf.io.gfile.rmtree(options.train_dir)
    if chief:
        tf.io.gfile.makedirs(options.train_dir)
    return files, model


def make_training_dataset(
    model_flags,
    options,
    files,
    num_epochs,
    step,
    strategy,
    keep_all_frames=False,
    skipped=None,
):
    """The shuffled training pipeline over `files`, distributed over `strategy`'s replicas.

    Each replica gets `batch_size / replicas` videos a step; each worker reads its own share of
    the files (of the records, when there are fewer files than workers). With
    --corrupt_record_policy=skip what it leaves out is tallied in `skipped` (a
    readers.SkippedRecords shared by the run's pipelines), or in the reader's own tally.

    Its seed is --seed plus the current step, so a job resumed many times does not replay the
    same first batches each time (the pipeline restarts at an epoch's start on resume).
    """
    data_seed = options.seed + distribution.variable_int(step)
    tf.keras.utils.set_random_seed(data_seed)
    reader = readers.reader_from_model_flags(
        model_flags,
        video_id_key=options.video_id_key,
        training=True,
        keep_all_frames=keep_all_frames,
        corrupt_record_policy=options.corrupt_record_policy,
    )
    if skipped is not None:
        reader.skipped_records = skipped

    def make_replica_dataset(input_context):
        worker_files, record_shard = distribution.input_shard(input_context, files)
        dataset, _ = reader.make_dataset(
            ",".join(worker_files),
            input_context.get_per_replica_batch_size(options.batch_size),
            num_epochs=num_epochs,
            shuffle=True,
            shuffle_buffer_size=options.shuffle_buffer_size,
            num_readers=options.num_readers,
            seed=data_seed,
            flag_name="--train_data_pattern",
            record_shard=record_shard,
        )
        return dataset

    dataset = strategy.distribute_datasets_from_function(make_replica_dataset)
    return reader, readers.iterate_batches(
        dataset,
        files,
        reader.skipped_records,
        drop_empty=strategy.num_replicas_in_sync == 1,
    )


def train(options, model_flags, strategy=None):
    """Runs training until the data (num_epochs) or max_steps runs out.

    Args:
      options: TrainOptions.
      model_flags: normalised model flags (see `resolve_model_flags`).
      strategy: a tf.distribute strategy; None builds the one `options.strategy` names.

    Returns:
      dict with `global_step`, `last_loss`, `checkpoint` (path of the final checkpoint) and
      `skipped_records` (what --corrupt_record_policy=skip left out, every pass counted).
    """
    options.validate()
    strategy = strategy or distribution.make_strategy(options.strategy)
    chief = distribution.is_chief(strategy)
    files, model = prepare_train_dir(options, model_flags, strategy)
    skipped = readers.SkippedRecords()
    train_dir = options.train_dir
    label_loss_fn = getattr(losses, model_flags["label_loss"])()
    learning_rate = make_learning_rate(options)
    with strategy.scope():
        optimizer = make_optimizer(learning_rate, options.mixed_precision)
        optimizer.build(model.trainable_variables)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    manager = distribution.make_checkpoint_manager(
        strategy, checkpoint, train_dir, options.max_checkpoints_to_keep
    )
    if manager.latest_checkpoint and not (options.start_new_model and not chief):
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info(
            "Resumed from %s at step %d",
            manager.latest_checkpoint,
            distribution.variable_int(optimizer.iterations),
        )
    else:
        logging.info("Starting a new %s", model_flags["model"])
    _, batches = make_training_dataset(
        model_flags,
        options,
        files,
        options.num_epochs,
        optimizer.iterations,
        strategy,
        False,
        skipped,
    )
    export_reader = readers.reader_from_model_flags(model_flags, options.video_id_key)
    logging.info("Training on %d file(s) matching %s", len(files), options.train_data_pattern)
    if chief:
        utils.save_model_flags(train_dir, model_flags)

    def current_step():
        return distribution.variable_int(optimizer.iterations)

    def export(step):
        if chief:
            export_snapshot(model, export_reader, train_dir, step)

    loss = None
    if options.max_steps and current_step() >= options.max_steps:
        logging.info(
            "At step %d >= --max_steps=%d: nothing to do.", current_step(), options.max_steps
        )
    else:
        logger = ProgressLogger(
            options.summary_dir or train_dir,
            options.log_every_n_steps,
            lambda: learning_rate(optimizer.iterations),
            write_summaries=chief,
        )
        try:
            with StopSignals() as stop:
                loss, _ = run_steps(
                    make_supervised_step(model, label_loss_fn, optimizer, options, strategy),
                    batches,
                    current_step,
                    manager,
                    options,
                    logger,
                    export=export,
                    stop=stop,
                )
        finally:
            logger.flush()
    save_if_new(manager, current_step())
    logging.info("Done at step %d; checkpoint %s", current_step(), manager.latest_checkpoint)
    report_skipped(options, skipped)
    export_final_model(options, model, export_reader, chief)
    return {
        "global_step": current_step(),
        "last_loss": None if loss is None else float(loss),
        "checkpoint": manager.latest_checkpoint,
        "skipped_records": skipped.count,
    }


def export_final_model(options, model, reader, chief):
    """On the chief, writes the trained model as a SavedModel to --final_export_dir (set from
    Vertex AI's AIP_MODEL_DIR), if any."""
    if chief and options.final_export_dir:
        export_model.export_saved_model(model, reader, options.final_export_dir)
        logging.info("Exported the trained model to %s", options.final_export_dir)


def report_skipped(options, skipped):
    """Logs, at the end of training, what --corrupt_record_policy=skip left out."""
    if options.corrupt_record_policy == "skip":
        logging.warning("%s (counted on every pass over the data)", skipped.describe())


def export_snapshot(model, reader, train_dir, step):
    """Writes a SavedModel of the current weights to `train_dir/export/step_<step>`."""
    export_dir = os.path.join(train_dir, "export", f"step_{step}")
    export_model.export_saved_model(model, reader, export_dir)
    logging.info("Exported a SavedModel to %s", export_dir)


def define_flags():
    """The starter's training flags, plus the paper's model sizes."""
    flags.DEFINE_string("train_data_pattern", "", "File glob of the training TFRecords.")
    flags.DEFINE_string("train_dir", "/tmp/yt8m_model/", "Where checkpoints and logs go.")
    flags.DEFINE_string("model", "HierarchicalTeacherModel", "Which model class to train.")
    flags.DEFINE_bool("frame_features", True, "Frame-level (SequenceExample) input, else video.")
    flags.DEFINE_string("feature_names", "rgb,audio", "Comma-separated features to read.")
    flags.DEFINE_string("feature_sizes", "1024,128", "Their sizes, in the same order.")
    flags.DEFINE_integer("num_classes", 3862, "Number of classes (3862 in YouTube-8M 2018).")
    flags.DEFINE_integer("max_frames", 300, "Frames beyond this are dropped.")
    flags.DEFINE_integer("frame_stride", 1, "Read 1 frame in this many (j; k = 100/j %).")
    flags.DEFINE_enum(
        "frame_sampling", "uniform", ["uniform", "random"], "Frames 0, j, 2j... or random."
    )
    flags.DEFINE_integer("frame_sampling_seed", 0, "Seed of random sampling at eval/inference.")
    flags.DEFINE_string("video_id_key", "id", "Context key of the video id ('video_id' in 2017).")
    flags.DEFINE_integer("lstm_cells", 1024, "Cells per LSTM layer.")
    flags.DEFINE_integer("lstm_layers", 2, "LSTM layers at each level.")
    flags.DEFINE_float("dropout", 0.5, "Dropout rate on the video representation.")
    flags.DEFINE_integer("block_size", 20, "Frames per block of the hierarchical model (m).")
    flags.DEFINE_float("l2_penalty", 1e-8, "L2 weight on the output layer's weights.")
    flags.DEFINE_enum(
        "distill_mode",
        "final",
        ["final", "intermediate"],
        "DistilledStudentModel: match the final representation, or also the lower-level "
        "outputs at the selected frames.",
    )
    flags.DEFINE_float(
        "distill_weight", 10.0, "Weight of ||E_T - E_S||^2 (averaged over dimensions)."
    )
    flags.DEFINE_float(
        "intermediate_weight", 1.0, "Weight of the intermediate term (--distill_mode=intermediate)."
    )
    flags.DEFINE_integer("teacher_block_size", 20, "Block size of the joint teacher.")
    flags.DEFINE_integer("joint_epochs", 5, "Distillation phase 1: passes with the teacher.")
    flags.DEFINE_integer("finetune_epochs", 1, "Distillation phase 2: passes of the student alone.")
    flags.DEFINE_string(
        "teacher_train_dir", "", "Distil from this trained, frozen teacher instead of jointly."
    )
    flags.DEFINE_string("label_loss", "CrossEntropyLoss", "Loss class from losses.py.")
    flags.DEFINE_float("regularization_penalty", 1.0, "Weight of the regularization loss.")
    flags.DEFINE_float("clip_gradient_norm", 1.0, "Clip each gradient to this norm (0: off).")
    flags.DEFINE_integer("batch_size", 256, "Videos per training batch.")
    flags.DEFINE_float("base_learning_rate", 0.001, "Initial learning rate.")
    flags.DEFINE_float("learning_rate_decay", 0.95, "Decay factor of the learning rate.")
    flags.DEFINE_integer(
        "learning_rate_decay_examples", 4_000_000, "Examples between learning-rate decays."
    )
    flags.DEFINE_integer("num_epochs", 5, "Passes over the training data.")
    flags.DEFINE_integer("max_steps", 0, "Stop after this many steps (0: no limit).")
    flags.DEFINE_bool("start_new_model", False, "Delete train_dir and start a new model.")
    flags.DEFINE_integer("export_model_steps", 0, "Export a SavedModel every N steps (0: never).")
    flags.DEFINE_integer("checkpoint_steps", 1000, "Save a checkpoint every N steps.")
    flags.DEFINE_integer("log_every_n_steps", 100, "Print progress every N steps.")
    flags.DEFINE_integer("max_checkpoints_to_keep", 5, "Older checkpoints are deleted.")
    flags.DEFINE_integer("num_readers", 4, "Shards read in parallel.")
    flags.DEFINE_integer("shuffle_buffer_size", 1024, "Records held for shuffling.")
    flags.DEFINE_enum(
        "corrupt_record_policy",
        "fail",
        readers.CORRUPT_RECORD_POLICIES,
        readers.CORRUPT_RECORD_POLICY_HELP,
    )
    flags.DEFINE_integer("seed", 0, "Seed of the initialisation and of the shuffles.")
    flags.DEFINE_enum("strategy", "auto", distribution.STRATEGIES, distribution.STRATEGY_HELP)
    flags.DEFINE_bool(
        "mixed_precision",
        False,
        "Compute in float16 with float32 variables and dynamic loss scaling (for GPUs).",
    )


def cloud_directories(train_dir_given, environ=None):
    """Output directories that Vertex AI names in the environment, as TrainOptions fields.

    AIP_CHECKPOINT_DIR becomes `train_dir` unless --train_dir was given; summaries go to
    AIP_TENSORBOARD_LOG_DIR; the final SavedModel to AIP_MODEL_DIR. Unset ones are left out.
    """
    environ = os.environ if environ is None else environ
    directories = {}
    if environ.get("AIP_CHECKPOINT_DIR") and not train_dir_given:
        directories["train_dir"] = environ["AIP_CHECKPOINT_DIR"]
    if environ.get("AIP_TENSORBOARD_LOG_DIR"):
        directories["summary_dir"] = environ["AIP_TENSORBOARD_LOG_DIR"]
    if environ.get("AIP_MODEL_DIR"):
        directories["final_export_dir"] = environ["AIP_MODEL_DIR"]
    return directories


def main(unused_argv):
    flag_values = flags.FLAGS
    logging.set_verbosity(logging.INFO)
    option_names = {field.name for field in dataclasses.fields(TrainOptions)}
    options = TrainOptions(
        **{name: flag_values[name].value for name in option_names if name in flag_values}
    )
    options = dataclasses.replace(options, **cloud_directories(flag_values["train_dir"].present))
    with utils.exit_on_user_error():
        options.validate()
        if not options.train_data_pattern:
            raise utils.UserInputError("--train_data_pattern is required.")
        given = {name: flag_values[name].value for name in MODEL_FLAG_NAMES}
        explicitly_set = {name for name in MODEL_FLAG_NAMES if flag_values[name].present}
        distilling = given["model"] == "DistilledStudentModel"
        if distilling:
            given = student_model_flags(given, explicitly_set, flag_values.teacher_train_dir)
        model_flags = resolve_model_flags(
            options.train_dir, given, explicitly_set, options.start_new_model
        )
        if distilling:
            import distillation

            distill_options = distillation.DistillOptions(
                joint_epochs=flag_values.joint_epochs,
                finetune_epochs=flag_values.finetune_epochs,
                teacher_train_dir=flag_values.teacher_train_dir,
            )
            result = distillation.train_distilled(options, model_flags, distill_options)
        else:
            result = train(options, model_flags)
    print(f"Trained to step {result['global_step']}; checkpoint {result['checkpoint']}")


def run_training_main(argv):
    """main, with an interruption by SIGTERM or SIGINT reported and the signal's exit status."""
    try:
        main(argv)
    except TrainingInterrupted as interruption:
        print(f"INTERRUPTED: {interruption}", file=sys.stderr)
        sys.exit(interruption.exit_code)


if __name__ == "__main__":
    define_flags()
    app.run(run_training_main)
