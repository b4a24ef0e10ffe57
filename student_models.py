"""The paper's student: a hierarchical LSTM that reads only 1 frame in `frame_stride`.

A student of another family (`--student_architecture=NeXtVLADModel`, NetVLADModel, DbofModel)
is that family's model class itself (model_zoo.build_model builds it), fed and trained the same
way; this class is the hierarchical one, the default.

`DistilledStudentModel` has the teacher's architecture (blocks of `block_size` frames, default 5
for the student as in the paper (config.STUDENT_BLOCK_SIZE), a lower and an upper stacked LSTM,
one sigmoid per class). What makes it a student is how it is fed and trained:
- the reader selects its frames (F_0, F_j, F_2j, ... for `--frame_stride=j`) before decoding, so
  the model only ever sees `[batch, ceil(frames / j), features]`;
- tasks.DistillationTask (with distillation.py) trains it to match a teacher's representation
  E_T (and, in the intermediate variant, the teacher's lower-level outputs at the selected
  frames), then fine-tunes it alone.

Its outputs are the teacher's: `predictions`, `logits` `[batch, num_classes]`, `representation
[batch, lstm_layers * lstm_cells]` (E_S) and `frame_outputs [batch, selected frames, lstm_cells]`.
"""

from frame_level_models import HierarchicalTeacherModel


class DistilledStudentModel(HierarchicalTeacherModel):
    """A hierarchical model over the selected frames; see the module docstring."""
