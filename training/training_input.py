"""The input of training: every remaining epoch of a phase through one pipeline, each batch
tagged with its epoch, distributed over the replicas with each worker's share of the files, or
read through tf.data service (--tf_data_service_address, data_service_input.py).

    dataset = training_input.make_training_dataset(config, options, files, seed, strategy, ...)

Batches are those of readers.py (`video_ids`, `video_matrix`, `num_frames`, `labels`, and for a
joint teacher `full_video_matrix`) plus `epoch [B]` int64.
"""

import tensorflow as tf

import readers
import utils
from pipeline import corrupt_records, data_service_input, record_batches
from runs import distribution


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


def epoch_seed(seed, epoch):
    """The `[2]` stateless seed of one epoch's shuffles: a function of the run's seed and the
    epoch alone, so that a resumed run reads an epoch in the order the interrupted one did
    (with the input ordered)."""
    return tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])


def epoch_draw_seed(seed, epoch):
    """The seed of the frames drawn in one epoch (random offsets, random sampling): a string of
    the run's seed and the epoch, hashed with each video's id (frame_selection.hashed_draws)."""
    return tf.strings.join([str(seed), tf.strings.as_string(epoch)], separator=":")


def make_training_dataset(
    config,
    options,
    files,
    seed,
    strategy,
    keep_all_frames,
    skipped,
    first_epoch,
    epochs,
    steps_done=0,
    start_step=0,
):
    """Epochs `first_epoch` to `epochs - 1` of shuffled passes over `files`, distributed over
    `strategy`'s replicas, each batch tagged with its epoch (`epoch [B]` int64), the first
    `steps_done` steps of `first_epoch` left out (a resumed run's).

    Each epoch's order is a function of (`seed`, epoch): its files and records are shuffled with
    `epoch_seed`, and the frames drawn for each video with `epoch_draw_seed`. With the shards
    interleaved in a fixed order (--ordered_input, the default, or --deterministic) a resumed
    run therefore reads exactly the batches the interrupted one had left; the steps it already
    took are skipped as serialized batches, before any parsing. With --noordered_input the
    shards arrive as they are read, so the rest of the epoch is drawn anew (as many steps,
    other videos possible). One pipeline for all the
    epochs of a phase: no pause to rebuild it between epochs. Each replica gets
    `batch_size / replicas` videos a step; each worker reads its own share of the files (of
    the records, when there are fewer files than workers). With --corrupt_record_policy=skip
    what it leaves out is tallied in `skipped`.

    With `options.tf_data_service_address` the pipeline runs on tf.data service
    (`service_training_dataset`) instead: its workers read and parse, and the dispatcher hands
    the files out to them; a resumed run (`start_step` > 0) is a new job, which reads its
    first epoch whole.
    """
    tf.keras.utils.set_random_seed(seed)
    reader = training_reader(config, options, keep_all_frames)
    reader.check_files(files, "--train_data_pattern")

    def parse(records, epoch):
        batch = reader.parse_serialized(records, draw_seed=epoch_draw_seed(seed, epoch))
        batch["epoch"] = tf.fill(tf.shape(batch["video_ids"]), epoch)
        return batch

    if options.tf_data_service_address:
        return strategy.distribute_datasets_from_function(
            lambda input_context: service_training_dataset(
                reader,
                options,
                files,
                seed,
                keep_all_frames,
                first_epoch,
                epochs,
                input_context,
                start_step,
            )
        )

    def make_replica_dataset(input_context):
        worker_files, record_shard = distribution.input_shard(input_context, files)

        def one_pass(epoch):
            batches, _ = record_batches.make_record_batches(
                ",".join(worker_files),
                input_context.get_per_replica_batch_size(options.batch_size),
                shuffle=True,
                shuffle_buffer_size=options.shuffle_buffer_size,
                num_readers=options.num_readers,
                seed=epoch_seed(seed, epoch),
                flag_name="--train_data_pattern",
                corrupt_record_policy=options.corrupt_record_policy,
                skipped=skipped,
                record_shard=record_shard,
                deterministic=options.deterministic or options.ordered_input,
            )
            return batches.map(lambda records: (records, epoch))

        # Each step takes one batch per replica from its worker's pipeline.
        replicas_per_pipeline = max(
            1, input_context.num_replicas_in_sync // input_context.num_input_pipelines
        )
        first = one_pass(tf.constant(first_epoch, tf.int64)).skip(
            steps_done * replicas_per_pipeline
        )
        tagged = first.concatenate(
            tf.data.Dataset.range(first_epoch + 1, epochs).flat_map(one_pass)
        )
        return tagged.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(make_replica_dataset)


def service_training_dataset(
    reader, options, files, seed, keep_all_frames, first_epoch, epochs, input_context, start_step
):
    """One input pipeline's batches of epochs `first_epoch` to `epochs - 1`, read and parsed by
    the tf.data service at `options.tf_data_service_address`.

    The source is the list of (epoch, file) pairs, each epoch's files in a new seeded order
    (`data_service_input.epoch_file_slices`): a list the dispatcher can hand out one file at a
    time (DYNAMIC sharding), so each file of an epoch is read by one service worker. The workers
    interleave `num_readers` files, shuffle records, batch `batch_size / replicas` of them and
    parse them (`reader.parse_serialized`); each video carries its own epoch, since a batch may
    straddle two epochs. Every input pipeline (every worker of a multi-worker training) joins
    the same job, and together they consume one pass over the files per epoch.

    Returns:
      a dataset of batch dicts as the reader's, plus `epoch [B]` int64.
    """
    job_name = data_service_input.training_job_name(
        options.tf_data_service_job_name,
        options.train_dir,
        f"{'all' if keep_all_frames else 'selected'}-frames-epochs-{first_epoch}-{epochs}-"
        f"seed-{seed}-step-{start_step}",
        input_context.num_input_pipelines,
    )

    def read_file(epoch, path):
        return tf.data.TFRecordDataset(path).map(lambda record: (record, epoch))

    def parse(records, record_epochs):
        # A batch straddling two epochs counts as the later one: the trainer counts an epoch
        # done when a batch of the next one comes.
        epoch = tf.reduce_max(record_epochs)
        batch = reader.parse_serialized(records, draw_seed=epoch_draw_seed(seed, epoch))
        batch["epoch"] = tf.fill(tf.shape(batch["video_ids"]), epoch)
        return batch

    records = data_service_input.epoch_file_slices(files, first_epoch, epochs, seed).interleave(
        read_file,
        cycle_length=max(1, min(options.num_readers, len(files))),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    )
    batches = (
        records.shuffle(options.shuffle_buffer_size, seed=seed)
        .batch(input_context.get_per_replica_batch_size(options.batch_size))
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    )
    return data_service_input.distribute_dataset(batches, options.tf_data_service_address, job_name)


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
    batches = corrupt_records.iterate_batches(
        dataset, files, reader.skipped_records, video_id_key=options.video_id_key
    )
    if next(iter(batches), None) is None:
        raise utils.UserInputError(
            f"--train_data_pattern={options.train_data_pattern} gave no video to train on; "
            f"--start_new_model left {options.train_dir} as it was."
        )
