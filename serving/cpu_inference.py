"""How eval and inference run a checkpoint's model on a CPU, where the model and the reader share
the cores; with a GPU both functions return what they are given.

    predict = cpu_inference.predict_function(model, distribution.predict_on_replicas(None, model))
    dataset = cpu_inference.input_dataset(dataset)

- `predict_function`: the compiled predict is traced with the hierarchical models' block LSTMs
  unrolled (unrolled_lstm.py): the Keras loop's per-step cost weighs on a student's blocks of 5
  frames. The paper-size student-10's model ran 7-15 % faster, the teacher's as fast; scores
  agree within 1e-6.
- `input_dataset`: tf.data's autotuning is turned off for the reader's dataset (its parallel
  calls are then the cores, its prefetch one batch). With it, the paper-size student-10's
  inference on 2 cores ran at either the model's own rate or about 30 % below it, from one pass
  to the next; without it, at the model's rate in every pass measured. The teacher, whose model
  is 7x slower for the same reading, did not change.
"""

import tensorflow as tf

from serving import unrolled_lstm


def on_cpu():
    """True when no GPU is visible: the model runs on the cores that read."""
    return not tf.config.list_logical_devices("GPU")


def predict_function(model, predict):
    """`predict(video_matrix, num_frames)`, a compiled function of `model` traced at its first
    call with one input signature (as distribution.predict_on_replicas makes), traced with the
    LSTMs' block steps unrolled on a CPU (`unrolled_lstm.unrolled_present_sequences`). On a GPU
    the Keras LSTM runs cuDNN, and `predict` is returned as it is."""
    if not on_cpu():
        return predict
    traced = []

    def predict_unrolled(video_matrix, num_frames):
        if traced:
            return predict(video_matrix, num_frames)
        with unrolled_lstm.unrolled_lstms(model, every_sequence=False):
            outputs = predict(video_matrix, num_frames)
        traced.append(True)
        return outputs

    return predict_unrolled


def input_dataset(dataset):
    """The reader's `dataset` without tf.data's autotuning on a CPU (see the module docstring)."""
    if not on_cpu():
        return dataset
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
