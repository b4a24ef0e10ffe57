"""A run: its typed configuration (`RunConfig`, `TrainOptions`; `model_flags.json` is its file),
the tf.distribute strategy it computes under, and a trained run's checkpoints restored into its
model. Training and serving both stand on it.
"""
