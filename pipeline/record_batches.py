"""TFRecord shards -> batches of serialized records, before any parsing.

    records, files = record_batches.make_record_batches("data/train*.tfrecord", 256)

The sorted files matching a comma-separated pattern (local or gs://) are read interleaved
(`num_readers` at a time), optionally shuffled, one worker's share taken, repeated and batched.
With --corrupt_record_policy=skip each shard is read up to its first damaged record. The readers
(readers.py) parse these batches; a SavedModel (serving.py) takes them as they are.
"""

import tensorflow as tf

import utils
from pipeline import corrupt_records


def make_record_batches(
    data_pattern,
    batch_size,
    num_epochs=1,
    shuffle=False,
    shuffle_buffer_size=1024,
    num_readers=4,
    drop_remainder=False,
    seed=None,
    flag_name="data pattern",
    corrupt_record_policy="fail",
    skipped=None,
    record_shard=None,
    deterministic=False,
):
    """Files matching `data_pattern` -> batches of `[B]` serialized records, unparsed.

    Args:
      data_pattern: comma-separated glob patterns, local paths or gs:// URLs.
      batch_size: records per batch.
      num_epochs: passes over the data; None repeats forever.
      shuffle: shuffle files and records (training) by stateless ops of `seed`: the files are
        permuted and the records shuffled in blocks of `shuffle_buffer_size`, so the order is
        a pure function of the seed (and of the interleaving, fixed with `deterministic`).
        Without it the order is the files' and records' own.
      shuffle_buffer_size: records shuffled together.
      num_readers: shards read in parallel.
      drop_remainder: drop a last batch smaller than `batch_size`.
      seed: with `shuffle`, the `[2]` int64 seed of the shuffles (a tensor may depend on
        others, such as a training epoch).
      flag_name: how error messages name the pattern, e.g. "--train_data_pattern".
      corrupt_record_policy: "skip" reads each shard up to its first damaged record and reports
        it to `skipped` (a corrupt_records.SkippedRecords); "fail" reads every record.
      skipped: where "skip" reports; None: a tally of its own.
      record_shard: (count, index) to keep one record in `count` (a worker's share when there
        are fewer files than workers); None keeps all.
      deterministic: interleave shuffled shards in a fixed order too (the order then follows
        `seed` alone); without `shuffle` the order is always fixed.

    Returns:
      (dataset, sorted list of files).

    Raises:
      utils.UserInputError: when no file matches or `batch_size` < 1.
      ValueError: for `shuffle` without a `seed`.
    """
    if shuffle and seed is None:
        raise ValueError("make_record_batches: shuffle needs a seed.")
    if batch_size < 1:
        raise utils.UserInputError(f"--batch_size must be >= 1, got {batch_size}.")
    corrupt_records.check_corrupt_record_policy(corrupt_record_policy)
    files = utils.glob_data_files(data_pattern, flag_name)
    paths = tf.constant(files)
    order = None
    if shuffle:
        order = tf.random.experimental.stateless_shuffle(tf.range(len(files), dtype=tf.int64), seed)
    if corrupt_record_policy == "skip":
        skipped = skipped if skipped is not None else corrupt_records.SkippedRecords()
        sizes = tf.constant([tf.io.gfile.stat(path).length for path in files], tf.int64)
        columns = (paths, sizes)

        def read_shard(path, size):
            return corrupt_records.read_shard_skipping_damage(path, size, skipped)

    else:
        columns = paths
        read_shard = tf.data.TFRecordDataset
    if order is not None:
        columns = tf.nest.map_structure(lambda column: tf.gather(column, order), columns)
    file_dataset = tf.data.Dataset.from_tensor_slices(columns)
    records = file_dataset.interleave(
        read_shard,
        cycle_length=max(1, min(num_readers, len(files))),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic or not shuffle,
    )
    if record_shard is not None:
        records = records.shard(*record_shard)
    if shuffle:
        records = shuffled_in_blocks(records, shuffle_buffer_size, seed)
    if num_epochs != 1:
        records = records.repeat(num_epochs)
    return records.batch(batch_size, drop_remainder=drop_remainder), files


def shuffled_in_blocks(records, block_size, seed):
    """`records` shuffled within consecutive blocks of `block_size`, each block by a stateless
    permutation of (`seed`, the block's index): a pure function of the `[2]` seed."""

    def shuffle_block(index, block):
        block_seed = tf.stack([seed[0] * 1_000_003 + seed[1], index])
        order = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(block)[0]), block_seed)
        return tf.gather(block, order)

    return records.batch(block_size).enumerate().map(shuffle_block).unbatch()
