"""Quiets TensorFlow's C++ logging before TensorFlow is first imported: every command line
imports this module first, so a user's `ERROR:` line is not buried under TensorFlow's start-up
banners and runtime warnings. TF_CPP_MIN_LOG_LEVEL set in the environment wins (0 shows all).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
