"""The benchmark's training step times: the project's own loop (trainer.py), every step timed.

    training = benchmark_training.measure_training(pattern, work_dir, sizes, batch_size=48,
                                                   epochs=3, num_readers=4)

Training (`training` in benchmark.json): the median step time of the project's loop for the
teacher, joint distillation and fine-tuning of the student, at one batch on the same data, and
the longest pause between epochs. `training_configs` gives that teacher and student-10 (of given
model sizes); benchmark.py's input measurement (benchmark_input.py) reads for the same two.
"""

import itertools
import os
import statistics
import time

import tensorflow as tf

import utils
from runs import config, distribution
from training import tasks, trainer

# The teacher's block size in every measurement (benchmark.py's inference ones too).
TEACHER_BLOCK_SIZE = 20
# The student of the input and training measurements: 1 frame in 10, uniform.
STUDENT_K = 10


class StepTimingTrainer(trainer.Trainer):
    """trainer.Trainer that records when each training step starts and ends.

    `steps` gets one dict per step: `phase` (its name), `epoch` (0-based, of the phase),
    `start` and `end` (seconds of `clock`; `end` once the step's loss is computed) and `videos`.
    """

    def __init__(self, task, options, strategy, clock=time.perf_counter):
        super().__init__(task, options, strategy)
        self.clock = clock
        self.steps = []

    def run_steps(self, run, batches, logger, stop):
        compiled_step = run.step
        current_epoch = [0]

        def noting_epochs(batches):
            for batch in batches:
                epochs = utils.local_values(batch["epoch"]).numpy()
                if epochs.size:
                    current_epoch[0] = int(epochs.max())
                yield batch

        def timed_step(batch):
            start = self.clock()
            result = compiled_step(batch)
            float(result.loss)  # waits for the step to finish
            self.steps.append(
                {
                    "phase": run.phase.name,
                    "epoch": current_epoch[0],
                    "start": start,
                    "end": self.clock(),
                    "videos": int(result.num_examples),
                }
            )
            return result

        run.step = timed_step
        try:
            return super().run_steps(run, noting_epochs(batches), logger, stop)
        finally:
            run.step = compiled_step


def median_step_s(steps, phase):
    """Median seconds of `phase`'s steps (from `StepTimingTrainer.steps`), its first step (which
    traces the compiled step) left out when there are others."""
    durations = [step["end"] - step["start"] for step in steps if step["phase"] == phase]
    if len(durations) > 1:
        durations = durations[1:]
    return statistics.median(durations)


def epoch_pauses_s(steps):
    """Per change of epoch within a phase: the seconds from the start of the epoch's last step to
    the start of the next epoch's first, minus the phase's median such interval within an epoch
    (a normal step and what the loop does between two steps). Includes a slow last (partial)
    step, the end-of-epoch checkpoint and any wait for the next epoch's first batch.

    Returns:
      a list of {"phase", "epoch" (the epoch that ends), "pause_s"}.
    """
    pauses = []
    for phase in dict.fromkeys(step["phase"] for step in steps):
        phase_steps = [step for step in steps if step["phase"] == phase]
        pairs = list(itertools.pairwise(phase_steps))
        within = [
            after["start"] - before["start"]
            for before, after in pairs[1:]  # the first interval holds the trace
            if before["epoch"] == after["epoch"]
        ]
        if not within:
            continue
        normal = statistics.median(within)
        for before, after in pairs:
            if before["epoch"] != after["epoch"]:
                pauses.append(
                    {
                        "phase": phase,
                        "epoch": before["epoch"],
                        "pause_s": after["start"] - before["start"] - normal,
                    }
                )
    return pauses


def training_configs(sizes):
    """(teacher, student-10) RunConfigs of the model sizes `sizes` (RunConfig fields)."""
    teacher = config.RunConfig(block_size=TEACHER_BLOCK_SIZE, **sizes)
    student = teacher.replace(
        model=config.STUDENT_MODEL,
        block_size=config.STUDENT_BLOCK_SIZE,
        frame_stride=100 // STUDENT_K,
        teacher_block_size=TEACHER_BLOCK_SIZE,
    )
    return teacher, student


def timed_training(task, options):
    """Trains `task` from scratch with `options` (train_dir emptied first); the step records."""
    if tf.io.gfile.exists(options.train_dir):
        tf.io.gfile.rmtree(options.train_dir)
    strategy = distribution.make_strategy(options.strategy)
    timing = StepTimingTrainer(task, options, strategy)
    timing.fit()
    return timing.steps


def measure_training(pattern, work_dir, sizes, batch_size, epochs, num_readers):
    """Median step times of the teacher trained alone, of joint distillation (teacher and
    student-10 trained together) and of fine-tuning the student alone, at the same batch on the
    same data, with the project's loop (trainer.py), and the longest pause between epochs.

    Returns:
      {"teacher_step_s", "joint_step_s", "finetune_step_s", "epoch_pause_s" (the longest of
      `epoch_pauses_s`, 0 without one), "joint_over_teacher", "finetune_over_teacher",
      "first_step_s" (per phase: tracing included), "epoch_pauses" (every change of epoch),
      "steps" (per phase), "batch_size", "epochs", "model_sizes"}.
    """
    teacher_config, student_config = training_configs(sizes)
    options = config.TrainOptions(
        train_data_pattern=pattern,
        batch_size=batch_size,
        num_epochs=epochs,
        num_readers=num_readers,
    )
    teacher_steps = timed_training(
        tasks.make_task(teacher_config),
        options.replace(train_dir=os.path.join(work_dir, "teacher")),
    )
    student_steps = timed_training(
        tasks.make_task(
            student_config, config.DistillOptions(joint_epochs=epochs, finetune_epochs=epochs)
        ),
        options.replace(train_dir=os.path.join(work_dir, f"student-{STUDENT_K}")),
    )
    phases = {"teacher": "train", "joint": "distill", "finetune": "finetune"}
    records = {"teacher": teacher_steps, "joint": student_steps, "finetune": student_steps}
    result = {
        f"{name}_step_s": median_step_s(records[name], phase) for name, phase in phases.items()
    }
    pauses = epoch_pauses_s(teacher_steps) + epoch_pauses_s(student_steps)
    result["epoch_pause_s"] = max([0.0] + [pause["pause_s"] for pause in pauses])
    result["joint_over_teacher"] = result["joint_step_s"] / result["teacher_step_s"]
    result["finetune_over_teacher"] = result["finetune_step_s"] / result["teacher_step_s"]
    result["first_step_s"] = {
        name: next(step["end"] - step["start"] for step in records[name] if step["phase"] == phase)
        for name, phase in phases.items()
    }
    result["epoch_pauses"] = pauses
    result["steps"] = {
        name: sum(step["phase"] == phase for step in records[name])
        for name, phase in phases.items()
    }
    result.update(batch_size=batch_size, epochs=epochs, model_sizes=dict(sizes))
    return result
