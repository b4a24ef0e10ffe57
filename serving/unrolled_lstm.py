"""The hierarchical models' LSTMs with their steps spelled out, for the graphs that serve them:
a LiteRT model (static shapes) and TensorFlow inference on a CPU (faster short sequences).

    with unrolled_lstm.unrolled_lstms(model):          # the LiteRT export's trace
        concrete = serve.get_concrete_function()
    with unrolled_lstm.unrolled_lstms(model, every_sequence=False):   # TensorFlow on a CPU
        outputs = predict(video_matrix, num_frames)                  # (cpu_inference.py)

`unrolled_stacked_lstm` computes what `layers.recurrent.StackedLSTM` computes, for sequences
of a number of steps known when the graph is traced: `inputs [batch, steps, features]` and
`mask [batch, steps]` bool -> (`outputs [batch, steps, units]`, the top layer's output at each
step, the last valid output held over padded steps; `final_state [batch, num_layers * units]`),
zeros for a fully masked sequence. Each layer's input transformation is one matrix product over
every step (the Keras LSTM makes one per step), each step one product with the recurrent
weights, and a masked step keeps the previous state, as the Keras LSTM does with a mask. Scores
agree with the Keras loop's within float rounding (1e-6).

The model code is not changed: within `unrolled_lstms`, the StackedLSTM layers of one model
call the unrolled computation; a graph traced there keeps it. A sequence whose steps are known
only at run time (the upper LSTM of a TensorFlow graph: the number of blocks) keeps the Keras
loop.
"""

import contextlib
import types

import tensorflow as tf

from layers.recurrent import StackedLSTM


def unrolled_layers(lstms, units, inputs, mask):
    """`lstms` (Keras LSTM layers, stacked) over `inputs [batch, steps, features]` with a fixed
    number of steps: (`outputs [batch, steps, units]`, each layer's last hidden state)."""
    batch_size = tf.shape(inputs)[0]
    layer_inputs = inputs
    final_hidden = []
    for lstm in lstms:
        cell = lstm.cell
        projected = tf.einsum("btd,dg->btg", layer_inputs, cell.kernel) + cell.bias
        hidden = tf.zeros(tf.stack([batch_size, units]), inputs.dtype)
        carry = hidden
        step_outputs = []
        for step in range(inputs.shape[1]):
            gates = projected[:, step] + tf.matmul(hidden, cell.recurrent_kernel)
            input_gate, forget_gate, candidate, output_gate = tf.split(gates, 4, axis=-1)
            new_carry = tf.sigmoid(forget_gate) * carry + tf.sigmoid(input_gate) * tf.tanh(
                candidate
            )
            new_hidden = tf.sigmoid(output_gate) * tf.tanh(new_carry)
            present = mask[:, step, tf.newaxis]
            carry = tf.where(present, new_carry, carry)
            hidden = tf.where(present, new_hidden, hidden)
            step_outputs.append(hidden)
        layer_inputs = tf.stack(step_outputs, axis=1)
        final_hidden.append(hidden)
    return layer_inputs, final_hidden


def unrolled_stacked_lstm(layer, inputs, mask, training=False):
    """`StackedLSTM.call` of `layer`, every sequence computed (static shapes: LiteRT)."""
    del training  # the LSTMs have no dropout
    outputs, final_hidden = unrolled_layers(layer.lstms, layer.units, inputs, mask)
    final_state = final_hidden[0] if len(final_hidden) == 1 else tf.concat(final_hidden, -1)
    return outputs, final_state


def unrolled_present_sequences(layer, inputs, mask, training=False):
    """`StackedLSTM.call` of `layer` with only the sequences holding a step computed, as the
    layer itself does (TensorFlow); the Keras loop when the steps are known only at run time."""
    if inputs.shape[1] is None:
        return StackedLSTM.call(layer, inputs, mask, training=training)
    batch_size = tf.shape(inputs)[0]
    present = tf.cast(tf.where(tf.reduce_any(mask, axis=1))[:, 0], tf.int32)
    outputs, final_state = unrolled_stacked_lstm(
        layer, tf.gather(inputs, present), tf.gather(mask, present)
    )
    return layer.scatter_present(present, outputs, final_state, batch_size, tf.shape(inputs)[1])


@contextlib.contextmanager
def unrolled_lstms(model, every_sequence=True):
    """Within the block, every StackedLSTM of `model` calls `unrolled_stacked_lstm`
    (`every_sequence`: LiteRT's static shapes) or `unrolled_present_sequences`."""
    call = unrolled_stacked_lstm if every_sequence else unrolled_present_sequences
    patched = [layer for layer in model._flatten_layers() if isinstance(layer, StackedLSTM)]
    for layer in patched:
        layer.call = types.MethodType(call, layer)
    try:
        yield
    finally:
        for layer in patched:
            del layer.call
