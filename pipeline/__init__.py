"""The input pipeline: TFRecord shards -> uint8 batches `{video_ids [B], video_matrix [B, T', D]
uint8, num_frames [B], labels [B, C]}`. Batching and parsing records, slicing the selected
frames out of a serialized record, which frames a model reads, malformed-record handling, the
frame cache and tf.data service input. readers.py assembles them into the starter's readers.
"""
