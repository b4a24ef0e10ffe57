"""Tests of preemption.py in one process (the 2-worker cluster's preemption is tested in
tests/test_distribution.py, where the workers are processes)."""

import os
import signal
import sys

import pytest
import tensorflow as tf

import utils
from training import preemption


def test_a_signal_stops_after_the_step_with_a_checkpoint_and_its_status():
    saved = []
    before = signal.getsignal(signal.SIGTERM)
    with preemption.stop_watcher(tf.distribute.OneDeviceStrategy("/cpu:0")) as stop:
        assert isinstance(stop, preemption.StopSignals)
        stop.check(1, lambda: saved.append(1) or "ckpt-1")
        assert not saved  # no signal yet: nothing saved, training goes on
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(preemption.TrainingInterrupted) as stopped:
            stop.check(2, lambda: saved.append(2) or "dir/ckpt-2")
    assert saved == [2]
    assert stopped.value.exit_code == 143 and stopped.value.step == 2
    assert str(stopped.value).startswith(
        "SIGTERM received: stopped at step 2 and saved dir/ckpt-2."
    )
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back


def test_one_machine_is_not_a_cluster():
    assert not preemption.is_multi_worker(tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert not preemption.is_multi_worker(tf.distribute.get_strategy())


def test_a_command_line_reports_an_interruption_in_one_line_with_its_status(monkeypatch, capsys):
    def interrupted_main(unused_argv):
        raise preemption.TrainingInterrupted("SIGTERM received", 7, "dir/ckpt-7", 143)

    monkeypatch.setattr(sys, "argv", ["reproduce.py"])
    with pytest.raises(SystemExit) as ended:
        utils.run_command_line(interrupted_main)
    assert ended.value.code == 143
    assert capsys.readouterr().err == (
        "INTERRUPTED: SIGTERM received: stopped at step 7 and saved dir/ckpt-7. Run the same "
        "command again to resume from there.\n"
    )
