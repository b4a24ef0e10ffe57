"""Recurrent encoders: stacked LSTMs over masked sequences, and the paper's hierarchical encoder
(a lower LSTM over blocks of frames, an upper LSTM over the blocks' encodings).

Shapes are in each class's docstring. Masks are right-padded (True then False), as frame masks
are; a fully masked sequence encodes to zeros and costs nothing.
"""

import tensorflow as tf


class StackedLSTM(tf.keras.layers.Layer):
    """`num_layers` LSTMs of `units` cells, each feeding its full sequence to the next.

    Call with `inputs [batch, steps, features]` and `mask [batch, steps]` bool; returns
    (`outputs [batch, steps, units]`, the top layer's output at every step, padded steps holding
    the last valid output, zeros for a fully masked sequence; `final_state [batch, num_layers *
    units]`, the concatenated last hidden states of all layers, zeros for a fully masked sequence).
    Masks must be right-padded (True then False), as frame masks are.
    """

    def __init__(self, units, num_layers, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.num_layers = num_layers
        self.lstms = []
        for index in range(num_layers):
            lstm = tf.keras.layers.LSTM(
                units, return_sequences=True, return_state=True, name=f"lstm_{index}"
            )
            # An attribute per layer: checkpoints track attributes, not the layers of a list.
            setattr(self, f"lstm_{index}", lstm)
            self.lstms.append(lstm)

    def call(self, inputs, mask, training=False):
        # Only sequences with at least one step run through the LSTMs: fully masked ones (empty
        # blocks, empty videos) cost nothing, and cuDNN never sees a zero-length sequence.
        batch_size = tf.shape(inputs)[0]
        present = tf.cast(tf.where(tf.reduce_any(mask, axis=1))[:, 0], tf.int32)
        # One extra one-step sequence of zeros keeps the LSTM batch non-empty when no sequence
        # is present; it is dropped after.
        outputs = tf.concat([tf.gather(inputs, present), tf.zeros_like(inputs[:1])], axis=0)
        one_step = tf.sequence_mask([1], tf.shape(mask)[1])
        present_mask = tf.concat([tf.gather(mask, present), one_step], axis=0)
        final_hidden = []
        for lstm in self.lstms:
            outputs, hidden, _ = lstm(outputs, mask=present_mask, training=training)
            final_hidden.append(hidden)
        final_state = final_hidden[0] if len(final_hidden) == 1 else tf.concat(final_hidden, -1)
        return self.scatter_present(
            present, outputs[:-1], final_state[:-1], batch_size, tf.shape(inputs)[1]
        )

    def scatter_present(self, present, outputs, final_state, batch_size, steps):
        """The outputs of the sequences `present` (their indices, `[present]`) placed back in
        the batch of `batch_size`, zeros for the others: `outputs [present, steps, units]`,
        `final_state [present, num_layers * units]` -> the same for `[batch_size, ...]`."""
        scatter_index = present[:, tf.newaxis]
        outputs = tf.scatter_nd(scatter_index, outputs, tf.stack([batch_size, steps, self.units]))
        final_state = tf.scatter_nd(
            scatter_index, final_state, tf.stack([batch_size, self.num_layers * self.units])
        )
        return outputs, final_state

    def compute_mask(self, inputs, mask=None):
        return None


class HierarchicalEncoder(tf.keras.layers.Layer):
    """Encodes frames with a block-level lower LSTM and a video-level upper LSTM.

    Call with `frames [batch, frames, features]` float and `num_frames [batch]`; returns a dict:
      `representation [batch, lstm_layers * lstm_cells]`: the upper LSTM's final state, E;
      `frame_outputs [batch, frames, lstm_cells]`: the lower LSTM's top-layer output at each
        frame (its running encoding of the frame's block up to that frame);
      `block_encodings [batch, blocks, lstm_layers * lstm_cells]`.
    """

    def __init__(self, block_size, lstm_cells, lstm_layers, **kwargs):
        super().__init__(**kwargs)
        self.block_size = block_size
        self.lower = StackedLSTM(lstm_cells, lstm_layers, name="lower")
        self.upper = StackedLSTM(lstm_cells, lstm_layers, name="upper")

    def call(self, frames, num_frames, training=False):
        batch_size = tf.shape(frames)[0]
        num_input_frames = tf.shape(frames)[1]
        feature_size = frames.shape[-1]
        num_blocks = tf.maximum((num_input_frames + self.block_size - 1) // self.block_size, 1)
        padded_length = num_blocks * self.block_size
        frames = tf.pad(frames, [[0, 0], [0, padded_length - num_input_frames], [0, 0]])
        mask = tf.sequence_mask(num_frames, maxlen=padded_length)

        # Lower level: every block of every video is one sequence of block_size frames.
        blocks = tf.reshape(frames, [batch_size * num_blocks, self.block_size, feature_size])
        block_mask = tf.reshape(mask, [batch_size * num_blocks, self.block_size])
        lower_outputs, block_states = self.lower(blocks, mask=block_mask, training=training)

        # Upper level: the sequence of block encodings; blocks past the last frame are masked.
        block_encodings = tf.reshape(block_states, [batch_size, num_blocks, block_states.shape[-1]])
        blocks_present = block_mask[:, 0]  # a block is present when its first frame is
        blocks_present = tf.reshape(blocks_present, [batch_size, num_blocks])
        _, representation = self.upper(block_encodings, mask=blocks_present, training=training)

        frame_outputs = tf.reshape(
            lower_outputs, [batch_size, padded_length, lower_outputs.shape[-1]]
        )[:, :num_input_frames]
        return {
            "representation": representation,
            "frame_outputs": frame_outputs,
            "block_encodings": block_encodings,
        }


def lstm_step_flops(input_size, units, num_layers):
    """Operations of one step of `num_layers` stacked LSTMs: 4 gates, each a product of the
    input and the previous output with their matrices (2 per multiply-add)."""
    total = 0
    for _ in range(num_layers):
        total += 2 * 4 * units * (input_size + units)
        input_size = units
    return total
