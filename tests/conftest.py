"""Shared test set-up: the repository root on sys.path, quiet TensorFlow, real-data paths."""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
FRAME_SAMPLE = SHARED_DATA / "yt8m_2018_frame_sample"
VIDEO_SAMPLE = SHARED_DATA / "yt8m_2018_video_sample"
VOCABULARY = SHARED_DATA / "vocabulary_2018.csv"
