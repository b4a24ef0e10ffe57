"""Quiets TensorFlow before TensorFlow is first imported: every command line imports this module
first, so a user's `ERROR:` line is not buried under TensorFlow's banners and runtime lines that
no user can act on.

- TF_CPP_MIN_LOG_LEVEL=2 (unless set in the environment) quiets the C++ runtime's INFO and
  WARNING lines. TF_CPP_MIN_LOG_LEVEL=0 is the verbose level: everything below is shown then.
- TensorFlow 2.21 prints its oneDNN banner twice while it is imported, through a logger that
  ignores TF_CPP_MIN_LOG_LEVEL. The import runs here with the process's stderr captured; the
  banner's lines are dropped and anything else it printed is passed on.
- The checkpoint saver logs a line at INFO for every checkpoint (how long its sharding took),
  through absl's Python logger: a filter on that logger drops it.
- The C++ runtime logs at ERROR, once per process, that oneDNN handles booleans only with
  AVX-512 (the LSTMs' masks are boolean; the Eigen kernels it falls back to are TensorFlow's
  own), and ERROR is the level a user must see. It is written straight to file descriptor 2
  when the first compiled function runs, long after the import, so a command line
  (`utils.run_command_line`) calls `filter_stderr`: from then on the process's stderr passes
  through a filter process that drops that line. Run as a script, this file is that filter.
"""

import atexit
import logging
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Lines of the import-time banner, dropped unless TF_CPP_MIN_LOG_LEVEL=0.
BANNER_MARKERS = (
    "oneDNN custom operations are on",
    "All log messages before absl::InitializeLog() is called",
)
# Lines the C++ runtime writes while a command runs, dropped by `filter_stderr`.
RUNTIME_MARKERS = ("oneDNN supports DT_BOOL only on platforms with AVX-512",)
# Messages of TensorFlow's Python logger that are dropped.
SAVER_MESSAGES = ("Sharding callback duration",)
# Seconds a finished command waits for the filter process to pass on what is left.
FILTER_DRAIN_SECONDS = 5


def verbose():
    """True at the verbose level (TF_CPP_MIN_LOG_LEVEL=0): nothing of TensorFlow's is hidden."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0"


def without_banner(text):
    """`text` without the lines of TensorFlow's import-time banner."""
    return "".join(
        line for line in text.splitlines(True) if not any(mark in line for mark in BANNER_MARKERS)
    )


def import_tensorflow_quietly():
    """Imports TensorFlow with file descriptor 2 captured, then writes back what it printed
    there, less the banner. An import that fails still shows all it printed."""
    if "tensorflow" in sys.modules or verbose():
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


class DropSaverMessages(logging.Filter):
    """Drops the checkpoint saver's per-checkpoint INFO lines (SAVER_MESSAGES)."""

    def filter(self, record):
        return not str(record.msg).startswith(SAVER_MESSAGES)


def quiet_python_logs():
    """Adds DropSaverMessages to the Python logger the saver writes through (absl's), unless at
    the verbose level."""
    if not verbose():
        from absl import logging as absl_logging

        absl_logging.get_absl_logger().addFilter(DropSaverMessages())


def shown_lines(data):
    """(the complete lines of `data` that are not RUNTIME_MARKERS' lines, the incomplete last
    line): bytes."""
    *lines, rest = data.split(b"\n")
    markers = [marker.encode() for marker in RUNTIME_MARKERS]
    shown = b"".join(
        line + b"\n" for line in lines if not any(marker in line for marker in markers)
    )
    return shown, rest


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data) :]


def forward_filtered(source_fd=0, target_fd=1):
    """The filter process: copies `source_fd` to `target_fd` line by line, less the lines of
    RUNTIME_MARKERS, until the end of the input."""
    pending = b""
    while chunk := os.read(source_fd, 1 << 16):
        shown, pending = shown_lines(pending + chunk)
        write_all(target_fd, shown)
    shown, _ = shown_lines(pending + b"\n")  # the last line, if shown, without a newline added
    write_all(target_fd, shown[:-1])


def same_destination(first_fd, second_fd):
    """True when two file descriptors write to the same file (one terminal, or `2>&1`)."""
    try:
        return os.path.sameopenfile(first_fd, second_fd)
    except OSError:
        return False


def filter_stderr():
    """Passes the rest of this process's stderr through a filter process that drops the
    RUNTIME_MARKERS lines (unless at the verbose level). When stdout goes to the same place
    (a terminal), it passes through the same pipe, so that the two stay in order.

    The filter runs in its own session (Ctrl-C and the signals sent to this command's process
    group do not reach it) and ends when every writer of its pipe has ended, so what a crash
    prints still comes through. At exit this process gives file descriptor 2 back to the
    original stderr and waits for the filter to pass on what is left.
    """
    if verbose():
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        original_stderr = os.dup(2)
    except (OSError, ValueError):
        return
    merge_stdout = same_destination(1, original_stderr)
    original_stdout = os.dup(1) if merge_stdout else None
    filter_process = subprocess.Popen(
        [sys.executable, "-I", os.path.abspath(__file__)],
        stdin=subprocess.PIPE,
        stdout=original_stderr,
        stderr=original_stderr,
        start_new_session=True,
    )
    os.dup2(filter_process.stdin.fileno(), 2)
    if merge_stdout:
        os.dup2(filter_process.stdin.fileno(), 1)
    filter_process.stdin.close()

    def stop_filter():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.dup2(original_stderr, 2)
        if merge_stdout:
            os.dup2(original_stdout, 1)
        try:
            filter_process.wait(FILTER_DRAIN_SECONDS)
        except subprocess.TimeoutExpired:
            pass  # a child process still holds the pipe: the filter ends with it

    atexit.register(stop_filter)


if __name__ == "__main__":
    forward_filtered()
else:
    import_tensorflow_quietly()
    quiet_python_logs()
