"""The cloud training files, checked without a network: the repository runs as the package that
AI Platform Training installs (`python -m youtube-8m.train`), the job configurations have the
fields Vertex AI and AI Platform require and pass only flags train.py defines, and the training
image installs requirements.txt's versions.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import REPO_ROOT

PACKAGE_NAME = "youtube-8m"
VERTEX_CONFIGS = ("vertex_job.yaml", "vertex_multiworker.yaml")
# Pins of requirements.txt that requirements-cloud.txt leaves out: TensorFlow and TensorBoard come
# with the base image (tensorflow/tensorflow:VERSION-gpu); matplotlib draws grid_report.py's plots
# and ai-edge-litert runs the device models of export_model.py --format=litert: neither is needed
# to train.
NOT_IN_CLOUD_REQUIREMENTS = {"tensorflow-cpu", "tensorboard", "matplotlib", "ai-edge-litert"}


def load_yaml(name):
    with open(REPO_ROOT / name) as f:
        return yaml.safe_load(f)


def train_flag_names():
    """The flags train.py defines (`flags.DEFINE_*("name", ...)`), read from its source."""
    source = (REPO_ROOT / "train.py").read_text()
    return set(re.findall(r"flags\.DEFINE_\w+\(\s*[\"'](\w+)[\"']", source))


def flag_name(arg):
    """'--name=value' or '--name' -> 'name'."""
    assert arg.startswith("--"), f"{arg!r} is not a --flag"
    return arg[2:].split("=", 1)[0]


def pins(name):
    """{package: version} of a requirements file's `package==version` lines."""
    result = {}
    for line in (REPO_ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            package, version = line.split("==")
            result[package.strip().lower()] = version.strip()
    return result


def all_keys(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from all_keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_keys(value)


# The repository run as an installed package.


def subprocess_env():
    """This interpreter's environment without PYTHONPATH: only the package can find the modules."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def code_packages():
    """The repository's packages of code: its folders with an __init__.py (tests have none)."""
    return sorted(path.parent.name for path in REPO_ROOT.glob("*/__init__.py"))


@pytest.fixture(scope="module")
def package_parent(tmp_path_factory):
    """A directory holding `youtube-8m/`: the repository's modules and packages, as pip installs
    the package that gcloud builds (its .py files only)."""
    parent = tmp_path_factory.mktemp("installed")
    package = parent / PACKAGE_NAME
    package.mkdir()
    for source in REPO_ROOT.glob("*.py"):
        shutil.copy2(source, package / source.name)
    for name in code_packages():
        (package / name).mkdir()
        for source in (REPO_ROOT / name).glob("*.py"):
            shutil.copy2(source, package / name / source.name)
    return parent


@pytest.fixture(scope="module")
def package_runs(package_parent):
    """The CLIs run as `python -m youtube-8m.<module>` from the package's parent, all at once
    (each imports TensorFlow): {name: CompletedProcess}."""
    chief = load_yaml("vertex_multiworker.yaml")["workerPoolSpecs"][0]
    commands = {
        "train": ["-m", f"{PACKAGE_NAME}.train", "--helpshort"],
        "eval": ["-m", f"{PACKAGE_NAME}.eval", "--helpshort"],
        # absl parses every flag, values included, then exits 0 before main.
        "train_vertex_args": [
            "-m",
            f"{PACKAGE_NAME}.train",
            "--only_check_args",
            *chief["containerSpec"]["args"],
        ],
    }
    processes = {
        name: subprocess.Popen(
            [sys.executable, *args],
            cwd=package_parent,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in commands.items()
    }
    runs = {}
    try:
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=300)
            runs[name] = subprocess.CompletedProcess(
                process.args, process.returncode, stdout, stderr
            )
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return runs


def test_package_puts_its_directory_on_sys_path(package_parent):
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({PACKAGE_NAME!r})\n"
        "import average_precision_calculator\n"
        "print(average_precision_calculator.__file__)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=package_parent,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    expected = package_parent / PACKAGE_NAME / "average_precision_calculator.py"
    assert completed.stdout.strip() == str(expected)


def test_repository_comes_before_its_parent_on_sys_path():
    """pytest imports the root __init__.py (the repository is a package) after putting the
    repository's parent first on sys.path; the repository must stay ahead of it."""
    entries = [os.path.realpath(entry or os.curdir) for entry in sys.path]
    here = entries.index(str(REPO_ROOT))
    parent = str(REPO_ROOT.parent)
    assert parent not in entries or here < entries.index(parent)


@pytest.mark.xdist_group("package_runs")
@pytest.mark.parametrize(
    "module, own_flag", [("train", "--train_data_pattern"), ("eval", "--eval_data_pattern")]
)
def test_cli_runs_as_package_module(package_runs, module, own_flag):
    completed = package_runs[module]
    # absl prints the main module's flags for --helpshort; asking for help is a success.
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr, completed.stderr[-3000:]
    assert own_flag in completed.stdout


@pytest.mark.xdist_group("package_runs")
def test_train_as_package_accepts_the_vertex_args(package_runs):
    completed = package_runs["train_vertex_args"]
    assert completed.returncode == 0, completed.stderr[-3000:]


# Job configurations.


@pytest.mark.parametrize("name", VERTEX_CONFIGS)
def test_vertex_config_has_the_required_fields(name):
    config = load_yaml(name)
    # gcloud refuses keys with underscores in --config files (camelCase only).
    assert not [key for key in all_keys(config) if "_" in key]
    pools = config["workerPoolSpecs"]
    assert isinstance(pools, list) and pools
    assert pools[0]["replicaCount"] == 1  # the primary replica (the chief)
    for pool in pools:
        machine = pool["machineSpec"]
        assert isinstance(machine["machineType"], str) and machine["machineType"]
        assert machine["acceleratorType"].startswith("NVIDIA_")
        assert isinstance(machine["acceleratorCount"], int) and machine["acceleratorCount"] >= 1
        assert isinstance(pool["replicaCount"], int) and pool["replicaCount"] >= 1
        container = pool["containerSpec"]
        assert isinstance(container["imageUri"], str) and container["imageUri"]
        assert all(isinstance(arg, str) for arg in container["args"])
    assert config["baseOutputDirectory"]["outputUriPrefix"].startswith("gs://")


@pytest.mark.parametrize("name", VERTEX_CONFIGS)
def test_vertex_args_are_train_flags(name):
    defined = train_flag_names()
    assert {"train_data_pattern", "model", "train_dir"} <= defined  # the parse found them
    for pool in load_yaml(name)["workerPoolSpecs"]:
        args = pool["containerSpec"]["args"]
        names = [flag_name(arg) for arg in args]
        unknown = [n for n in names if n not in defined and n.removeprefix("no") not in defined]
        assert not unknown, f"{name}: flags train.py does not define: {unknown}"
        # Outputs go to the AIP_* directories of baseOutputDirectory.
        assert "train_dir" not in names
        values = dict(arg[2:].split("=", 1) for arg in args if "=" in arg)
        assert values["train_data_pattern"].startswith("gs://")
        assert values["model"] == "DistilledStudentModel"


def test_single_gpu_job_has_one_pool():
    pools = load_yaml("vertex_job.yaml")["workerPoolSpecs"]
    assert len(pools) == 1
    assert not any(arg.startswith("--strategy=multi") for arg in pools[0]["containerSpec"]["args"])


def test_multiworker_job_has_a_chief_and_a_worker_pool_alike():
    chief, worker = load_yaml("vertex_multiworker.yaml")["workerPoolSpecs"]
    assert chief["replicaCount"] == 1 and worker["replicaCount"] >= 1
    assert "--strategy=multi_worker_mirrored" in chief["containerSpec"]["args"]
    assert chief["containerSpec"] == worker["containerSpec"]
    assert chief["machineSpec"] == worker["machineSpec"]


def test_legacy_ai_platform_config():
    training_input = load_yaml("cloudml-gpu.yaml")["trainingInput"]
    assert training_input["scaleTier"] == "CUSTOM"
    assert training_input["masterType"] == "n1-standard-8"
    accelerator = training_input["masterConfig"]["acceleratorConfig"]
    assert accelerator["count"] >= 1
    assert accelerator["type"] == "NVIDIA_TESLA_T4"
    # Quoted in the file: unquoted, YAML reads 2.11 and 3.7 as numbers.
    assert training_input["runtimeVersion"] == "2.11"
    assert training_input["pythonVersion"] == "3.7"


# The training image.


def dockerfile_lines():
    """The Dockerfile's instructions, comments and blank lines left out."""
    lines = (REPO_ROOT / "Dockerfile").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_image_installs_requirements_versions():
    required = pins("requirements.txt")
    cloud = pins("requirements-cloud.txt")
    lines = dockerfile_lines()
    (base,) = [line for line in lines if line.startswith("FROM ")]
    assert base == f"FROM tensorflow/tensorflow:{required['tensorflow-cpu']}-gpu"
    # Every other dependency, at the same version.
    assert cloud == {p: v for p, v in required.items() if p not in NOT_IN_CLOUD_REQUIREMENTS}
    assert any(line.startswith("COPY requirements-cloud.txt") for line in lines)
    installs = [line for line in lines if line.startswith("RUN ") and "pip install" in line]
    assert any("-r requirements-cloud.txt" in line for line in installs)
    # Any package pinned in the Dockerfile itself has requirements.txt's version too.
    for line in installs:
        for package, version in re.findall(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", line):
            assert required.get(package.lower()) == version, line


def test_image_runs_train():
    lines = dockerfile_lines()
    (entrypoint,) = [line for line in lines if line.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == ["python", "train.py"]
    assert "COPY *.py ./" in lines
    # Every package of the code, so that the commands' imports resolve in the image.
    for package in code_packages():
        assert f"COPY {package}/ {package}/" in lines


def test_dockerignore_keeps_local_state_out():
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".pytest_cache", "demo_out", "reproduce_out"} <= ignored
