"""Cuts selected frames straight out of serialized YouTube-8M SequenceExamples, unparsed.

In records laid out as YouTube-8M writes them the context comes first and the feature lists
last, and every frame of a feature list has the same encoded size (rgb: 9 bytes of protobuf
framing + 1,024; audio: 9 + 128). A few vectorised varint reads per record locate each list
(`locate_feature_lists`, `locate_frames`), and `tf.strings.substr` cuts out only the selected
frames (`cut_frames`), each checked for its framing. Every function reports which records fit
that layout; the reader parses a batch with any other record instead.
"""

import tensorflow as tf


def varint_bytes(value):
    """The protobuf varint encoding of a non-negative int."""
    encoded = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        encoded.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(encoded)


def frame_element_prefix(size):
    """The bytes before a frame's `size` raw bytes in its FeatureList: the repeated `feature`
    field's header, then Feature's `bytes_list` header, then BytesList's `value` header (9
    bytes for the 1,024 rgb and 128 audio bytes of YouTube-8M)."""
    bytes_list = b"\x0a" + varint_bytes(size)
    feature_length = len(bytes_list) + size
    feature = b"\x0a" + varint_bytes(feature_length)
    element_length = len(feature) + feature_length
    return b"\x0a" + varint_bytes(element_length) + feature + bytes_list


def read_byte(serialized, position):
    """The byte at `position` of each record, or -1 past its end: `[B]` int64."""
    length = tf.cast(tf.strings.length(serialized), tf.int64)
    inside = position < length
    raw = tf.strings.substr(serialized, tf.minimum(position, length), tf.cast(inside, tf.int64))
    value = tf.cast(tf.io.decode_raw(raw, tf.uint8, fixed_length=1)[:, 0], tf.int64)
    return tf.where(inside, value, -1)


def read_varint(serialized, position, max_bytes=5):
    """Decodes the varint at byte `position` of each record.

    Returns:
      (value, size, valid): `[B]` int64 value and byte count, and whether it ended within
      `max_bytes` bytes and within the record.
    """
    length = tf.cast(tf.strings.length(serialized), tf.int64)
    start = tf.minimum(position, length)
    raw = tf.strings.substr(
        serialized, start, tf.fill(tf.shape(start), tf.constant(max_bytes, tf.int64))
    )
    available = tf.cast(tf.strings.length(raw), tf.int64)
    data = tf.cast(tf.io.decode_raw(raw, tf.uint8, fixed_length=max_bytes), tf.int64)
    continues = tf.cast(data >= 128, tf.int64)
    # Byte i belongs to the varint when every byte before it has its continuation bit.
    belongs = tf.math.cumprod(continues, axis=1, exclusive=True)
    shifts = tf.constant([7 * index for index in range(max_bytes)], tf.int64)
    value = tf.reduce_sum(belongs * tf.bitwise.left_shift(data % 128, shifts), axis=1)
    size = tf.reduce_sum(belongs, axis=1)
    ends = tf.reduce_sum(belongs * (1 - continues), axis=1) > 0
    return value, size, tf.logical_and(ends, size <= available)


def locate_feature_lists(serialized, feature_names):
    """Finds each feature list's bytes in serialized SequenceExamples without parsing frames.

    Expects the layout of YouTube-8M records: the context (field 1) first, then the
    feature lists (field 2) last, holding exactly `feature_names` (in any order).

    Returns:
      dict with `context_end [B]` (bytes of the record up to the end of its context, which on
      their own are a serialized `tf.train.Example` of the context), `starts` and `lengths`
      (per feature, `[B]` byte offset and length of its FeatureList's content), and `ok [B]`,
      False for a record laid out otherwise.
    """
    length = tf.cast(tf.strings.length(serialized), tf.int64)
    ok = tf.equal(read_byte(serialized, tf.zeros_like(length)), 0x0A)
    context_length, size, valid = read_varint(serialized, tf.ones_like(length))
    ok = ok & valid
    context_end = 1 + size + context_length
    ok = ok & tf.equal(read_byte(serialized, context_end), 0x12)
    lists_length, size, valid = read_varint(serialized, context_end + 1)
    position = context_end + 1 + size
    ok = ok & valid & tf.equal(position + lists_length, length)
    keys, starts, lengths = [], [], []
    for _ in feature_names:
        ok = ok & tf.equal(read_byte(serialized, position), 0x0A)
        entry_length, size, valid = read_varint(serialized, position + 1)
        entry_start = position + 1 + size
        ok = ok & valid & tf.equal(read_byte(serialized, entry_start), 0x0A)
        key_length, size, valid = read_varint(serialized, entry_start + 1)
        key_start = entry_start + 1 + size
        ok = ok & valid & (key_start + key_length <= length)
        keys.append(
            tf.strings.substr(
                serialized, tf.minimum(key_start, length), tf.where(ok, key_length, 0)
            )
        )
        value_tag = key_start + key_length
        ok = ok & tf.equal(read_byte(serialized, value_tag), 0x12)
        value_length, size, valid = read_varint(serialized, value_tag + 1)
        starts.append(value_tag + 1 + size)
        lengths.append(value_length)
        position = entry_start + entry_length
        ok = ok & valid & tf.equal(starts[-1] + value_length, position)
    ok = ok & tf.equal(position, length)
    found_starts, found_lengths = [], []
    for name in feature_names:
        matches = [tf.equal(key, name) for key in keys]
        ok = ok & tf.equal(tf.add_n([tf.cast(match, tf.int32) for match in matches]), 1)
        found_starts.append(
            tf.add_n([tf.where(m, start, 0) for m, start in zip(matches, starts, strict=True)])
        )
        found_lengths.append(
            tf.add_n([tf.where(m, size, 0) for m, size in zip(matches, lengths, strict=True)])
        )
    return {"context_end": context_end, "starts": found_starts, "lengths": found_lengths, "ok": ok}


def locate_frames(serialized, feature_names, feature_sizes, max_frames):
    """Finds each record's context and frames, ready for `cut_frames`.

    Args:
      serialized: `[B]` string tensor of SequenceExamples.
      feature_names: the feature lists to read.
      feature_sizes: bytes per frame of each.
      max_frames: frames beyond this are left out.

    Returns:
      dict with `context [B]` string (each record's context, a serialized `tf.train.Example`),
      `num_frames [B]` int32 (the frames every feature has, at most `max_frames`),
      `num_input_frames` scalar int32 (T: the most frames of a feature in the batch),
      `starts` (per feature, `[B]` int64 byte offset of its FeatureList's content) and
      `ok [B]` bool, False for a record laid out otherwise (its context is then "" and its
      counts 0).
    """
    layout = locate_feature_lists(serialized, feature_names)
    ok = layout["ok"]
    length = tf.cast(tf.strings.length(serialized), tf.int64)
    feature_frames = []
    for list_length, size in zip(layout["lengths"], feature_sizes, strict=True):
        element = len(frame_element_prefix(size)) + size
        ok = ok & tf.equal(list_length % element, 0)
        feature_frames.append(tf.minimum(list_length // element, max_frames))
    feature_frames = [tf.where(ok, frames, 0) for frames in feature_frames]
    context = tf.where(
        ok,
        tf.strings.substr(
            serialized, tf.zeros_like(length), tf.where(ok, layout["context_end"], 0)
        ),
        "",
    )
    return {
        "context": context,
        "num_frames": tf.cast(tf.reduce_min(tf.stack(feature_frames), axis=0), tf.int32),
        "num_input_frames": tf.cast(tf.reduce_max(tf.concat(feature_frames + [[0]], 0)), tf.int32),
        "starts": layout["starts"],
        "ok": ok,
    }


def cut_frames(serialized, starts, feature_sizes, frame_indices, num_frames):
    """Cuts the selected frames out of the records and decodes them, checking their framing.

    Each selected frame is cut together with its framing prefix, in one cut and one decode per
    feature; no other frame is read.

    Args:
      serialized: `[B]` string tensor, the records `locate_frames` located.
      starts: `locate_frames`'s `starts`.
      feature_sizes: bytes per frame of each feature.
      frame_indices: `[B, T']` int32, each selected frame's index in its record (its index in
        the video, or in a frame cache's record its position there).
      num_frames: `[B]` int32, the selected frames of each video (the rest of a row is
        padding).

    Returns:
      (matrices, framed): per feature a `[B, T', size]` uint8 matrix, zero past `num_frames`;
      `framed [B]` bool, False for a record whose selected frames lack the expected framing.
    """
    length = tf.cast(tf.strings.length(serialized), tf.int64)
    valid = tf.sequence_mask(num_frames, maxlen=tf.shape(frame_indices)[1])
    matrices, framed = [], []
    for start, size in zip(starts, feature_sizes, strict=True):
        prefix = frame_element_prefix(size)
        element = len(prefix) + size
        offsets = start[:, None] + tf.cast(frame_indices, tf.int64) * element
        offsets = tf.where(valid, tf.minimum(offsets, length[:, None]), 0)
        # Past each video's frames the cuts are empty, and decode_raw pads them with zeros.
        elements = tf.strings.substr(
            serialized[:, None], offsets, tf.where(valid, tf.constant(element, tf.int64), 0)
        )
        decoded = tf.io.decode_raw(elements, tf.uint8, fixed_length=element)
        expected = tf.constant(list(prefix), tf.uint8)
        prefixed = tf.reduce_all(tf.equal(decoded[:, :, : len(prefix)], expected), axis=2)
        framed.append(tf.reduce_all(tf.logical_or(prefixed, ~valid), axis=1))
        matrices.append(decoded[:, :, len(prefix) :])
    return matrices, tf.reduce_all(tf.stack(framed), axis=0)
