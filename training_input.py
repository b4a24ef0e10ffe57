"""The input of training: every remaining epoch of a phase through one pipeline, each batch
tagged with its epoch, distributed over the replicas with each worker's share of the files.

    dataset = training_input.make_training_dataset(config, options, files, seed, strategy, ...)

Batches are those of readers.py (`video_ids`, `video_matrix`, `num_frames`, `labels`, and for a
joint teacher `full_video_matrix`) plus `epoch [B]` int64.
"""

import tensorflow as tf

import corrupt_records
import distribution
import readers
import record_batches
import utils


def training_reader(config, options, keep_all_frames):
    """The reader of a training pipeline: random sampling draws anew, and a joint teacher's
    phase also gets every frame (`keep_all_frames`)."""
    frame_options = {"keep_all_frames": True} if keep_all_frames else {}
    return readers.reader_for(
        config,
        video_id_key=options.video_id_key,
        training=True,
        corrupt_record_policy=options.corrupt_record_policy,
        **frame_options,
    )


def make_training_dataset(
    config, options, files, seed, strategy, keep_all_frames, skipped, first_epoch, epochs
):
    """Epochs `first_epoch` to `epochs - 1` of shuffled passes over `files`, distributed over
    `strategy`'s replicas, each batch tagged with its epoch (`epoch [B]` int64).

    One pipeline and one iterator for all the epochs of a phase: no pause to rebuild it between
    epochs, and random frame sampling draws on from one seeded stream (a new iterator would
    replay it). Each epoch reshuffles. Each replica gets `batch_size / replicas` videos a step;
    each worker reads its own share of the files (of the records, when there are fewer files
    than workers). With --corrupt_record_policy=skip what it leaves out is tallied in `skipped`.
    """
    tf.keras.utils.set_random_seed(seed)
    reader = training_reader(config, options, keep_all_frames)
    reader.check_files(files, "--train_data_pattern")

    def parse(records, epoch):
        batch = reader.parse_serialized(records)
        batch["epoch"] = tf.fill(tf.shape(batch["video_ids"]), epoch)
        return batch

    def make_replica_dataset(input_context):
        worker_files, record_shard = distribution.input_shard(input_context, files)
        one_pass, _ = record_batches.make_record_batches(
            ",".join(worker_files),
            input_context.get_per_replica_batch_size(options.batch_size),
            shuffle=True,
            shuffle_buffer_size=options.shuffle_buffer_size,
            num_readers=options.num_readers,
            seed=seed,
            flag_name="--train_data_pattern",
            corrupt_record_policy=options.corrupt_record_policy,
            skipped=skipped,
            record_shard=record_shard,
        )
        tagged = tf.data.Dataset.range(first_epoch, epochs).flat_map(
            lambda epoch: one_pass.map(lambda records: (records, epoch))
        )
        return tagged.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(make_replica_dataset)


def check_first_batch(config, options, files, keep_all_frames):
    """Reads the first batch a new model would train on (with every frame when a phase keeps
    them), so that --start_new_model deletes the old model only once the new data has been
    read.

    Raises:
      utils.UserInputError: naming the file or video that cannot be read, or when the data
        gives no video.
    """
    reader = training_reader(config, options, keep_all_frames)
    dataset, _ = reader.make_dataset(
        options.train_data_pattern, options.batch_size, flag_name="--train_data_pattern"
    )
    batches = corrupt_records.iterate_batches(dataset, files, reader.skipped_records)
    if next(iter(batches), None) is None:
        raise utils.UserInputError(
            f"--train_data_pattern={options.train_data_pattern} gave no video to train on; "
            f"--start_new_model left {options.train_dir} as it was."
        )
