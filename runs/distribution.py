"""Chooses the `tf.distribute` strategy of a run and gives each worker its role.

    strategy = distribution.make_strategy("auto")
    with strategy.scope():
        model = ...          # variables mirrored on every replica
        optimizer = ...

`--strategy`:
- `auto`: multi-worker mirrored when `TF_CONFIG` names a cluster of more than one task, mirrored
  over the local GPUs when there are several, one device (the GPU, else the CPU) otherwise.
- `one_device`, `mirrored` (all local GPUs; with no GPU, every logical CPU device), `tpu`.
- `multi_worker_mirrored`: the cluster in `TF_CONFIG`. Cloud services name the coordinating task
  `chief` (Vertex AI) or `master` (AI Platform Training); `master` is renamed `chief` before
  TensorFlow reads it.

Inside a replica's step, `replica_share` and `share_of_replicas` scale losses so that the
gradients summed over replicas equal one device's gradients of the global batch mean, and
`sum_over_replicas` aggregates gradients where they must be clipped before the optimizer sums
them. Only the chief writes checkpoints, summaries and exports; the other workers take part in
every save (collective ops need all of them) and discard what they wrote.
"""

import json
import os
import tempfile

import tensorflow as tf
from absl import logging

import utils

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu")
STRATEGY_HELP = (
    "tf.distribute strategy: auto (multi-worker when TF_CONFIG names a cluster, all local GPUs "
    "when there are several, else one device), one_device, mirrored, multi_worker_mirrored, tpu."
)


def tf_config():
    """The parsed `TF_CONFIG` environment variable with `master` renamed `chief` (written back,
    so TensorFlow's own cluster resolver reads the same), or {} when it is not set.

    Raises:
      utils.UserInputError: when TF_CONFIG is not valid JSON.
    """
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise utils.UserInputError(f"TF_CONFIG is not valid JSON: {error}") from None
    cluster = config.get("cluster", {})
    task = config.get("task", {})
    if "master" in cluster or task.get("type") == "master":
        if "master" in cluster:
            cluster["chief"] = cluster.pop("master")
        if task.get("type") == "master":
            task["type"] = "chief"
        os.environ["TF_CONFIG"] = json.dumps(config)
    return config


def cluster_size(config):
    """Number of training tasks (chief and workers) in a TF_CONFIG dict."""
    cluster = config.get("cluster", {})
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def local_devices():
    """Names of the local GPUs, or of the logical CPU devices when there is no GPU."""
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return [device.name for device in gpus]
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def make_strategy(name):
    """Builds the strategy `--strategy=name` asks for (see the module docstring).

    Raises:
      utils.UserInputError: for an unknown name or a TPU that cannot be reached.
    """
    if name not in STRATEGIES:
        raise utils.UserInputError(f"--strategy={name}: choose one of {', '.join(STRATEGIES)}.")
    config = tf_config()
    if name == "auto":
        if cluster_size(config) > 1:
            name = "multi_worker_mirrored"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "one_device"
    if name == "one_device":
        strategy = tf.distribute.OneDeviceStrategy(local_devices()[0])
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy(local_devices())
    elif name == "multi_worker_mirrored":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = make_tpu_strategy()
    logging.info("--strategy=%s: %d replica(s) in sync", name, strategy.num_replicas_in_sync)
    return strategy


def make_tpu_strategy():
    """TPUStrategy on the TPU named by `TPU_NAME` (or the local one)."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=os.environ.get("TPU_NAME", "local")
        )
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as error:
        raise utils.UserInputError(
            f"--strategy=tpu: no TPU could be reached ({str(error)[:200]})."
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def task_role(strategy):
    """(task type, task id) of this process: ("chief", 0) outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None:
        return "chief", 0
    return task_type, int(resolver.task_id or 0)


def is_chief(strategy):
    """True for the task that writes checkpoints and summaries: the chief, or worker 0 in a
    cluster without a chief, or the only process."""
    task_type, task_id = task_role(strategy)
    if task_type == "chief":
        return True
    if task_type == "worker" and task_id == 0:
        resolver = strategy.cluster_resolver
        return "chief" not in resolver.cluster_spec().as_dict()
    return False


def input_shard(input_context, files):
    """How the worker with `input_context` reads `files`.

    Returns:
      (its files, record shard (count, index) or None): whole files when there are at least as
      many as input pipelines, else every file and one record in `count`.
    """
    count = input_context.num_input_pipelines
    index = input_context.input_pipeline_id
    if count == 1:
        return files, None
    if len(files) >= count:
        return files[index::count], None
    return files, (count, index)


def replica_share(batch_mean, batch_size):
    """Scales a replica's batch-mean loss by its share of the global batch.

    Summed over replicas this is the mean over the global batch; a replica with an empty batch
    (the end of the data) contributes 0, not the NaN of an empty mean.

    Args:
      batch_mean: scalar, the loss averaged over this replica's examples.
      batch_size: scalar int, the number of those examples.
    """
    local = tf.cast(batch_size, tf.float32)
    context = tf.distribute.get_replica_context()
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, local) if context else local
    return tf.math.multiply_no_nan(
        tf.cast(batch_mean, tf.float32), tf.math.divide_no_nan(local, total)
    )


def share_of_replicas(loss):
    """A loss every replica computes in full (regularization) divided by the replica count."""
    return loss / tf.distribute.get_strategy().num_replicas_in_sync


def sum_over_replicas(gradients):
    """Gradients summed over the replicas (an identity on one replica); None stays None."""
    context = tf.distribute.get_replica_context()
    if context is None or tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return gradients
    present = [gradient for gradient in gradients if gradient is not None]
    summed = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present) if present else [])
    return [None if gradient is None else next(summed) for gradient in gradients]


class WorkerCheckpointManager:
    """A non-chief worker's stand-in for `tf.train.CheckpointManager`: saves when the chief
    saves (so the collective ops match), each time into a fresh scratch directory it then
    deletes; `latest_checkpoint` is the shared directory's, which is what the worker restores
    from."""

    def __init__(self, checkpoint, shared_directory):
        self.checkpoint = checkpoint
        self.shared_directory = shared_directory
        self._last_saved = None

    @property
    def latest_checkpoint(self):
        if self._last_saved is not None:
            return self._last_saved
        return tf.train.latest_checkpoint(self.shared_directory)

    def save(self, checkpoint_number=None, **options):
        scratch = tempfile.mkdtemp(prefix="yt8m-worker-checkpoint-")
        try:
            manager = tf.train.CheckpointManager(self.checkpoint, scratch, max_to_keep=1)
            path = manager.save(checkpoint_number=checkpoint_number, **options)
        finally:
            tf.io.gfile.rmtree(scratch)
        self._last_saved = os.path.join(self.shared_directory, os.path.basename(path))
        return self._last_saved


def make_checkpoint_manager(strategy, checkpoint, directory, max_to_keep):
    """The chief's `tf.train.CheckpointManager` on `directory`, or a worker's scratch one."""
    if is_chief(strategy):
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
    return WorkerCheckpointManager(checkpoint, directory)


def inference_strategy():
    """The strategy eval and inference use: mirrored over the local GPUs when there are
    several, else None (TensorFlow places the model on the first GPU, or the CPU)."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([device.name for device in gpus])
    return None


def split_over_replicas(strategy, tensors):
    """Cuts `[batch, ...]` tensors into one contiguous slice per replica (the last ones may be
    short or empty), on the host; returns the distributed tuple. Runs eagerly or traced."""
    replicas = strategy.num_replicas_in_sync
    chunk = (tf.shape(tensors[0])[0] + replicas - 1) // replicas

    def replica_slice(context):
        start = context.replica_id_in_sync_group * chunk
        with tf.device("/cpu:0"):
            return tuple(tensor[start : start + chunk] for tensor in tensors)

    return strategy.experimental_distribute_values_from_function(replica_slice)


def open_spec(tensor):
    """The TensorSpec of any batch of the kind of `tensor`: every dimension open but the last
    of a matrix (the features)."""
    rank = tensor.shape.rank
    return tf.TensorSpec(
        [None] * (rank - 1) + [tensor.shape[-1]] if rank > 1 else [None], tensor.dtype
    )


def predict_on_replicas(strategy, model, finish=None):
    """A compiled `predict(video_matrix, num_frames)` -> `finish(outputs)` for the whole batch.

    `outputs` is the model's `{predictions, logits}` `[batch, num_classes]` in input order; with a
    strategy each replica runs the model on its slice of the batch (the model must have been
    built under `strategy.scope()`), without one the model is called directly. `finish` (e.g.
    top-k) runs on the whole batch in the same compiled function; None returns `outputs`.

    It is traced once, at its first call, for every batch size and video length (`open_spec`):
    batches differ in their frames and the last one in its size, and each new shape would
    otherwise be traced again (seconds at the paper's size, and TensorFlow's retracing warning).
    """
    finish = finish or (lambda outputs: outputs)

    def model_outputs(video_matrix, num_frames):
        outputs = model(video_matrix, num_frames=num_frames, training=False)
        return {"predictions": outputs["predictions"], "logits": outputs["logits"]}

    def predict_batch(video_matrix, num_frames):
        if strategy is None:
            return finish(model_outputs(video_matrix, num_frames))
        distributed = split_over_replicas(strategy, (video_matrix, num_frames))
        outputs = strategy.run(model_outputs, args=distributed)
        return finish(
            {
                name: tf.concat(strategy.experimental_local_results(value), axis=0)
                for name, value in outputs.items()
            }
        )

    compiled = []

    def predict(video_matrix, num_frames):
        if not compiled:
            signature = [open_spec(video_matrix), open_spec(num_frames)]
            compiled.append(tf.function(predict_batch, input_signature=signature))
        return compiled[0](video_matrix, num_frames)

    return predict


def variable_int(variable):
    """The value of an integer variable (a step counter), mirrored or not, as a Python int."""
    return int(tf.convert_to_tensor(variable).numpy())
