"""What training shows while it runs: a progress line and TensorBoard scalars per logged step,
and a warning when an epoch is only a few steps (`EpochLength`).

step     100 | loss    4.1234 | lr 1.000e-03 |    812.4 examples/s | batch GAP 0.6120 | ...
"""

import dataclasses
import math
import time

import tensorflow as tf
from absl import logging

import eval_util
import utils


def format_progress(step, loss, learning_rate, examples_per_second, gap, hit_at_one):
    """One progress line."""
    return (
        f"step {step:>7d} | loss {loss:9.4f} | lr {learning_rate:.3e} | "
        f"{examples_per_second:8.1f} examples/s | batch GAP {gap:.4f} | "
        f"batch Hit@1 {hit_at_one:.4f}"
    )


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


class ProgressLogger:
    """A progress line and TensorBoard scalars every `every_n_steps` steps (and at step 1).

    Logs the loss, the learning rate, examples/s (over all replicas), and the GAP and Hit@1 of
    this worker's share of the batch, plus any extra scalars a step reports (e.g. distillation
    terms). Only the chief writes summaries (`log_dir`); other workers get `write_summaries`
    False. `clock` (seconds) is injectable for tests.
    """

    def __init__(
        self, log_dir, every_n_steps, learning_rate, write_summaries=True, clock=time.monotonic
    ):
        """`learning_rate`: a callable of no argument returning the current rate."""
        if write_summaries:
            self.writer = tf.summary.create_file_writer(log_dir)
        else:
            self.writer = tf.summary.create_noop_writer()
        self.every_n_steps = every_n_steps
        self.learning_rate = learning_rate
        self.clock = clock
        self.examples = 0
        self.start = clock()

    def record(self, step, result):
        """Takes the `StepResult` of global step `step`; returns the line it logged, or None."""
        self.examples += int(result.num_examples)
        if step % self.every_n_steps and step != 1:
            return None
        labels = utils.local_values(result.labels).numpy()
        predictions = utils.local_values(result.predictions).numpy()
        gap = eval_util.calculate_gap(predictions, labels)
        hit_at_one = eval_util.calculate_hit_at_one(predictions, labels)
        now = self.clock()
        examples_per_second = self.examples / max(now - self.start, 1e-9)
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
        self.start = now
        return line

    def flush(self):
        self.writer.flush()

    def close(self):
        """Flushes and closes the summary writer (its events file is then complete)."""
        self.writer.close()


# An epoch of fewer steps than this is warned about: the batch is large for the data.
SHORT_EPOCH_STEPS = 10


def short_epoch_warning(phase, steps, videos, batch_size):
    """The warning about an epoch of `steps` steps over `videos` videos."""
    if videos >= SHORT_EPOCH_STEPS:
        fitting = videos // SHORT_EPOCH_STEPS
        advice = (
            f"give a smaller --batch_size (--batch_size={fitting} gives "
            f"{math.ceil(videos / fitting)} steps an epoch) or more videos"
        )
    else:
        advice = "give more videos"
    return (
        f"An epoch of phase {phase} is only {steps} step(s): {videos} videos at "
        f"--batch_size={batch_size}. Training learns a step at a time (and counts progress, "
        f"checkpoints and the learning rate in steps): {advice}."
    )


class EpochLength:
    """Counts the steps and videos of the first whole epoch trained, and warns once when it is
    only a few steps (fewer than SHORT_EPOCH_STEPS). One instance can serve several trainings
    of a run (a serial student's teacher, then the student): the first epoch of any of them
    is checked, and the warning is given at most once."""

    def __init__(self):
        self.checked = False
        self.phase = None
        self.epoch = None  # the epoch being counted; None: none
        self.steps = 0
        self.videos = 0

    def start(self, phase, epoch):
        """A phase's input begins at the start of `epoch`: it is counted unless one was."""
        if not self.checked:
            self.phase, self.epoch, self.steps, self.videos = phase, epoch, 0, 0

    def step(self, epoch, videos, batch_size):
        """A step of `epoch` (None: the current one) on `videos` videos; a step of the next
        epoch ends the count. Returns the warning logged, or None."""
        if self.checked or self.epoch is None:
            return None
        if epoch is not None and epoch != self.epoch:
            return self.end(batch_size)
        self.steps += 1
        self.videos += videos
        return None

    def end(self, batch_size):
        """The epoch being counted is over (its data ran out, or the next one began): warns
        when it was short. Returns the warning logged, or None."""
        if self.checked or self.epoch is None or not self.steps:
            return None
        self.checked = True
        if self.steps >= SHORT_EPOCH_STEPS:
            return None
        warning = short_epoch_warning(self.phase, self.steps, self.videos, batch_size)
        logging.warning(warning)
        return warning
