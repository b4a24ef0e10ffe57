"""reproduce.py, the command line: bad flags end it with one error line (the grid itself is
tested in process in test_grid_runner.py)."""

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT


def run_cli(*args):
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "reproduce.py"), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=600,
    )


@pytest.mark.parametrize("flag", ["--ks=7", "--preset=huge"])
def test_cli_bad_flag_prints_one_error_line(tmp_path, flag):
    completed = run_cli(flag, f"--output_dir={tmp_path}")
    assert completed.returncode == 1
    error_lines = [line for line in completed.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(error_lines) == 1 and flag in error_lines[0], completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    assert not os.listdir(tmp_path)  # nothing written before the flags were checked
