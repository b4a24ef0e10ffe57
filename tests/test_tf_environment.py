"""tf_environment.py: TensorFlow's import banner is dropped, anything else it prints is kept."""

import tf_environment


def test_the_banner_lines_are_dropped_and_other_lines_kept():
    printed = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on. You may see ...\n"
        "a warning worth reading\n"
    )
    assert tf_environment.without_banner(printed) == "a warning worth reading\n"
    assert tf_environment.without_banner("") == ""
