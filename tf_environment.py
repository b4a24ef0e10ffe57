"""Quiets TensorFlow's start-up before TensorFlow is first imported: every command line imports
this module first, so a user's `ERROR:` line is not buried under TensorFlow's banners and
runtime warnings.

- TF_CPP_MIN_LOG_LEVEL=2 (unless set in the environment: 0 shows everything) quiets the C++
  runtime's INFO and WARNING lines.
- TensorFlow 2.21 prints its oneDNN banner twice while it is imported, through a logger that
  ignores TF_CPP_MIN_LOG_LEVEL. The import runs here with the process's stderr captured; the
  banner's lines are dropped and anything else it printed is passed on.
"""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Lines of the import-time banner, dropped unless TF_CPP_MIN_LOG_LEVEL=0.
BANNER_MARKERS = (
    "oneDNN custom operations are on",
    "All log messages before absl::InitializeLog() is called",
)


def without_banner(text):
    """`text` without the lines of TensorFlow's import-time banner."""
    return "".join(
        line for line in text.splitlines(True) if not any(mark in line for mark in BANNER_MARKERS)
    )


def import_tensorflow_quietly():
    """Imports TensorFlow with file descriptor 2 captured, then writes back what it printed
    there, less the banner. An import that fails still shows all it printed."""
    if "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved_stderr = os.dup(2)
        os.dup2(captured.fileno(), 2)
        imported = False
        try:
            import tensorflow  # noqa: F401

            imported = True
        finally:
            sys.stderr.flush()
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            captured.seek(0)
            printed = captured.read().decode("utf-8", "replace")
            shown = without_banner(printed) if imported else printed
            if shown:
                sys.stderr.write(shown)
                sys.stderr.flush()


import_tensorflow_quietly()
