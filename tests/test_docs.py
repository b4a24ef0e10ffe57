"""README and docs/: every command they show runs as written (its flags exist and parse), every
`make` target exists, every link resolves, and README stays short."""

import importlib
import re
import shlex

import pytest
from absl import flags
from conftest import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 300


def shell_blocks(text):
    """The commands of the ```sh blocks of a page, continuation lines joined."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines() if line.strip()]
    return commands


def page_commands():
    """(page name, command) of every command line of ours, and every `make` call, on the pages."""
    found = []
    for page in PAGES:
        for command in shell_blocks(page.read_text()):
            found.append((page.name, command))
    return found


def python_invocation(command):
    """(module name, arguments) when `command` runs one of our .py files, else None."""
    words = shlex.split(command, comments=True)
    for index, word in enumerate(words):
        if word.endswith("python") or word.endswith("python3"):
            script = words[index + 1] if index + 1 < len(words) else ""
            if script.endswith(".py") and "/" not in script:
                return script.removesuffix(".py"), words[index + 2 :]
    return None


PYTHON_COMMANDS = [
    (page, command) for page, command in page_commands() if python_invocation(command)
]
MAKE_COMMANDS = [
    (page, command) for page, command in page_commands() if command.startswith("make ")
]


def test_the_pages_show_commands():
    assert len(PYTHON_COMMANDS) > 30 and MAKE_COMMANDS


@pytest.mark.parametrize(("page", "command"), PYTHON_COMMANDS)
def test_every_command_shown_parses_with_its_commands_flags(page, command):
    module_name, arguments = python_invocation(command)
    assert (REPO_ROOT / f"{module_name}.py").exists(), f"{page}: no {module_name}.py"
    module = importlib.import_module(module_name)
    flag_values = flags.FlagValues()
    module.define_flags(flag_values)
    try:
        flag_values([f"{module_name}.py", *arguments])
    except flags.Error as error:
        pytest.fail(f"{page}: `{command}`: {error}")


@pytest.mark.parametrize(("page", "command"), MAKE_COMMANDS)
def test_every_make_target_shown_exists(page, command):
    targets = set(re.findall(r"^([a-z-]+):", (REPO_ROOT / "Makefile").read_text(), re.M))
    target = shlex.split(command, comments=True)[1]
    assert target in targets, f"{page}: make {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves(page):
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_readme_is_short_and_links_every_page_of_docs():
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    for page in PAGES[1:]:
        assert f"(docs/{page.name})" in readme


COMMAND_LINES = sorted(
    path.name
    for path in REPO_ROOT.glob("*.py")
    if "utils.run_command_line(main)" in path.read_text() and path.name != "utils.py"
)


@pytest.mark.parametrize("script", COMMAND_LINES)
def test_a_command_lines_help_keeps_the_line_breaks_of_its_examples(script):
    """--help prints the module docstring: a continued example line (ending in a backslash) is
    shown as written, not joined to the next with its indentation."""
    source = (REPO_ROOT / script).read_text()
    written = source.split('"""', 2)[1]
    shown = importlib.import_module(script.removesuffix(".py")).__doc__
    assert shown == written


def test_the_real_samples_walkthrough_holds_out_whole_files_and_says_how_many():
    """docs/real_samples.md trains on some of the shared frame-level files and evaluates on the
    others: the two patterns share no file, cover every clippedtrain file, and the page's table
    gives their counts of files and videos."""
    import tensorflow as tf

    page = (REPO_ROOT / "docs" / "real_samples.md").read_text()
    arguments = [
        word
        for command in shell_blocks(page)
        if python_invocation(command)
        for word in python_invocation(command)[1]
    ]

    def pattern_of(*flag_names):
        values = {word.split("=", 1)[1] for word in arguments if word.split("=")[0] in flag_names}
        assert len(values) == 1, values
        return values.pop()

    train = pattern_of("--train_data_pattern")
    held_out = pattern_of("--eval_data_pattern", "--input_data_pattern")
    train_files = set(tf.io.gfile.glob(str(REPO_ROOT / train)))
    held_out_files = set(tf.io.gfile.glob(str(REPO_ROOT / held_out)))
    every_file = set(
        tf.io.gfile.glob(str(REPO_ROOT / "../shared/data/yt8m_2018_frame_sample/clippedtrain*"))
    )
    assert train_files and held_out_files and not train_files & held_out_files
    assert train_files | held_out_files == every_file
    for files in (train_files, held_out_files):
        videos = sum(1 for path in files for _ in tf.data.TFRecordDataset(path))
        assert f"| {len(files)} | {videos}" in page
