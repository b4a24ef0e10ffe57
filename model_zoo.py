"""The model zoo: every model class by name (`--model`), and building one from a RunConfig.

    model = model_zoo.build_model(config)     # variables created, ready to restore into

The zoo is the starter's frame- and video-level modules, the cluster-and-aggregate models and
the student; a new model is a `models.BaseModel` subclass in one of them. A DistilledStudentModel
is built as its `student_architecture` (the hierarchical LSTM by default).
"""

import tensorflow as tf

import frame_level_models
import models
import student_models
import utils
import video_level_models
from registry import Registry

MODELS = Registry.of_subclasses(
    "--model",
    models.BaseModel,
    [frame_level_models, student_models, video_level_models],
)


def model_names():
    """Names of all models in the zoo, sorted."""
    return MODELS.names()


def build_model(config):
    """Builds the model `config.model` names from `config` (a `config.RunConfig`) and creates its
    variables by one call on a dummy input, so that a checkpoint restores into them at once.

    Raises:
      utils.UserInputError: for an unknown name; the message lists the models that exist.
    """
    model_class = MODELS.get(config.model)
    hierarchical = frame_level_models.HierarchicalTeacherModel.__name__
    if config.is_student and config.student_architecture != hierarchical:
        # A student of another family is that family's network, fed and trained as a student.
        model_class = MODELS.get(config.student_architecture)
    model = model_class(config)
    if model_class.input_kind == utils.FRAME_INPUT:
        dummy = tf.zeros([1, config.block_size, config.feature_size], tf.uint8)
    else:
        dummy = tf.zeros([1, config.feature_size], tf.float32)
    model(dummy, num_frames=tf.ones([1], tf.int32), training=False)
    return model
