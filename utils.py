"""Small shared pieces: errors a user can fix, dequantization, the starter's class lookup,
flag-list parsing, file checks and atomic writes, and the local part of a distributed value.

Everything here is used by more than one module (readers, models, the CLIs). Nothing here reads
absl FLAGS: callers pass plain values.
"""

import contextlib
import os
import re
import sys
import uuid

import tensorflow as tf

# The YouTube-8M features are quantized to uint8 over this range (the dataset's own constants).
# The repository's root: the command lines, and ../shared beside it.
REPO_DIR = os.path.dirname(os.path.abspath(__file__))

MAX_QUANTIZED_VALUE = 2.0
MIN_QUANTIZED_VALUE = -2.0

# The two kinds of YouTube-8M input: a model declares the one it reads (`input_kind`), and the
# readers have one format for each.
FRAME_INPUT = "frame"  # frame-level SequenceExamples: [batch, frames, features]
VIDEO_INPUT = "video"  # video-level Examples: [batch, features]


class UserInputError(ValueError):
    """An error the user can fix (bad flag, missing file, malformed data); CLIs exit 1 on it."""


def dequantize(
    feat_vector, max_quantized_value=MAX_QUANTIZED_VALUE, min_quantized_value=MIN_QUANTIZED_VALUE
):
    """Maps uint8 quantized features back to floats, as the dataset's tools do.

    Args:
      feat_vector: uint8 or float tensor of any shape, e.g. `[batch, frames, features]`.
      max_quantized_value: upper end of the quantization range.
      min_quantized_value: lower end of the quantization range.

    Returns:
      float32 tensor of the same shape: `x * (max - min) / 255 + (max - min) / 512 + min`.
    """
    quantized_range = max_quantized_value - min_quantized_value
    scalar = quantized_range / 255.0
    bias = (quantized_range / 512.0) + min_quantized_value
    return tf.cast(feat_vector, tf.float32) * scalar + bias


def find_class_by_name(name, modules):
    """Returns the class called `name` from the first of `modules` that defines it.

    Args:
      name: class name, e.g. "HierarchicalTeacherModel".
      modules: iterable of modules to search, in order.

    Raises:
      UserInputError: when no module defines `name`; the message lists what exists.
    """
    for module in modules:
        found = getattr(module, name, None)
        if found is not None:
            return found
    raise UserInputError(f"Unknown class '{name}'.")


def get_list_of_feature_names_and_sizes(feature_names, feature_sizes):
    """Parses the comma-separated `--feature_names` and `--feature_sizes` flag values.

    Args:
      feature_names: e.g. "rgb,audio" (a list or tuple is accepted as is).
      feature_sizes: e.g. "1024,128" (a list or tuple of ints is accepted as is).

    Returns:
      (list of names, list of ints), of the same length.

    Raises:
      UserInputError: when the two lists differ in length, a size is not a positive integer,
        or a name is empty or repeated.
    """
    if isinstance(feature_names, str):
        names = [name.strip() for name in feature_names.split(",")]
    else:
        names = [str(name).strip() for name in feature_names]
    if isinstance(feature_sizes, str):
        size_texts = [size.strip() for size in feature_sizes.split(",")]
    else:
        size_texts = [str(size).strip() for size in feature_sizes]
    if len(names) != len(size_texts):
        raise UserInputError(
            f"--feature_names has {len(names)} entries ({','.join(names)}) but --feature_sizes "
            f"has {len(size_texts)} ({','.join(size_texts)}); they must match one to one."
        )
    if any(not name for name in names) or len(set(names)) != len(names):
        raise UserInputError(f"--feature_names must be distinct and non-empty, got {names}.")
    sizes = []
    for size_text in size_texts:
        try:
            size = int(size_text)
        except ValueError:
            size = 0
        if size < 1:
            raise UserInputError(f"--feature_sizes must be positive integers, got '{size_text}'.")
        sizes.append(size)
    return names, sizes


def glob_data_files(data_pattern, flag_name="data pattern"):
    """Lists the files matching a comma-separated list of glob patterns (local or gs://).

    Raises:
      UserInputError: when the pattern is empty or matches no file; the message names the flag.
    """
    if not data_pattern:
        raise UserInputError(
            f"{flag_name} is empty: give a file pattern such as 'train*.tfrecord'."
        )
    files = []
    for pattern in data_pattern.split(","):
        pattern = pattern.strip()
        if pattern:
            files.extend(tf.io.gfile.glob(pattern))
    files = sorted(set(files))
    if not files:
        raise UserInputError(f"{flag_name}: no files match '{data_pattern}'.")
    return files


def check_writable_dir(path, flag_name):
    """Creates directory `path` if needed and checks that a file can be written in it.

    Called before any data is read, so a job does not fail at its first write hours later.

    Raises:
      UserInputError: naming the flag and the directory.
    """
    probe = os.path.join(path, f".write-check-{uuid.uuid4().hex}")
    try:
        tf.io.gfile.makedirs(path)
        with tf.io.gfile.GFile(probe, "w") as handle:
            handle.write("")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as error:
        detail = describe_tf_error(error) if isinstance(error, tf.errors.OpError) else str(error)
        raise UserInputError(f"{flag_name}: cannot write in {path}: {detail}") from None


def write_bytes_atomically(path, data):
    """Writes `data` to `path` through a temporary file and a rename, so `path` is never partial."""
    temporary_path = f"{path}.tmp-{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(temporary_path, "wb") as handle:
        handle.write(data)
    tf.io.gfile.rename(temporary_path, path, overwrite=True)


def write_text_atomically(path, text):
    """Writes the string `text` (UTF-8) to `path`; see write_bytes_atomically."""
    write_bytes_atomically(path, text.encode("utf-8"))


def describe_tf_error(error):
    """Returns a one-line, readable message from a TensorFlow runtime error.

    Graph-side checks (`tf.debugging.Assert`) print their data as `[text] [value] ...` inside a
    long message full of node names; this keeps only the assertion text and values.
    """
    message = getattr(error, "message", None) or str(error)
    marker = "assertion failed: "
    if marker in message:
        message = message.split(marker, 1)[1]
        message = message.split("\n", 1)[0]
        parts = [part.strip().strip("'\"") for part in message.split("] [")]
        return " ".join(part.strip("[]").replace("\\'", "'") for part in parts)
    lines = [line.strip() for line in message.split("\n") if line.strip()]
    first = lines[0] if lines else type(error).__name__
    if first.startswith("{{function_node") and "}}" in first:
        first = first.split("}}", 1)[1].strip()
    # tf.data's wrapping: "Error in user-defined function ... Iterator::Root::...: <message>".
    first = re.sub(r"^.*?Iterator::[\w:]+: ", "", first)
    first = re.sub(r"\s*\[Op:\w+\].*$", "", first)
    return first


# absl's flags that print the usage; absl then exits with status 1.
HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")


class Interrupted(Exception):
    """The command was asked to stop (a signal) and stopped cleanly; `exit_code` is its status."""

    exit_code = 1


def run_command_line(main):
    """`absl.app.run(main)`, except that asking for help (--help, ...) exits with status 0 and
    an `Interrupted` command ends with one `INTERRUPTED:` line and its exit status. The
    command's stderr passes through `tf_environment.filter_stderr` (the runtime lines of
    TensorFlow's that no user can act on are dropped)."""
    import tf_environment

    from absl import app

    tf_environment.filter_stderr()

    def main_reporting_interruptions(argv):
        try:
            main(argv)
        except Interrupted as interruption:
            print(f"INTERRUPTED: {interruption}", file=sys.stderr)
            sys.exit(interruption.exit_code)

    try:
        app.run(main_reporting_interruptions)
    except SystemExit as exit_request:
        asked_for_help = any(arg.split("=", 1)[0] in HELP_FLAGS for arg in sys.argv[1:])
        if exit_request.code == 1 and asked_for_help:
            sys.exit(0)
        raise


@contextlib.contextmanager
def exit_on_user_error():
    """For a CLI's main: an error the user can cause ends the command with one `ERROR:` line.

    Catches `UserInputError`, TensorFlow's file errors (not found, permission denied, a path that
    is a directory or a file where the other is needed) and `OSError`, prints one line to stderr
    and exits with status 1. Anything else is a bug and keeps its traceback.
    """
    file_errors = (
        tf.errors.NotFoundError,
        tf.errors.PermissionDeniedError,
        tf.errors.FailedPreconditionError,
        tf.errors.AlreadyExistsError,
    )
    try:
        yield
    except UserInputError as error:
        message = str(error)
    except file_errors as error:
        message = describe_tf_error(error)
    except OSError as error:
        message = f"{error.strerror or error}: {error.filename or ''}".rstrip(": ")
        if not error.strerror:
            message = str(error)
    else:
        return
    print(f"ERROR: {message}", file=sys.stderr)
    sys.exit(1)


def local_values(value):
    """A distributed value's parts on this worker concatenated on axis 0 (a tensor stays)."""
    parts = getattr(value, "values", None)
    if isinstance(parts, tuple):
        return tf.concat(parts, axis=0) if len(parts) > 1 else parts[0]
    return value


def source_commit():
    """{"sha": `git rev-parse HEAD`, "dirty": whether tracked files have uncommitted changes} of
    this source tree (None values outside a git checkout); recorded beside measured results."""
    import subprocess

    root = REPO_DIR

    def git(*arguments):
        completed = subprocess.run(
            ["git", "-C", root, *arguments], capture_output=True, text=True, check=False
        )
        return completed.stdout.strip() if completed.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if sha else None
    return {"sha": sha, "dirty": None if status is None else bool(status)}


def machine_facts():
    """What the figures were measured on: {"cpu_model" (/proc/cpuinfo), "cores" (this process
    may use), "cpu_count", "tensorflow"}."""
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu_model = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                None,
            )
    except OSError:
        pass
    return {
        "cpu_model": cpu_model,
        "cores": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
    }
