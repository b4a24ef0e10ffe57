"""tf_environment.py: TensorFlow's import banner, the oneDNN runtime note and the saver's lines
are dropped, anything else it prints is kept."""

import tf_environment

import logging
import os


def test_the_banner_lines_are_dropped_and_other_lines_kept():
    printed = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on. You may see ...\n"
        "a warning worth reading\n"
    )
    assert tf_environment.without_banner(printed) == "a warning worth reading\n"
    assert tf_environment.without_banner("") == ""


def test_the_stderr_filter_drops_the_runtime_note_and_passes_on_the_rest():
    read_end, write_end = os.pipe()
    out_read, out_write = os.pipe()
    os.write(
        write_end,
        b"I1205 progress line\n"
        b"E0000 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512. Falling\n"
        b"ERROR: the user's line, cut in two wr",
    )
    os.write(write_end, b"ites\nlast line without a newline")
    os.close(write_end)
    tf_environment.forward_filtered(read_end, out_write)
    os.close(out_write)
    assert os.read(out_read, 1 << 16) == (
        b"I1205 progress line\nERROR: the user's line, cut in two writes\n"
        b"last line without a newline"
    )


def test_the_savers_line_per_checkpoint_is_dropped_and_other_records_kept():
    drop = tf_environment.DropSaverMessages()
    saver = logging.LogRecord(
        "absl",
        logging.INFO,
        "functional_saver.py",
        440,
        "Sharding callback duration: %s microseconds",
        (12,),
        None,
    )
    progress = logging.LogRecord("absl", logging.INFO, "progress.py", 80, "step 1", (), None)
    assert not drop.filter(saver) and drop.filter(progress)
