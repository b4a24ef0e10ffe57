"""Tests of losses.py on hand-computed cases."""

import math

import numpy as np
import tensorflow as tf

import losses


def test_cross_entropy_hand_case():
    predictions = np.array([[0.9, 0.2], [0.4, 0.5]], np.float32)
    labels = np.array([[1, 0], [0, 1]], bool)
    # Video 1: -log 0.9 - log 0.8; video 2: -log 0.6 - log 0.5; mean of the two sums.
    expected = (-math.log(0.9) - math.log(0.8) - math.log(0.6) - math.log(0.5)) / 2
    loss = losses.CrossEntropyLoss().calculate_loss(predictions, labels)
    assert abs(float(loss) - expected) < 1e-5


def test_cross_entropy_from_logits_matches_and_is_stable():
    logits = np.array([[2.0, -1.0, 0.5]], np.float32)
    labels = np.array([[1, 0, 1]], np.float32)
    loss_function = losses.CrossEntropyLoss()
    from_logits = loss_function.calculate_loss(tf.sigmoid(logits), labels, logits=logits)
    from_probabilities = loss_function.calculate_loss(tf.sigmoid(logits), labels)
    assert abs(float(from_logits) - float(from_probabilities)) < 1e-5
    # Saturated logits: probabilities round to 0 or 1, the logits path stays exact.
    extreme = np.array([[100.0, -100.0]], np.float32)
    wrong = np.array([[0, 1]], np.float32)
    loss = loss_function.calculate_loss(tf.sigmoid(extreme), wrong, logits=extreme)
    assert abs(float(loss) - 200.0) < 1e-3


def test_hinge_hand_case():
    predictions = np.array([[0.5, -2.0, 3.0]], np.float32)
    labels = np.array([[1, 0, 0]], np.float32)
    # max(0, 1 - 0.5) + max(0, 1 - 2) + max(0, 1 + 3) = 0.5 + 0 + 4
    assert abs(float(losses.HingeLoss().calculate_loss(predictions, labels)) - 4.5) < 1e-6


def test_softmax_hand_case():
    predictions = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], np.float32)
    labels = np.array([[1, 0, 1], [0, 0, 0]], np.float32)
    log_softmax = np.array([1.0, 2.0, 3.0]) - np.log(np.exp([1.0, 2.0, 3.0]).sum())
    expected = (-(0.5 * log_softmax[0] + 0.5 * log_softmax[2]) + 0.0) / 2
    assert abs(float(losses.SoftmaxLoss().calculate_loss(predictions, labels)) - expected) < 1e-6


def test_representation_distance_hand_case():
    teacher = np.array([[1.0, 2.0], [0.0, 0.0]], np.float32)
    student = np.array([[0.0, 2.0], [3.0, 1.0]], np.float32)
    # Squared differences 1, 0, 9, 1: mean over dimensions and batch = 11 / 4.
    assert abs(float(losses.representation_distance(teacher, student)) - 2.75) < 1e-6


def test_distances_do_not_move_the_teacher():
    teacher = tf.Variable([[1.0, 2.0]])
    student = tf.Variable([[0.0, 0.0]])
    with tf.GradientTape() as tape:
        loss = losses.representation_distance(teacher, student)
    teacher_gradient, student_gradient = tape.gradient(loss, [teacher, student])
    assert teacher_gradient is None
    np.testing.assert_allclose(student_gradient, [[-1.0, -2.0]])


def test_intermediate_distance_compares_the_selected_frames():
    # Teacher outputs at frames 0..5 of one video: value t in both dimensions.
    teacher = np.repeat(np.arange(6, dtype=np.float32)[None, :, None], 2, axis=2)
    # The student read frames 0, 2, 4 (stride 2), but only 2 exist; its outputs are 0, 1, 99.
    student = np.array([[[0.0, 0.0], [1.0, 1.0], [99.0, 99.0]]], np.float32)
    indices = np.array([[0, 2, 4]], np.int32)
    distance = losses.intermediate_distance(teacher, student, indices, np.array([2]))
    # Frame 0: (0 - 0)^2 = 0; frame 2: (1 - 2)^2 = 1; the padded third frame is left out.
    assert abs(float(distance) - 0.5) < 1e-6
    empty = losses.intermediate_distance(teacher, student, indices, np.array([0]))
    assert float(empty) == 0.0


def test_prediction_distance_is_the_cross_entropy_against_the_teachers_sigmoids():
    teacher_logits = tf.Variable([[0.0, 2.0]])
    student_logits = tf.Variable([[1.0, -1.0]])
    with tf.GradientTape() as tape:
        loss = losses.prediction_distance(teacher_logits, student_logits)
    soft = 1 / (1 + np.exp(-np.array([0.0, 2.0])))
    student = 1 / (1 + np.exp(-np.array([1.0, -1.0])))
    expected = -np.sum(soft * np.log(student) + (1 - soft) * np.log(1 - student))
    assert abs(float(loss) - expected) < 1e-5
    teacher_gradient, student_gradient = tape.gradient(loss, [teacher_logits, student_logits])
    assert teacher_gradient is None
    # d/dz of the cross-entropy is sigmoid(z) - soft label: zero where they agree.
    np.testing.assert_allclose(student_gradient, [student - soft], rtol=1e-5)
