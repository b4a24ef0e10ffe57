"""One training loop for every way of training a model of the zoo.

    result = trainer.train(task, options)

A task (tasks.py: supervised, and the paper's two phases of distillation) builds its models and
supplies its phases. A `Phase` says what one stage trains: `loss(batch)`, run in each replica's
context (the loss to minimise, the loss to show, the predictions, extra scalars to log), the
variables the optimizer updates, the objects its checkpoints hold and the directory they go to,
its epochs, and whether its input keeps every frame beside the selected ones. The loop owns the
rest: the tf.distribute strategy's scope, one optimizer per phase, checkpoints and resume,
stopping on SIGTERM/SIGINT (preemption.py; on a multi-worker cluster every worker stops at one
step), the NaN stop, TensorBoard summaries, progress lines (and one warning when an epoch is only
a few steps) and SavedModel exports.

Every checkpoint holds the global step, the epochs done in its phase, the steps done in the
current epoch and the state of the models' random generators (dropout): a run resumes in the
phase, epoch and step where it stopped, and the rerun of a finished run has nothing left to do.
Each epoch's batches are a function of the seed and the epoch (training_input.py; with the
shards interleaved in a fixed order, --ordered_input, the default), so a resumed run takes
exactly the batches the interrupted one had left, and with --deterministic ends bit-identical to
an uninterrupted one; with --noordered_input the rest of the epoch is drawn anew. A
checkpoint is written every --checkpoint_steps steps and every --checkpoint_secs seconds, so a
kill loses at most that much work. The global step runs on across phases and
drives the learning-rate schedule (the starter's: base * decay ** floor(examples / decay
examples)). Adam, as the starter; each gradient tensor clipped to --clip_gradient_norm.
"""

import dataclasses
import os
import time
from collections.abc import Callable

import tensorflow as tf
from absl import logging

import readers
import utils
from pipeline import corrupt_records
from runs import distribution
from serving import saved_model
from training import optimization, preemption, progress, training_input

# On a multi-worker cluster, how often the workers compare their clocks for --checkpoint_secs.
CLUSTER_CLOCK_STEPS = 10


@dataclasses.dataclass
class Phase:
    """One stage of a task's training.

    `loss(batch) -> (loss, shown_loss, predictions [batch, num_classes], {name: scalar})` runs in
    a replica's context on its part of the batch: `loss` is minimised, `shown_loss` is the
    progress line's and TensorBoard's "loss". The losses and the scalars are that replica's
    shares (see `distribution.replica_share`), so their sums over replicas are the global batch
    means.
    """

    name: str
    epochs: int
    loss: Callable
    variables: list  # what the optimizer updates
    checkpoint_objects: dict  # saved beside the optimizer, the step and the epochs done
    directory: str  # where its checkpoints go
    keep_all_frames: bool = False  # the batches also hold every frame (a teacher's input)
    export_model: object = None  # the model written as a SavedModel every export_model_steps


def compile_step(strategy, phase, optimizer, clip_gradient_norm, element_spec=None):
    """The phase's training step, compiled to run on every replica of `strategy`.

    Args:
      element_spec: the `element_spec` of the distributed dataset the batches come from; the
        step is then traced once, at its first batch, for the entries that batch holds and for
        any batch size and video length (the dataset's shapes: the last batch of an epoch is
        smaller, and T differs from batch to batch). Without it, every new shape is traced
        (a relaxed trace after the second): on a small model about 3-12 s each, taken in the
        middle of the first epoch and at its end.

    Returns:
      step(batch) -> StepResult; `batch` is a batch dict from a distributed dataset.
    """
    sum_op = tf.distribute.ReduceOp.SUM

    def replica_step(batch):
        with tf.GradientTape() as tape:
            loss, shown_loss, predictions, scalars = phase.loss(batch)
        optimization.apply_gradients(optimizer, tape, loss, phase.variables, clip_gradient_norm)
        return shown_loss, predictions, scalars

    def traced_step(batch):
        loss, predictions, scalars = strategy.run(replica_step, args=(batch,))
        batch_size = strategy.run(lambda labels: tf.shape(labels)[0], args=(batch["labels"],))
        return (
            strategy.reduce(sum_op, loss, axis=None),
            predictions,
            strategy.reduce(sum_op, batch_size, axis=None),
            {name: strategy.reduce(sum_op, value, axis=None) for name, value in scalars.items()},
        )

    compiled = []

    def step(batch):
        if not compiled:
            signature = None
            if element_spec is not None:
                signature = [{name: element_spec[name] for name in batch}]
            compiled.append(
                tf.function(traced_step, input_signature=signature, reduce_retracing=True)
            )
        loss, predictions, num_examples, scalars = compiled[0](batch)
        return progress.StepResult(loss, predictions, batch["labels"], num_examples, scalars)

    return step


def save_if_new(manager, step):
    """Saves a checkpoint at `step` unless the latest one is already that step's; returns the
    latest checkpoint's path."""
    latest = manager.latest_checkpoint
    if latest is None or not latest.endswith(f"-{step}"):
        manager.save(checkpoint_number=step)
    return manager.latest_checkpoint


def random_states(objects):
    """The state variables of the random generators of `objects`' models (Keras' seed
    generators: dropout's), which a model's own checkpoint leaves out. Saved beside it, they
    let a resumed run draw the dropout masks the interrupted one would have drawn."""
    states = []
    for value in objects.values():
        for variable in getattr(value, "variables", []):
            if "seed_generator_state" in variable.name:
                states.append(variable)
    return states


def restore(run, path, step):
    """Restores a phase's checkpoint. One written before checkpoints held the step inside the
    epoch restores what it holds (its epoch then starts again); one written before they held
    the global step (it holds the phase's objects and optimizer, whose count of updates was the
    step) restores those and takes its step from the optimizer.

    Raises:
      utils.UserInputError: when the checkpoint does not hold the phase's objects (another
        model, or other sizes).
    """
    names = {name for name, _ in tf.train.list_variables(path)}
    if "epoch_steps/.ATTRIBUTES/VARIABLE_VALUE" in names:
        checkpoint = run.manager.checkpoint
    elif "step/.ATTRIBUTES/VARIABLE_VALUE" in names:
        saved = run.manager.checkpoint
        checkpoint = tf.train.Checkpoint(
            optimizer=run.optimizer,
            step=saved.step,
            epochs_done=saved.epochs_done,
            **run.phase.checkpoint_objects,
        )
    else:
        checkpoint = tf.train.Checkpoint(optimizer=run.optimizer, **run.phase.checkpoint_objects)
    try:
        checkpoint.restore(path).assert_existing_objects_matched()
    except AssertionError as error:
        raise utils.UserInputError(
            f"{path} does not hold the {run.phase.name} phase of this model (other model flags?):"
            f" {str(error)[:300]}"
        ) from None
    if checkpoint is not run.manager.checkpoint:
        step.assign(tf.cast(run.optimizer.iterations, step.dtype))


@dataclasses.dataclass(frozen=True)
class DirectoryContents:
    """What a directory held when a run began (its existence and the names in it), so that a new
    model whose run fails before its first checkpoint can leave it as it found it: no new empty
    directory, no orphan model_flags.json or events file."""

    path: str
    existed: bool
    names: frozenset = frozenset()

    @classmethod
    def of(cls, path):
        if not tf.io.gfile.isdir(path):
            return cls(path, False)
        return cls(path, True, frozenset(name.rstrip("/") for name in tf.io.gfile.listdir(path)))

    def remove_what_is_new(self):
        """Removes the directory if it is new, else what is new in it; returns the paths
        removed."""
        if not tf.io.gfile.isdir(self.path):
            return []
        if not self.existed:
            tf.io.gfile.rmtree(self.path)
            return [self.path]
        removed = []
        for name in sorted(tf.io.gfile.listdir(self.path)):
            name = name.rstrip("/")
            if name in self.names:
                continue
            path = os.path.join(self.path, name)
            if tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                tf.io.gfile.remove(path)
            removed.append(path)
        return removed


@dataclasses.dataclass
class PhaseRun:
    """A phase with what the loop made for it."""

    phase: Phase
    optimizer: object
    manager: object
    step: Callable = None  # the compiled step, made when the phase runs


class Trainer:
    """Runs a task's phases; see the module docstring. Built by `train`."""

    def __init__(self, task, options, strategy, epoch_length=None):
        self.task = task
        self.options = options
        self.strategy = strategy
        # Warns once about an epoch of a few steps; shared by the stages of a run.
        self.epoch_length = epoch_length or progress.EpochLength()
        self.chief = distribution.is_chief(strategy)
        self.skipped = corrupt_records.SkippedRecords()
        self.last_loss = None
        self.last_save_time = time.monotonic()
        self.multi_worker = preemption.is_multi_worker(strategy)
        self.runs = []
        # What the chief found in the directory this run may empty (fit).
        self.found = None

    def current_step(self):
        return distribution.variable_int(self.step)

    def prepare(self):
        """Checks the input, builds the task's models and the loop's state, and (with
        --start_new_model, on the chief) empties train_dir: nothing is deleted while a user's
        input can still fail. Returns the training files."""
        options, strategy = self.options, self.strategy
        if not options.train_dir:
            raise utils.UserInputError("--train_dir is required.")
        files = utils.glob_data_files(options.train_data_pattern, "--train_data_pattern")
        if options.batch_size % strategy.num_replicas_in_sync:
            raise utils.UserInputError(
                f"--batch_size={options.batch_size} is the global batch: it must be a multiple "
                f"of the {strategy.num_replicas_in_sync} replicas."
            )
        if self.chief:
            utils.check_writable_dir(options.train_dir, "--train_dir")
        tf.keras.utils.set_random_seed(options.seed)
        if options.deterministic:
            # Process-wide and for good: TensorFlow cannot turn it off again.
            tf.config.experimental.enable_op_determinism()
        optimization.set_precision_policy(options.mixed_precision)
        with strategy.scope():
            self.task.build()
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_done")
            # Steps done in the current epoch: where a resumed run goes on.
            self.epoch_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch_steps")
        phases = self.task.phases(options)
        new_model_dir = options.new_model_dir or options.train_dir
        if self.chief and options.start_new_model and tf.io.gfile.exists(new_model_dir):
            # One read serves every phase: with all frames kept, every frame is checked.
            keep_all_frames = any(phase.keep_all_frames for phase in phases if phase.epochs)
            training_input.check_first_batch(self.task.config, options, files, keep_all_frames)
            logging.info("--start_new_model: removing %s", new_model_dir)
            tf.io.gfile.rmtree(new_model_dir)
            self.found = DirectoryContents(new_model_dir, existed=False)
        if self.chief:
            tf.io.gfile.makedirs(options.train_dir)
        schedule = optimization.make_learning_rate(options)
        self.learning_rate = lambda: schedule(self.step)
        self.runs = []
        for phase in phases:
            with strategy.scope():
                optimizer = optimization.make_optimizer(self.learning_rate, options.mixed_precision)
                optimizer.build(phase.variables)
            checkpoint = tf.train.Checkpoint(
                optimizer=optimizer,
                step=self.step,
                epochs_done=self.epochs_done,
                epoch_steps=self.epoch_steps,
                random_states=random_states(phase.checkpoint_objects),
                **phase.checkpoint_objects,
            )
            manager = distribution.make_checkpoint_manager(
                strategy, checkpoint, phase.directory, options.max_checkpoints_to_keep
            )
            self.runs.append(PhaseRun(phase, optimizer, manager))
        return files

    def resume(self):
        """Restores the latest phase that has a checkpoint; returns the index of the phase to
        run (a new run starts the task and begins with its first phase that has epochs)."""
        for index in reversed(range(len(self.runs))):
            run = self.runs[index]
            latest = run.manager.latest_checkpoint
            if latest and not (self.options.start_new_model and not self.chief):
                restore(run, latest, self.step)
                logging.info("Resumed from %s at step %d", latest, self.current_step())
                return index
        self.task.start()
        logging.info("Starting a new %s", self.task.description)
        return next(
            (index for index, run in enumerate(self.runs) if run.phase.epochs > 0),
            len(self.runs) - 1,
        )

    def run_phase(self, run, files, logger, stop):
        """Runs the phase's remaining epochs; True when --max_steps stopped it.

        Raises:
          utils.UserInputError: when its data gave no batch at all (every record skipped).
        """
        phase, options = run.phase, self.options
        first_epoch = self.epochs_done_int()
        if first_epoch >= phase.epochs:
            return False
        steps_done = distribution.variable_int(self.epoch_steps)
        dataset = training_input.make_training_dataset(
            self.task.config,
            options,
            files,
            options.seed,
            self.strategy,
            phase.keep_all_frames,
            self.skipped,
            first_epoch,
            phase.epochs,
            steps_done=steps_done,
            start_step=self.current_step(),
        )
        run.step = compile_step(
            self.strategy,
            phase,
            run.optimizer,
            options.clip_gradient_norm,
            element_spec=dataset.element_spec,
        )
        batches = corrupt_records.iterate_batches(
            dataset,
            files,
            self.skipped,
            # Several replicas must take every step together, even an empty one.
            drop_empty=self.strategy.num_replicas_in_sync == 1,
            video_id_key=options.video_id_key,
        )
        if steps_done:
            logging.info(
                "%s: epoch %d of %d, from its step %d",
                phase.name,
                first_epoch + 1,
                phase.epochs,
                steps_done + 1,
            )
            # A resumed epoch's rest is not its length: the next whole one is counted.
            self.epoch_length.start(phase.name, first_epoch + 1)
        else:
            logging.info("%s: epoch %d of %d", phase.name, first_epoch + 1, phase.epochs)
            self.epoch_length.start(phase.name, first_epoch)
        steps = self.run_steps(run, batches, logger, stop)
        if steps is None:  # --max_steps
            save_if_new(run.manager, self.current_step())
            return True
        self.epoch_length.end(options.batch_size)
        if not steps:
            raise utils.UserInputError(
                f"--train_data_pattern={options.train_data_pattern} gave no video to train on. "
                + (self.skipped.describe() if options.corrupt_record_policy == "skip" else "")
            )
        self.end_epochs(run, phase.epochs)
        return False

    def end_epochs(self, run, epoch):
        """Counts the epochs before `epoch` (0-based) as done and saves the checkpoint that
        records it (over a periodic checkpoint of the same step, which did not count them)."""
        if self.epochs_done_int() < epoch:
            self.epochs_done.assign(epoch)
            self.epoch_steps.assign(0)
            self.save(run.manager)
            if epoch < run.phase.epochs:
                logging.info("%s: epoch %d of %d", run.phase.name, epoch + 1, run.phase.epochs)

    def epochs_done_int(self):
        return distribution.variable_int(self.epochs_done)

    def run_steps(self, run, batches, logger, stop):
        """Runs the phase's step on each batch, with progress, periodic checkpoints, exports, and
        the end of each epoch when the first batch of the next one comes.

        Returns:
          the number of steps run, or None when --max_steps was reached.

        Raises:
          utils.UserInputError: when a step's loss is NaN or infinite (nothing of that step is
            applied or saved: the latest checkpoint keeps the last good weights).
          preemption.TrainingInterrupted: after SIGTERM or SIGINT (on a multi-worker cluster:
            SIGTERM to any worker), once the checkpoint is written.
        """
        options, manager = self.options, run.manager
        steps = 0
        self.last_save_time = time.monotonic()
        for batch in batches:
            epochs = utils.local_values(batch.pop("epoch")).numpy()
            if epochs.size:
                # Under several replicas an epoch may end inside a step: it counts from there.
                self.end_epochs(run, int(epochs.max()))
            next_step = self.current_step() + 1
            try:
                result = run.step(batch)
            except tf.errors.InvalidArgumentError as error:
                if optimization.NONFINITE_LOSS_MESSAGE not in str(error):
                    raise
                raise utils.UserInputError(
                    f"The training loss is NaN or infinite at step {next_step}; training "
                    f"stopped. The latest checkpoint ({manager.latest_checkpoint}) holds the last "
                    "weights saved before it. Lower --base_learning_rate or check the input data."
                ) from None
            self.step.assign_add(1)
            self.epoch_steps.assign_add(1)
            steps += 1
            global_step = next_step
            self.last_loss = result.loss
            logger.record(global_step, result)
            self.epoch_length.step(
                int(epochs.max()) if epochs.size else None,
                int(result.num_examples),
                options.batch_size,
            )
            if global_step % options.checkpoint_steps == 0 or self.checkpoint_due():
                self.save(manager)
            if options.export_model_steps and global_step % options.export_model_steps == 0:
                self.export_snapshot(run.phase, global_step)
            stop.check(global_step, lambda step=global_step: save_if_new(manager, step))
            if options.max_steps and global_step >= options.max_steps:
                return None
        return steps

    def save(self, manager):
        """Writes a checkpoint of the current step; the clock of --checkpoint_secs restarts."""
        manager.save(checkpoint_number=self.current_step())
        self.last_save_time = time.monotonic()

    def checkpoint_due(self):
        """True when --checkpoint_secs have passed since the last checkpoint. On a cluster the
        workers vote every CLUSTER_CLOCK_STEPS steps (one small all-reduce), and all save when
        any is due, so that every worker saves at the same step."""
        due = time.monotonic() - self.last_save_time >= self.options.checkpoint_secs
        if self.multi_worker:
            if self.current_step() % CLUSTER_CLOCK_STEPS:
                return False
            votes = self.strategy.run(lambda: tf.constant(int(due), tf.int32))
            due = int(self.strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)) > 0
        return due

    def export_snapshot(self, phase, step):
        """On the chief, writes a SavedModel of the phase's model to train_dir/export/step_N."""
        if self.chief and phase.export_model is not None:
            export_dir = os.path.join(self.options.train_dir, "export", f"step_{step}")
            saved_model.export_saved_model(phase.export_model, self.export_reader(), export_dir)
            logging.info("Exported a SavedModel to %s", export_dir)

    def export_reader(self):
        return readers.reader_for(self.task.config, self.options.video_id_key, check_labels=False)

    def fit(self):
        """Runs every phase to its end (or --max_steps); returns the result dict of `train`.

        A new model whose run stops before its first checkpoint (bad data, a refused teacher, a
        NaN loss, an interruption) leaves the directory as it found it: the chief removes the
        directory if the run made it, else what the run wrote in it (model_flags.json, an events
        file, a phase directory), and logs what it removed. The directory is train_dir, or the
        one --start_new_model empties (`new_model_dir`: a serial student's, for its own teacher).
        """
        options = self.options
        if self.chief and options.train_dir:
            self.found = DirectoryContents.of(options.new_model_dir or options.train_dir)
        try:
            return self.train_phases()
        except BaseException:
            if self.found is not None and not self.has_checkpoint():
                removed = self.found.remove_what_is_new()
                if removed:
                    logging.info(
                        "No checkpoint was written: removed what this run made (%s).",
                        ", ".join(removed),
                    )
            raise

    def has_checkpoint(self):
        """True when train_dir, or a phase's directory, holds a checkpoint."""
        directories = {self.options.train_dir} | {run.manager.directory for run in self.runs}
        return any(
            tf.io.gfile.isdir(directory) and tf.train.latest_checkpoint(directory)
            for directory in directories
        )

    def train_phases(self):
        """`fit` without the clean-up after a failure."""
        options = self.options
        files = self.prepare()
        active = self.resume()
        first_step = self.current_step()
        if self.chief:
            self.task.config.save(options.train_dir)
        logging.info("Training on %d file(s) matching %s", len(files), options.train_data_pattern)
        logger = progress.ProgressLogger(
            options.summary_dir or options.train_dir,
            options.log_every_n_steps,
            self.learning_rate,
            write_summaries=self.chief,
        )
        try:
            with preemption.stop_watcher(self.strategy) as stop:
                if options.max_steps and self.current_step() >= options.max_steps:
                    logging.info(
                        "At step %d >= --max_steps=%d: nothing to do.",
                        self.current_step(),
                        options.max_steps,
                    )
                else:
                    active = self.run_phases(active, files, logger, stop)
        finally:
            logger.close()  # before a clean-up removes its events file
        run = self.runs[active]
        save_if_new(run.manager, self.current_step())
        finished = active == len(self.runs) - 1
        steps_run = self.current_step() - first_step
        if finished and not steps_run:
            logging.info(
                "Nothing left to train: every epoch was done by step %d (%s). Raise --num_epochs "
                "or --max_steps to train further.",
                self.current_step(),
                run.manager.latest_checkpoint,
            )
        elif finished:
            logging.info(
                "Done at step %d; checkpoint %s", self.current_step(), run.manager.latest_checkpoint
            )
            if self.chief and options.final_export_dir:
                saved_model.export_saved_model(
                    self.task.final_model, self.export_reader(), options.final_export_dir
                )
                logging.info("Exported the trained model to %s", options.final_export_dir)
        else:
            logging.info(
                "Stopped in phase %s at step %d (%s).",
                run.phase.name,
                self.current_step(),
                run.manager.latest_checkpoint,
            )
        if options.corrupt_record_policy == "skip":
            logging.warning("%s (counted on every pass over the data)", self.skipped.describe())
        return {
            "global_step": self.current_step(),
            "steps_run": steps_run,
            "finished": finished and self.epochs_done_int() >= run.phase.epochs,
            "last_loss": None if self.last_loss is None else float(self.last_loss),
            "checkpoint": self.runs[-1].manager.latest_checkpoint,
            "phase": run.phase.name,
            "skipped_records": self.skipped.count,
            "chief": self.chief,
        }

    def run_phases(self, active, files, logger, stop):
        """Runs the phases from `active` on; returns the index of the phase it ended in."""
        for index in range(active, len(self.runs)):
            run = self.runs[index]
            if index > active:
                logging.info(
                    "Phase %s done at step %d", self.runs[index - 1].phase.name, self.current_step()
                )
                self.epochs_done.assign(0)
                self.epoch_steps.assign(0)
                # The new phase's first checkpoint marks where it starts for a resume.
                self.save(run.manager)
            if self.run_phase(run, files, logger, stop):
                return index
        return len(self.runs) - 1


@dataclasses.dataclass
class Stage:
    """One training of a run that needs several in turn (tasks.make_stages): a serial student's
    own teacher, then the student. Each is a task trained by this loop in its own train_dir."""

    name: str  # what the progress lines call it: "teacher", "student"
    task: object
    options: object  # its config.TrainOptions


def train_stages(stages, strategy=None):
    """Trains `stages` in order, each to its end, with one strategy; a stage that stops before
    its end (--max_steps, or its last phase not reached) ends the run there.

    Returns:
      the result dict of `train` for each stage run, in order.
    """
    strategy = strategy or distribution.make_strategy(stages[0].options.strategy)
    epoch_length = progress.EpochLength()  # one warning for the whole run
    results = []
    for index, stage in enumerate(stages):
        if len(stages) > 1:
            logging.info(
                "Stage %d of %d: the %s (%s) in %s",
                index + 1,
                len(stages),
                stage.name,
                stage.task.description,
                stage.options.train_dir,
            )
        results.append(train(stage.task, stage.options, strategy, epoch_length))
        if not results[-1]["finished"]:
            break
    return results


def train(task, options, strategy=None, epoch_length=None):
    """Trains `task` with `options`.

    Args:
      task: a tasks.SupervisedTask or tasks.DistillationTask; it builds its models under the
        strategy's scope (`build()`), sets up a new run
        (`start()`), and supplies `phases(options)`, `config` (its RunConfig), `final_model`
        (checkpointed last, exported at the end) and `description`.
      options: config.TrainOptions.
      strategy: a tf.distribute strategy; None builds the one `options.strategy` names.
      epoch_length: a progress.EpochLength shared with other trainings of the run (one
        warning about short epochs for all); None: its own.

    Returns:
      dict with `global_step`, `steps_run` (by this call), `finished` (every epoch of every
      phase done), `last_loss`, `checkpoint` (the latest
      checkpoint in train_dir, which eval.py reads; None while a distillation is in its first
      phase), `phase` (the name of the phase it ended in), `skipped_records` (what
      --corrupt_record_policy=skip left out, every pass counted) and `chief` (this task wrote
      the checkpoints).
    """
    strategy = strategy or distribution.make_strategy(options.strategy)
    return Trainer(task, options, strategy, epoch_length).fit()
