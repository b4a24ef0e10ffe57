r"""Runs a tf.data service server: the dispatcher, or a worker that reads and parses for the
trainer, eval or inference.

    python data_service.py --role=dispatcher --port=5050 [--work_dir=gs://bucket/dispatcher]
    python data_service.py --role=worker --port=5051 --dispatcher_address=dispatcher-host:5050 \
        [--worker_address=worker-host:5051]

Then pass --tf_data_service_address=grpc://dispatcher-host:5050 to train.py, eval.py or
inference.py: their pipelines up to the parse run on the workers (data_service_input.py).
TensorFlow's own servers (`tf.data.experimental.service.DispatchServer`, `WorkerServer`) do
the work; this command only configures and starts one, logs its address, and serves until
SIGTERM or SIGINT, then stops it and exits with status 0.

With --work_dir the dispatcher is fault tolerant: it journals its state there (local or gs://)
and a restarted dispatcher resumes the jobs it was serving. A worker tells the dispatcher the
address the consumers reach it at (--worker_address, default this machine's host name and
--port).
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

import os
import signal
import socket
import sys
import threading

import tensorflow as tf
from absl import flags, logging

import utils
from pipeline import data_service_input

ROLES = ("dispatcher", "worker")
STOP_SECONDS = 10  # how long a stopping server may take before the process exits anyway


def define_flags(flag_values=flags.FLAGS):
    flags.DEFINE_string(
        "role", "", f"Which server to run: {' or '.join(ROLES)}.", flag_values=flag_values
    )
    flags.DEFINE_integer("port", None, "Port to serve on (1-65535).", flag_values=flag_values)
    flags.DEFINE_string(
        "work_dir",
        "",
        "Dispatcher: directory (local or gs://) for its journal; makes it fault tolerant.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "dispatcher_address",
        "",
        "Worker: the dispatcher's host:port.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "worker_address",
        "",
        "Worker: host:port at which the consumers reach this worker (default: this machine's "
        "host name and --port).",
        flag_values=flag_values,
    )


def check_flags(flag_values):
    """Raises utils.UserInputError naming the first missing or bad flag."""
    if flag_values.role not in ROLES:
        raise utils.UserInputError(f"--role={flag_values.role}: choose one of {', '.join(ROLES)}.")
    if flag_values.port is None:
        raise utils.UserInputError("--port is required.")
    if not 1 <= flag_values.port <= 65535:
        raise utils.UserInputError(f"--port={flag_values.port} is out of range (1-65535).")
    if flag_values.role == "dispatcher":
        for name in ("dispatcher_address", "worker_address"):
            if flag_values[name].value:
                raise utils.UserInputError(f"--{name} is for --role=worker, not a dispatcher.")
        return
    if flag_values.work_dir:
        raise utils.UserInputError("--work_dir is for --role=dispatcher, not a worker.")
    if not flag_values.dispatcher_address:
        raise utils.UserInputError(
            "--dispatcher_address is required with --role=worker (the dispatcher's host:port)."
        )
    data_service_input.check_host_port(
        dispatcher_host_port(flag_values.dispatcher_address), "--dispatcher_address"
    )
    if flag_values.worker_address:
        data_service_input.check_host_port(flag_values.worker_address, "--worker_address")


def dispatcher_host_port(address):
    """`grpc://host:port` or `host:port` -> `host:port` (what a WorkerConfig takes)."""
    return address.removeprefix(data_service_input.ADDRESS_PROTOCOL)


def start_dispatcher(port, work_dir=""):
    """Starts a tf.data service dispatcher on `port`; fault tolerant when `work_dir` is given.

    Returns:
      (the running `DispatchServer`, the address consumers pass as
      --tf_data_service_address).
    """
    server = tf.data.experimental.service.DispatchServer(
        tf.data.experimental.service.DispatcherConfig(
            port=port, work_dir=work_dir or None, fault_tolerant_mode=bool(work_dir)
        )
    )
    return server, f"{data_service_input.ADDRESS_PROTOCOL}{socket.gethostname()}:{port}"


def start_worker(port, dispatcher_address, worker_address=""):
    """Starts a tf.data service worker on `port` that registers with `dispatcher_address`
    (`host:port`) as reachable at `worker_address` (default: this host's name and `port`).

    Returns:
      (the running `WorkerServer`, its address as the consumers reach it).
    """
    worker_address = worker_address or f"{socket.gethostname()}:{port}"
    server = tf.data.experimental.service.WorkerServer(
        tf.data.experimental.service.WorkerConfig(
            dispatcher_address=dispatcher_host_port(dispatcher_address),
            worker_address=worker_address,
            port=port,
        )
    )
    return server, worker_address


def wait_for_stop_signal():
    """Blocks until SIGTERM or SIGINT; returns the signal's name."""
    received = []
    stop = threading.Event()

    def handle(signal_number, unused_frame):
        received.append(signal.Signals(signal_number).name)
        stop.set()

    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, handle)
    while not stop.wait(timeout=1.0):
        pass
    return received[0]


def main(unused_argv):
    flag_values = flags.FLAGS
    logging.set_verbosity(logging.INFO)
    with utils.exit_on_user_error():
        check_flags(flag_values)
        if flag_values.role == "dispatcher":
            server, address = start_dispatcher(flag_values.port, flag_values.work_dir)
            description = f"tf.data service dispatcher serving at {address}"
            if flag_values.work_dir:
                description += f" (fault tolerant, journal in {flag_values.work_dir})"
        else:
            server, address = start_worker(
                flag_values.port, flag_values.dispatcher_address, flag_values.worker_address
            )
            description = (
                f"tf.data service worker serving at {address} for the dispatcher "
                f"{flag_values.dispatcher_address}"
            )
    logging.info(description)
    print(description, flush=True)
    stopped_by = wait_for_stop_signal()
    logging.info("%s: stopping the %s", stopped_by, flag_values.role)
    stop_within(server, STOP_SECONDS, flag_values.role)


def stop_within(server, seconds, role):
    """Stops `server`, waiting at most `seconds`: a worker whose dispatcher is already gone can
    block in `stop()` retrying it. Past the wait the process exits (status 0: it was asked to
    stop) without waiting for the server."""
    stopper = threading.Thread(target=server.stop, daemon=True)
    stopper.start()
    stopper.join(seconds)
    if stopper.is_alive():
        logging.warning("The %s did not stop within %d s; exiting without it.", role, seconds)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
