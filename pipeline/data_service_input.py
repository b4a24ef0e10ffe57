"""Reading input through tf.data service: the one place where a pipeline is handed to it.

    batches = data_service_input.distribute_dataset(batches, "grpc://host:5050", job_name)

tf.data service (`tf.data.experimental.service`) runs a dataset's ops on CPU machines (its
workers, started by `data_service.py`) and streams the resulting elements to the trainer, eval
or inference process. The pipelines hand it their dataset up to and including the parse
(`reader.parse_serialized`), so the workers read the shards, cut out the frames and check the
records; the consumer only prefetches the parsed batches (`video_ids [B]`,
`video_matrix [B, T', D]` uint8, `num_frames [B]`, `labels [B, C]`, ...).

Sharding is DYNAMIC (a "distributed epoch"): the dispatcher hands the source's elements, the
files, out one at a time to whichever worker asks next. Each file goes to exactly one worker,
so each video is read once, as long as no worker fails; a worker that fails loses the files it
was reading (tf.data service's at-most-once visitation). The order in which batches arrive
depends on the workers' timing.

Consumers that give the same job name share one job (and split its elements); a job that has
run to its end gives nothing to a consumer that joins it later, so names are made per run.
"""

import hashlib
import re
import uuid

import numpy as np
import tensorflow as tf
from absl import flags

import utils

ADDRESS_FLAG = "--tf_data_service_address"
JOB_NAME_FLAG = "--tf_data_service_job_name"
ADDRESS_PROTOCOL = "grpc://"
ADDRESS_HELP = (
    "Read the input through the tf.data service whose dispatcher is at this address "
    "(grpc://host:port; see data_service.py). Empty: read the files here."
)
JOB_NAME_HELP = (
    "Name of the tf.data service job (consumers with the same name share one job, e.g. the "
    "workers of a multi-worker training). Empty: a name made for the run."
)
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[^:/\s\[\]]+):(?P<port>\d+)$")


def define_flags(flag_values):
    """Defines --tf_data_service_address and --tf_data_service_job_name on `flag_values` (the
    flags of train.py, eval.py and inference.py)."""
    flags.DEFINE_string("tf_data_service_address", "", ADDRESS_HELP, flag_values=flag_values)
    flags.DEFINE_string("tf_data_service_job_name", "", JOB_NAME_HELP, flag_values=flag_values)


def check_host_port(address, flag_name):
    """Raises utils.UserInputError naming `flag_name` unless `address` is `host:port` with a
    port in 1..65535."""
    match = _HOST_PORT.match(address)
    if not match or not 1 <= int(match.group("port")) <= 65535:
        raise utils.UserInputError(
            f"{flag_name}={address}: give host:port, e.g. localhost:5050 (port 1-65535)."
        )


def check_service_address(address):
    """Raises utils.UserInputError naming --tf_data_service_address unless `address` is empty
    or `grpc://host:port`."""
    if not address:
        return
    if not address.startswith(ADDRESS_PROTOCOL):
        raise utils.UserInputError(
            f"{ADDRESS_FLAG}={address}: give the dispatcher as grpc://host:port, e.g. "
            "grpc://dispatcher-host:5050."
        )
    check_host_port(address[len(ADDRESS_PROTOCOL) :], ADDRESS_FLAG)


def check_service_options(address, corrupt_record_policy):
    """Checks the tf.data service flags of a command, and that its other flags can go with them.

    --corrupt_record_policy=skip tallies damaged shards in this process (a `tf.py_function`),
    which a tf.data service worker, running the dataset in another process, cannot do.

    Raises:
      utils.UserInputError: naming the flag(s).
    """
    check_service_address(address)
    if address and corrupt_record_policy == "skip":
        raise utils.UserInputError(
            f"--corrupt_record_policy=skip cannot be used with {ADDRESS_FLAG}: the service's "
            "workers cannot report the damaged shards they skip. Use "
            "--corrupt_record_policy=fail, or read the files here (no "
            f"{ADDRESS_FLAG})."
        )


def distribute_dataset(dataset, address, job_name=None):
    """`dataset`, produced by the tf.data service at `address` with DYNAMIC sharding.

    Every op of `dataset` runs on the service's workers. Its source must be splittable (a
    `from_tensor_slices` of the files, read by `interleave`), which the dispatcher hands out one
    element at a time: each file is read by one worker.

    Args:
      dataset: a `tf.data.Dataset`, e.g. of parsed batch dicts.
      address: the dispatcher, `grpc://host:port`.
      job_name: consumers with the same name share the job's elements; None: a job of its own.

    Returns:
      a dataset of the same elements (in an order that depends on the workers), prefetched.
    """
    distributed = dataset.apply(
        tf.data.experimental.service.distribute(
            processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
            service=address,
            job_name=job_name or None,
        )
    )
    return distributed.prefetch(tf.data.AUTOTUNE)


def read_once_job_name(given, kind):
    """The job name of one pass over a data set (`kind`: "eval", "inference"): `given` if the
    user gave one, else a name new at every call, so that a run never joins the finished job of
    an earlier one."""
    return given or f"yt8m-{kind}-{uuid.uuid4().hex[:12]}"


def training_job_name(given, train_dir, pipeline_label, num_input_pipelines):
    """The job name of a training pipeline, the same in every trainer worker.

    Workers of a multi-worker training must consume one job, so its name is derived from what
    they share: the user's name (or the train_dir) and `pipeline_label` (which phase, which
    epochs, the seed: a resumed or later phase gets a new job). One input pipeline with no name
    given gets a job of its own (None).
    """
    if not given and num_input_pipelines == 1:
        return None
    base = given or "yt8m-train-" + hashlib.sha1(train_dir.encode("utf-8")).hexdigest()[:12]
    return f"{base}-{pipeline_label}"


def epoch_file_slices(files, first_epoch, epochs, seed):
    """The splittable source of a training pipeline through the service: every remaining epoch's
    files, each epoch in its own seeded order.

    Returns:
      a dataset of (epoch scalar int64, file scalar string): epochs `first_epoch` to
      `epochs - 1` in turn, each with every file once, shuffled anew each epoch.
    """
    generator = np.random.default_rng(seed)
    epoch_numbers, epoch_files = [], []
    for epoch in range(first_epoch, epochs):
        epoch_numbers += [epoch] * len(files)
        epoch_files += [files[index] for index in generator.permutation(len(files))]
    return tf.data.Dataset.from_tensor_slices(
        (tf.constant(epoch_numbers, tf.int64), tf.constant(epoch_files, tf.string))
    )
