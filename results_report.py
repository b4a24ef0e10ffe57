r"""Writes the result sections of README and docs/ from the committed measurements, so no figure
goes stale.

    python results_report.py                                   (what `make results` runs)
    python results_report.py --import_grid=proxy=/tmp/grid_proxy \
        --import_benchmark=/tmp/bench/benchmark.json --import_demo=demo_out/demo_results.json
    python results_report.py --import_recipe=proxy:L_rep=/tmp/grid_proxy_serial
    python results_report.py --import_family=proxy:nextvlad:grid=/tmp/grids/nextvlad
    python results_report.py --import_adaptive=proxy:adaptive=/tmp/adaptive_sweep

The measurements live in `results/`: `benchmark.json` (benchmark.py's report), `demo.json`
(demo.py's `demo_results.json`), one directory
per grid run, `grid_<name>/` (reproduce.py's `config.json`, `results.json`, `results.md`), and
`recipes_<regime>.json`, the ablation of distillation recipes on one kind of data (rows of grid
runs, experiments/recipe_report.py), and `families_<regime>.json`, the model families side by
side (rows of grid runs, experiments/family_report.py). Each
records the commit it ran on and the machine. Each measurement has one generated block, between
`<!-- generated:NAME -->` and `<!-- /generated:NAME -->` lines, in README.md, BUILD_NOTES.md or
a page of `docs/` (the page whose text explains it; a block may appear on several pages); this
command rewrites every block of every page from its JSON (and the GAP plot of each grid in
`docs/`), and `--import_*` first copies a new run's files into `results/`. A test checks that every
page's blocks are what the JSON gives.
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

import glob
import json
import os
import re

from absl import flags

import utils
from experiments import (
    adaptive_report,
    benchmark_report,
    demo_job,
    family_report,
    grid,
    grid_report,
    recipe_report,
)

REPO_DIR = utils.REPO_DIR
RESULTS_DIR = os.path.join(REPO_DIR, "results")
BENCHMARK_FILE = "benchmark.json"
DEMO_FILE = "demo.json"
GRID_FILES = ("config.json", "results.json", "results.md")
GRID_PREFIX = "grid_"
RECIPES_PREFIX = "recipes_"
FAMILIES_PREFIX = "families_"
ADAPTIVE_PREFIX = "adaptive_"


def define_flags(flag_values=flags.FLAGS):
    flags.DEFINE_string(
        "results_dir", RESULTS_DIR, "Where the measurements are kept.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "readme",
        os.path.join(REPO_DIR, "README.md"),
        "The README to rewrite; the pages of docs/ beside it are rewritten too.",
        flag_values=flag_values,
    )
    flags.DEFINE_multi_string(
        "import_grid",
        [],
        "NAME=DIR: copy a reproduce.py output directory's config.json, results.json and "
        "results.md into results/grid_NAME/ first.",
        flag_values=flag_values,
    )
    flags.DEFINE_multi_string(
        "import_recipe",
        [],
        "REGIME:LABEL=DIR: add (or replace) the row LABEL of results/recipes_REGIME.json from "
        "a reproduce.py output directory's config.json and results.json first. The baselines "
        "are the rows labelled uniform and uniform-offset.",
        flag_values=flag_values,
    )
    flags.DEFINE_multi_string(
        "import_family",
        [],
        "REGIME:FAMILY:LABEL=DIR: add (or replace) the row of FAMILY labelled LABEL (grid: "
        "TEACHER-FULL, UNIFORM-10 and STUDENT-10-DEFAULT; uniform-offset: UNIFORM-10 from "
        "random offsets) of results/families_REGIME.json from a reproduce.py output directory.",
        flag_values=flag_values,
    )
    flags.DEFINE_multi_string(
        "import_adaptive",
        [],
        "REGIME:LABEL=DIR: add (or replace) the row LABEL (adaptive, or a fixed student-k) of "
        "results/adaptive_REGIME.json from a sweep directory: seed*/eval_metrics_threshold*.json "
        "(experiments/adaptive_report.py).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "import_benchmark",
        "",
        "A benchmark.json to copy into results/ first.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "import_demo",
        "",
        "A demo.py output directory's demo_results.json to copy into results/demo.json first.",
        flag_values=flag_values,
    )


def grid_config(values):
    """A GridConfig from a config.json (keys it does not know, from other versions, dropped)."""
    known = {field for field in grid.GridConfig.__dataclass_fields__}
    return grid.GridConfig(**{key: value for key, value in values.items() if key in known})


def grid_markdown(config_values, stored):
    """README's block of one grid run: its data and settings, Table 1 (mean ± std over the
    seeds), the students against their baselines and, for a model swept over exit thresholds,
    its table (grid_report.exit_table_lines)."""
    config = grid_config(config_values)
    results = stored["models"]
    commits = sorted(
        {
            benchmark_report.commit_fields(entry.get("commit")).get("sha") or "unknown"
            for entry in results
        }
    )
    machine = benchmark_report.describe_run({"machine": stored.get("machine")}).split("; ", 1)[1]
    lines = [
        grid_report.describe_data(config),
        f"Models run on commit(s) {', '.join(sha[:10] for sha in commits)} ({machine}).",
        "",
        grid_report.format_seeds(results),
        "",
        *filter(None, [grid_report.describe_default_recipe(results, config.family)]),
        grid_report.format_table_1(results),
    ]
    comparisons = grid_report.format_comparisons(results)
    if comparisons:
        lines += ["", comparisons]
    exits = grid_report.exit_table_lines(results)
    if exits:
        # Without the section's heading: a block sits under a heading of its page.
        lines += ["", *exits]
    return "\n".join(lines)


def demo_markdown(record):
    """The demo's block: what demo.py printed, and the commit and machine it ran on."""
    return "\n".join(
        [
            "```",
            *demo_job.results_lines(record["metrics"]),
            "```",
            "",
            f"`make demo`, {benchmark_report.describe_run(record)}: {record['seconds']:.0f} s "
            "without the installation. The run is deterministic: the same machine prints the "
            "same figures every time.",
        ]
    )


def block_pattern(name):
    return re.compile(
        rf"(<!-- generated:{re.escape(name)} -->\n).*?(<!-- /generated:{re.escape(name)} -->)",
        re.DOTALL,
    )


def has_block(text, name):
    """Whether `text` holds the markers of block `name`."""
    return bool(block_pattern(name).search(text))


def replace_block(text, name, body):
    """`text` with the lines between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`
    replaced by `body`.

    Raises:
      utils.UserInputError: when the markers are missing.
    """
    pattern = block_pattern(name)
    if not pattern.search(text):
        raise utils.UserInputError(
            f"No page has a block for {name}: add the lines <!-- generated:{name} --> and "
            f"<!-- /generated:{name} --> to README.md or a page of docs/."
        )
    return pattern.sub(lambda match: match.group(1) + body + "\n" + match.group(2), text)


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def grid_names(results_dir):
    """The grid runs kept in `results_dir`: NAME of each `grid_NAME/`."""
    if not os.path.isdir(results_dir):
        return []
    return sorted(
        entry.removeprefix(GRID_PREFIX)
        for entry in os.listdir(results_dir)
        if entry.startswith(GRID_PREFIX) and os.path.isdir(os.path.join(results_dir, entry))
    )


def generated_blocks(results_dir):
    """{block name: its markdown} of every measurement kept in `results_dir`."""
    blocks = {}
    demo_path = os.path.join(results_dir, DEMO_FILE)
    if os.path.exists(demo_path):
        blocks["demo"] = demo_markdown(read_json(demo_path))
    benchmark_path = os.path.join(results_dir, BENCHMARK_FILE)
    if os.path.exists(benchmark_path):
        benchmark = read_json(benchmark_path)
        blocks["benchmark"] = benchmark_report.benchmark_markdown(benchmark)
        for name, markdown in (
            ("litert", benchmark_report.litert_markdown(benchmark)),
            ("benchmark-adaptive", benchmark_report.adaptive_markdown(benchmark)),
        ):
            if markdown:  # "" for a benchmark.json without that part
                blocks[name] = markdown
    for name in grid_names(results_dir):
        directory = os.path.join(results_dir, GRID_PREFIX + name)
        blocks[f"grid-{name}"] = grid_markdown(
            read_json(os.path.join(directory, "config.json")),
            read_json(os.path.join(directory, "results.json")),
        )
    for path in sorted(glob.glob(os.path.join(results_dir, RECIPES_PREFIX + "*.json"))):
        regime = os.path.basename(path).removeprefix(RECIPES_PREFIX).removesuffix(".json")
        blocks[f"recipes-{regime}"] = recipe_report.ablation_markdown(read_json(path))
    for path in sorted(glob.glob(os.path.join(results_dir, FAMILIES_PREFIX + "*.json"))):
        regime = os.path.basename(path).removeprefix(FAMILIES_PREFIX).removesuffix(".json")
        recipes_path = os.path.join(results_dir, f"{RECIPES_PREFIX}{regime}.json")
        recipes = read_json(recipes_path) if os.path.exists(recipes_path) else None
        blocks[f"families-{regime}"] = family_report.families_markdown(read_json(path), recipes)
    for path in sorted(glob.glob(os.path.join(results_dir, ADAPTIVE_PREFIX + "*.json"))):
        regime = os.path.basename(path).removeprefix(ADAPTIVE_PREFIX).removesuffix(".json")
        blocks[f"adaptive-{regime}"] = adaptive_report.adaptive_markdown(read_json(path))
    return blocks


def page_paths(readme):
    """README, the build notes beside it (when there are) and the markdown pages of docs/."""
    root = os.path.dirname(readme)
    notes = os.path.join(root, "BUILD_NOTES.md")
    docs_dir = os.path.join(root, "docs")
    return [
        readme,
        *([notes] if os.path.exists(notes) else []),
        *sorted(glob.glob(os.path.join(docs_dir, "*.md"))),
    ]


def render_pages(texts, results_dir):
    """{path: text} with every generated block rewritten from `results_dir`, wherever it is.

    Raises:
      utils.UserInputError: when a measurement has a block on no page.
    """
    rendered = dict(texts)
    for name, body in generated_blocks(results_dir).items():
        holders = [path for path, text in rendered.items() if has_block(text, name)]
        if not holders:
            replace_block("", name, body)  # raises, naming the block
        for path in holders:
            rendered[path] = replace_block(rendered[path], name, body)
    return rendered


def write_plots(results_dir, docs_dir):
    """docs/gap_vs_frames_NAME.png of every grid run."""
    for name in grid_names(results_dir):
        stored = read_json(os.path.join(results_dir, GRID_PREFIX + name, "results.json"))
        figure = grid_report.gap_figure(stored["models"])
        utils.write_bytes_atomically(
            os.path.join(docs_dir, f"gap_vs_frames_{name}.png"), grid_report.render_png(figure)
        )


def import_grid(spec, results_dir):
    """Copies NAME=DIR's grid files into results_dir/grid_NAME/."""
    name, separator, source = spec.partition("=")
    if not separator or not re.fullmatch(r"[a-z0-9_-]+", name):
        raise utils.UserInputError(f"--import_grid={spec}: give NAME=DIR, NAME in [a-z0-9_-].")
    target = os.path.join(results_dir, GRID_PREFIX + name)
    os.makedirs(target, exist_ok=True)
    for file_name in GRID_FILES:
        path = os.path.join(source, file_name)
        if not os.path.exists(path):
            raise utils.UserInputError(f"--import_grid={spec}: {path} not found.")
        with open(path) as handle:
            utils.write_text_atomically(os.path.join(target, file_name), handle.read())


def read_grid_run(flag, spec, source):
    """(config.json, results.json) of the reproduce.py output directory `source`."""
    paths = [os.path.join(source, name) for name in ("config.json", "results.json")]
    for path in paths:
        if not os.path.exists(path):
            raise utils.UserInputError(f"{flag}={spec}: {path} not found.")
    return read_json(paths[0]), read_json(paths[1])


def add_row(path, row, key_names):
    """Adds `row` to the rows of the JSON at `path`, replacing a row with its `key_names`."""
    table = read_json(path) if os.path.exists(path) else {"rows": []}
    key = [row[name] for name in key_names]
    rows = [old for old in table["rows"] if [old.get(name) for name in key_names] != key]
    table["rows"] = rows + [row]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    utils.write_text_atomically(path, json.dumps(table, indent=1) + "\n")


def parse_regime_label(flag, spec):
    """(regime, label, directory) of a REGIME:LABEL=DIR `spec` of `flag`.

    Raises:
      utils.UserInputError: for another form, or a REGIME outside [a-z0-9_-].
    """
    target, separator, source = spec.partition("=")
    regime, colon, label = target.partition(":")
    if not (separator and colon and re.fullmatch(r"[a-z0-9_-]+", regime) and label):
        raise utils.UserInputError(f"{flag}={spec}: give REGIME:LABEL=DIR, REGIME in [a-z0-9_-].")
    return regime, label, source


def import_recipe(spec, results_dir):
    """Adds (or replaces) row LABEL of results_dir/recipes_REGIME.json from REGIME:LABEL=DIR."""
    regime, label, source = parse_regime_label("--import_recipe", spec)
    settings, stored = read_grid_run("--import_recipe", spec, source)
    row = {"label": label, "settings": settings, "models": stored["models"]}
    add_row(os.path.join(results_dir, f"{RECIPES_PREFIX}{regime}.json"), row, ["label"])


def import_family(spec, results_dir):
    """Adds (or replaces) the FAMILY, LABEL row of results_dir/families_REGIME.json from
    REGIME:FAMILY:LABEL=DIR."""
    target, separator, source = spec.partition("=")
    parts = target.split(":")
    labels = ("grid", "uniform-offset")
    if not (
        separator
        and len(parts) == 3
        and re.fullmatch(r"[a-z0-9_-]+", parts[0])
        and parts[1] in family_report.FAMILIES
        and parts[2] in labels
    ):
        raise utils.UserInputError(
            f"--import_family={spec}: give REGIME:FAMILY:LABEL=DIR, REGIME in [a-z0-9_-], "
            f"FAMILY one of {', '.join(family_report.FAMILIES)}, LABEL one of "
            f"{', '.join(labels)}."
        )
    regime, family, label = parts
    settings, stored = read_grid_run("--import_family", spec, source)
    if settings.get("family", "hierarchical") != family:
        raise utils.UserInputError(
            f"--import_family={spec}: {source} holds a grid of the "
            f"{settings.get('family', 'hierarchical')} family."
        )
    row = {"family": family, "label": label, "settings": settings, "models": stored["models"]}
    add_row(os.path.join(results_dir, f"{FAMILIES_PREFIX}{regime}.json"), row, ["family", "label"])


def import_adaptive(spec, results_dir):
    """Adds (or replaces) row LABEL of results_dir/adaptive_REGIME.json from REGIME:LABEL=DIR."""
    regime, label, source = parse_regime_label("--import_adaptive", spec)
    row = {"label": label, "entries": adaptive_report.read_sweep(source)}
    add_row(os.path.join(results_dir, f"{ADAPTIVE_PREFIX}{regime}.json"), row, ["label"])


def main(unused_argv):
    flag_values = flags.FLAGS
    with utils.exit_on_user_error():
        results_dir = flag_values.results_dir
        for spec in flag_values.import_grid:
            import_grid(spec, results_dir)
        for spec in flag_values.import_recipe:
            import_recipe(spec, results_dir)
        for spec in flag_values.import_family:
            import_family(spec, results_dir)
        for spec in flag_values.import_adaptive:
            import_adaptive(spec, results_dir)
        if flag_values.import_benchmark:
            with open(flag_values.import_benchmark) as handle:
                report = json.load(handle)
            utils.write_text_atomically(
                os.path.join(results_dir, BENCHMARK_FILE), json.dumps(report, indent=1) + "\n"
            )
        if flag_values.import_demo:
            utils.write_text_atomically(
                os.path.join(results_dir, DEMO_FILE),
                json.dumps(read_json(flag_values.import_demo), indent=1) + "\n",
            )
        texts = {}
        for path in page_paths(flag_values.readme):
            with open(path) as handle:
                texts[path] = handle.read()
        rendered = render_pages(texts, results_dir)
        for path, text in rendered.items():
            if text != texts[path]:
                utils.write_text_atomically(path, text)
        write_plots(results_dir, os.path.join(os.path.dirname(flag_values.readme), "docs"))
    for path, text in rendered.items():
        print(f"{path}: {'rewritten' if text != texts[path] else 'already up to date'}")


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
