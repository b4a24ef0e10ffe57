"""How a training run stops when it is asked to: after a whole step, with a checkpoint of it.

    with preemption.stop_watcher(strategy) as stop:
        for batch in batches:
            ...one step...
            stop.check(global_step, save)   # save() writes a checkpoint, returns its path

- One process (`StopSignals`): SIGTERM (a preemption) and SIGINT (Ctrl-C) ask the loop to stop
  after the current step; `check` then saves and raises `TrainingInterrupted`. A second SIGINT
  interrupts at once.
- A multi-worker cluster (`ClusterPreemption`): a SIGTERM reaches one worker, but every worker
  must stop at the same step (the others would otherwise wait forever, or fail, on the next
  collective op). TensorFlow's `tf.distribute.experimental.PreemptionCheckpointHandler` agrees
  the step over the cluster's coordination service: the preempted worker names the step after
  the one it is in, every worker acknowledges and runs up to it, then each saves (the chief into
  train_dir, the others into scratch directories, as every save of a multi-worker run) and
  raises `TrainingInterrupted` with exit status 143, the code cloud schedulers treat as
  restartable. Rerunning the job resumes every worker from that checkpoint. SIGINT stays local.
"""

import contextlib
import signal
import tempfile
import threading

import tensorflow as tf
from absl import logging

import utils

# The exit status of every worker stopped by a preemption (128 + SIGTERM), which TensorFlow's
# handler also uses on Google Cloud as its "restart me" code.
RESTARTABLE_EXIT_CODE = 128 + signal.SIGTERM.value


class TrainingInterrupted(utils.Interrupted):
    """Training stopped on request after a whole step; `checkpoint` holds that step. A command
    line run by `utils.run_command_line` then exits with `exit_code` after one line."""

    def __init__(self, reason, step, checkpoint, exit_code):
        super().__init__(
            f"{reason}: stopped at step {step} and saved {checkpoint}. Run the same command "
            "again to resume from there."
        )
        self.step = step
        self.checkpoint = checkpoint
        self.exit_code = exit_code


class StopSignals:
    """While active, the signals in `handled` ask training to stop after the current step
    instead of killing it; a second SIGINT interrupts at once.

    Signal handlers can only be set from the main thread; elsewhere this does nothing.
    """

    def __init__(self, handled=(signal.SIGTERM, signal.SIGINT)):
        self.handled = tuple(handled)
        self.received = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signal_number in self.handled:
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

    def check(self, step, save):
        """After step `step`: when a signal came, calls `save()` (returns the checkpoint's path)
        and raises TrainingInterrupted."""
        if self.received:
            checkpoint = save()
            code = 128 + signal.Signals[self.received].value
            raise TrainingInterrupted(f"{self.received} received", step, checkpoint, code)


class ClusterPreemption:
    """SIGTERM on any worker of a MultiWorkerMirroredStrategy cluster stops every worker at
    one agreed step, each after saving it (see the module docstring). SIGINT is left to a
    StopSignals for SIGINT alone.

    `check(step, save)` must be called after every step on every worker (it counts the steps
    the workers agree on). Build it in the main thread, after the strategy.
    """

    def __init__(self, strategy):
        self._step = None
        self._save = None
        self._checkpoint = None
        self.own_sigterm = threading.Event()
        # The handler keeps its own count of steps in a checkpoint of its own; ours (step,
        # epochs, phases) are saved by `save`, so its checkpoint goes to a scratch directory
        # and starts from zero in every process of every run.
        self._scratch = tempfile.TemporaryDirectory(prefix="yt8m-preemption-")
        counter_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(), self._scratch.name, max_to_keep=1
        )
        # The handler polls `own_sigterm` (every second) instead of setting its own signal
        # handler, so this object knows whether the preemption was its own.
        termination = tf.distribute.experimental.TerminationConfig(
            termination_watcher_fn=self.own_sigterm.is_set,
            exit_fn=self._stop,
            save_fn=self._save_step,
        )
        self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
            strategy.cluster_resolver, counter_manager, termination_config=termination
        )
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._handle_sigterm)

    def check(self, step, save):
        """After step `step`: saves and raises TrainingInterrupted when the cluster agreed to
        stop at this step; otherwise returns (and keeps count)."""
        self._step, self._save = step, save
        self._handler.save_checkpoint_if_preempted()

    def _handle_sigterm(self, unused_signal_number, unused_frame):
        logging.warning("SIGTERM received: every worker stops at a step they agree on.")
        self.own_sigterm.set()

    def _save_step(self):
        self._checkpoint = self._save()

    def _stop(self):
        if self.own_sigterm.is_set():
            reason = "SIGTERM received (preemption of this worker)"
        else:
            reason = "Another worker of the cluster was preempted (SIGTERM)"
        raise TrainingInterrupted(reason, self._step, self._checkpoint, RESTARTABLE_EXIT_CODE)

    def close(self):
        """Stops the handler's watcher threads and gives SIGTERM back its previous handler."""
        # The handler stops its threads when it is deleted (it has no other way to).
        self._handler = None
        signal.signal(signal.SIGTERM, self._previous_sigterm)
        self._scratch.cleanup()


def is_multi_worker(strategy):
    """True when `strategy` spans a cluster of several worker processes."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    resolver = strategy.cluster_resolver
    return bool(resolver and resolver.cluster_spec().jobs)


@contextlib.contextmanager
def stop_watcher(strategy):
    """The way this run is asked to stop: a ClusterPreemption (with SIGINT stopping this
    process alone) on a multi-worker cluster, StopSignals otherwise. Yields an object with
    `check(step, save)`."""
    if not (is_multi_worker(strategy) and threading.current_thread() is threading.main_thread()):
        with StopSignals() as stop:
            yield stop
        return
    cluster = ClusterPreemption(strategy)
    try:
        with StopSignals(handled=(signal.SIGINT,)) as local_stop:
            yield CombinedStop(cluster, local_stop)
    finally:
        cluster.close()


class CombinedStop:
    """A cluster's preemption and a local SIGINT, checked after each step."""

    def __init__(self, cluster, local_stop):
        self.cluster = cluster
        self.local_stop = local_stop

    def check(self, step, save):
        self.local_stop.check(step, save)
        self.cluster.check(step, save)
