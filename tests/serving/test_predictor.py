"""Tests of predictor.py: the Kaggle CSV lines, the vocabulary and the named CSV, a SavedModel's
top k (the CSV against the model is checked in test_end_to_end.py)."""

import csv
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    FRAME_SAMPLE,
    VOCABULARY,
    random_frames,
    sequence_example,
    tiny_config,
    train_tiny_teacher,
    write_records,
)

import model_zoo
import readers
import utils
from serving import predictor, saved_model


def test_lines_are_the_starters_csv_format():
    lines = predictor.format_lines(
        [b"abc", "de"], np.array([[3, 0], [1, 2]]), np.array([[0.5, 0.25], [1e-07, 0.0]])
    )
    assert lines == ["abc,3 0.5 0 0.25\n", "de,1 1e-07 2 0\n"]


def test_the_real_vocabulary_names_labels_and_a_bad_one_names_its_line(tmp_path):
    vocabulary = predictor.load_vocabulary(str(VOCABULARY))
    assert len(vocabulary) == 3862 and vocabulary[0] == "Game"
    assert predictor.named_output_path("/out/predictions.csv") == "/out/predictions_names.csv"
    rows = predictor.format_named_rows(["v1"], [[0, 3861]], [[0.5, 0.25]], {0: "Game, video"})
    assert rows == 'v1,0,"Game, video",0.5\nv1,3861,,0.25\n'
    bad = tmp_path / "vocabulary.csv"
    bad.write_text("Index,Name\n0,Game\nseven,Car\n")
    with pytest.raises(utils.UserInputError, match="line 3: Index 'seven'"):
        predictor.load_vocabulary(str(bad))
    bad.write_text("Id,Label\n0,Game\n")
    with pytest.raises(utils.UserInputError, match="Index and Name"):
        predictor.load_vocabulary(str(bad))


def test_a_saved_model_exported_with_fewer_classes_than_asked_is_refused(tmp_path):
    """Asking a SavedModel exported with top 3 for 4 pairs is an error, not a shorter CSV."""
    run_config = tiny_config()
    model = model_zoo.build_model(run_config)
    export_dir = saved_model.export_saved_model(
        model, readers.reader_for(run_config), str(tmp_path / "export"), top_k=3
    )
    output_file = tmp_path / "refused.csv"
    with pytest.raises(utils.UserInputError, match="--top_k=4 .*export it again"):
        predictor.run_inference(
            str(FRAME_SAMPLE / "*.tfrecord"), str(output_file), saved_model_dir=export_dir, top_k=4
        )
    assert not output_file.exists() and not list(tmp_path.glob("*.tmp-*"))
    written = predictor.run_inference(
        str(FRAME_SAMPLE / "*.tfrecord"), str(output_file), saved_model_dir=export_dir, top_k=2
    )
    assert written["num_videos"] == 59
    assert all(
        len(row.split(",")[1].split()) == 4 for row in output_file.read_text().splitlines()[1:]
    )


def test_inference_writes_label_names(tmp_path):
    """On the real sample with the real vocabulary: a second CSV with names beside the labels."""
    train_dir = train_tiny_teacher(tmp_path / "teacher", max_steps=1)
    output_file = str(tmp_path / "predictions.csv")
    written = predictor.run_inference(
        str(FRAME_SAMPLE / "*.tfrecord"),
        output_file,
        train_dir=train_dir,
        vocabulary_file=str(VOCABULARY),
        top_k=3,
    )
    names_file = str(tmp_path / "predictions_names.csv")
    assert written["named_output_file"] == names_file and written["num_videos"] == 59
    with open(output_file) as handle:
        assert len(handle.read().splitlines()) == 1 + 59
    with open(names_file) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 59 * 3
    vocabulary = predictor.load_vocabulary(str(VOCABULARY))
    for row in rows:
        assert row["Name"] == vocabulary[int(row["Label"])]
    assert not [name for name in os.listdir(tmp_path) if ".tmp-" in name]


def test_inference_reads_data_labelled_otherwise_or_not_at_all(tmp_path):
    """A 5-class model predicts videos whose labels it does not know (5000) or that have none."""
    run_config = tiny_config(num_classes=5)
    train_dir = str(tmp_path / "model")
    model = model_zoo.build_model(run_config)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), train_dir, 1).save(1)
    run_config.save(train_dir)
    rng = np.random.default_rng(3)
    records = [
        sequence_example("labelled-5000", [5000], random_frames(rng, 4)),
        sequence_example("unlabelled", [], random_frames(rng, 6)),
    ]
    pattern = write_records(tmp_path / "other-labels.tfrecord", records)
    output_file = tmp_path / "predictions.csv"
    written = predictor.run_inference(pattern, str(output_file), train_dir=train_dir, top_k=2)
    assert written["num_videos"] == 2 and written["skipped_records"] == 0
    rows = output_file.read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["labelled-5000", "unlabelled"]
