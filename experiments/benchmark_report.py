"""A benchmark.json as markdown: the readers side by side, the GPU projection, the training step
times, the inference speed-ups and the LiteRT device models.

    print(benchmark_report.benchmark_markdown(report))

benchmark.py prints it at the end of a run; results_report.py writes it into README.
"""


def commit_fields(commit):
    """{"sha", "dirty"} of a recorded commit: a dict, or a "sha[+dirty]" string."""
    if isinstance(commit, str):
        return {"sha": commit.removesuffix("+dirty"), "dirty": commit.endswith("+dirty")}
    return commit or {}


def describe_run(report):
    """ "commit abc1234 (uncommitted changes), Intel ..., 2 cores, TensorFlow 2.21.0"."""
    commit = commit_fields(report.get("commit"))
    sha = (commit.get("sha") or "unknown")[:10]
    dirty = " with uncommitted changes" if commit.get("dirty") else ""
    machine = report.get("machine") or {}
    return (
        f"commit {sha}{dirty}; {machine.get('cpu_model') or machine.get('cpu') or 'unknown CPU'}, "
        f"{machine.get('cores', '?')} cores, TensorFlow {machine.get('tensorflow', '?')}"
    )


def benchmark_markdown(report):
    """README's benchmark block: the readers side by side, the GPU projection, the training step
    times, and the inference speed-ups, from one benchmark.json."""
    frames = (
        f" ({report['frames_per_video']:.0f} frames on average)"
        if "frames_per_video" in report
        else ""
    )
    repeats = report["repeats"]
    timing = f"median of {repeats} repeats" if repeats > 1 else "one timed repeat"
    if report.get("quick"):
        run = "`make bench-quick`, a quick run (rough figures; `make bench` measures them)"
    else:
        run = "`make bench`"
    lines = [
        f"{run}, {describe_run(report)}; {report['num_videos']} synthetic videos"
        f"{frames}, batch {report['batch_size']}, {timing}.",
        "",
    ]
    names = {
        "plain_read": "plain TFRecord read, full records",
        "teacher": "teacher reader (every frame)",
        "student_10_full_records": "student-10 reader, full records",
        "student_10_cache": "student-10 reader, frame cache",
        "training_unordered": "teacher's training input, shards as they arrive",
        "training_ordered": "the same in a fixed order (the default)",
    }
    if "input" in report:
        reads = report["input"]
        lines += ["| read | videos/s | per core | KB per video |", "|---|---|---|---|"]
        for key, label in names.items():
            if key in reads:
                row = reads[key]
                lines.append(
                    f"| {label} | {row['videos_per_s']:,.0f} | {row['per_core']:,.0f} | "
                    f"{row['bytes_per_video'] / 1000:,.1f} |"
                )
        if "student_10_cache_over_teacher_per_core" in reads:
            lines += [
                "",
                "The student-10 reader on its cache gives "
                f"{reads['student_10_cache_over_teacher_per_core']:.1f}x the teacher reader's "
                "videos per core.",
            ]
        if "training_ordered_over_unordered" in reads:
            lines += [
                "",
                "Training input in a fixed order (the default, which a resumed run can "
                f"repeat) gives {reads['training_ordered_over_unordered']:.2f}x the videos/s "
                "of shards taken as they arrive (`--noordered_input`).",
            ]
    if "gpu_projection" in report:
        projection = report["gpu_projection"]
        lines += [
            "",
            f"**Projected** (not measured) for one H200 fed by {projection['host_cores']} such "
            "cores: each model's rate is the lower of its reader's per core x the cores and the "
            "GPU's rate of the model alone (`../shared/measurements`, batch 1,024):",
            "",
            "| precision | teacher videos/s | student-10 videos/s | student-10 / teacher |",
            "|---|---|---|---|",
        ]
        for precision in ("fp32", "fp16"):
            if precision in projection:
                row = projection[precision]
                lines.append(
                    f"| {precision} | {row['teacher_videos_per_s']:,.0f} | "
                    f"{row['student_10_videos_per_s']:,.0f} | "
                    f"{row['student_10_over_teacher']:.1f}x |"
                )
    if "training" in report:
        training = report["training"]
        lines += [
            "",
            f"Training steps at batch {training['batch_size']} (small preset): teacher "
            f"{training['teacher_step_s'] * 1000:,.0f} ms, joint distillation "
            f"{training['joint_step_s'] * 1000:,.0f} ms ({training['joint_over_teacher']:.2f}x), "
            f"fine-tuning {training['finetune_step_s'] * 1000:,.0f} ms "
            f"({training['finetune_over_teacher']:.2f}x); longest pause between epochs "
            f"{training['epoch_pause_s']:.2f} s.",
        ]
    if report.get("presets"):
        lines += [
            "",
            "| preset | model | frames | reader v/s | of plain | model v/s | end-to-end v/s | "
            "speed-up |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for preset, entries in report["presets"].items():
            for entry in entries:
                lines.append(
                    f"| {preset} | {entry['name']} | {entry['frames_per_video']:.1f} | "
                    f"{entry['pipeline_videos_per_second']:,.0f} | "
                    f"{entry['pipeline_of_plain_read']:.0%} | "
                    f"{entry['model_videos_per_second']:,.1f} | "
                    f"{entry['end_to_end_videos_per_second']:,.1f} | "
                    f"{entry['end_to_end_speedup']:.2f}x |"
                )
    lines += family_cost_lines(report)
    for name, row in report.get("memory", {}).items():
        copies = [
            key for key in row if key.startswith("peak_rss_mib_") and key != "peak_rss_mib_1x"
        ]
        if copies:
            many = copies[0]
            count = many.removeprefix("peak_rss_mib_")
            lines += [
                "",
                f"Peak RSS of inference.py, {name}: {row['peak_rss_mib_1x']:,.0f} MiB on "
                f"{row['videos_1x']} videos, {row[many]:,.0f} MiB on {row[f'videos_{count}']} "
                f"({row['growth']:.2f}x).",
            ]
    return "\n".join(lines)


def family_cost_rows(report):
    """[(preset, family, teacher entry, student-10 entry)] of every family measured with its
    cost, the hierarchical one first."""
    rows = []
    for preset, entries in report.get("presets", {}).items():
        by_name = {entry["name"]: entry for entry in entries}
        if "gflops_per_video" in by_name.get("teacher", {}) and "student-10" in by_name:
            rows.append((preset, "hierarchical", by_name["teacher"], by_name["student-10"]))
    for family, presets in report.get("families", {}).items():
        for preset, entries in presets.items():
            by_name = {entry["name"]: entry for entry in entries}
            rows.append((preset, family, by_name["teacher"], by_name["student-10"]))
    order = {preset: index for index, preset in enumerate(report.get("presets", {}))}
    return sorted(rows, key=lambda row: order.get(row[0], len(order)))


def family_cost_lines(report):
    """The cost of each family's teacher and student-10: parameters, operations per video and
    videos/s, each student's ratios to its teacher measured in the same run."""
    rows = family_cost_rows(report)
    if not rows:
        return []
    lines = [
        "",
        "Cost per family. GFLOPs per video are counted on the models as built (2 per "
        "multiply-add of their matrix products: dense layers, LSTM gates, VLAD assignments and "
        "residual sums; elementwise operations, softmaxes and normalizations not counted), on "
        "the frames each model reads, split into the part that grows with the frames and the "
        "fixed part per video (hidden layer, gating, output layer). Rates are on this machine's "
        "CPU; the GPU projection above covers the hierarchical family only (no GPU rates of the "
        "other families are measured yet).",
        "",
        "| preset | family | model | parameters | GFLOPs per video: frames + fixed | model v/s "
        "| end-to-end v/s | student / teacher: GFLOPs, end-to-end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for preset, family, teacher, student in rows:
        for entry in (teacher, student):
            ratios = ""
            if entry is student:
                rate = "end_to_end_videos_per_second"
                ratios = (
                    f"{entry['gflops_per_video'] / teacher['gflops_per_video']:.3f}, "
                    f"{entry[rate] / teacher[rate]:.2f}x"
                )
            lines.append(
                f"| {preset} | {family} | {entry['name']} | {entry['parameters']:,} | "
                f"{entry['gflops_frames']:.3f} + {entry['gflops_fixed']:.3f} | "
                f"{entry['model_videos_per_second']:,.1f} | "
                f"{entry['end_to_end_videos_per_second']:,.1f} | {ratios} |"
            )
    return lines


def adaptive_markdown(report):
    """docs/adaptive.md's block: the run, then the adaptive student's table (`adaptive_lines`);
    "" for a benchmark.json without `adaptive`."""
    lines = adaptive_lines(report)
    if not lines:
        return ""
    return "\n".join([f"`make bench`, {describe_run(report)}."] + lines)


def adaptive_lines(report):
    """The adaptive student's end-to-end rates (benchmark_adaptive.py) against the same student
    reading every frame, per preset and batch size; nothing for a benchmark.json without
    `adaptive`."""
    adaptive = report.get("adaptive")
    if not adaptive:
        return []
    shares = ", ".join(f"{share:.0%}" for share in next(iter(adaptive.values()))["exit_shares"])
    lines = [
        "",
        "The adaptive NeXtVLAD student-10 (3 exit stages, re-batched between stages; videos "
        f"stopping after each stage: {shares}, as the trained student at --exit_threshold=0.9 "
        "on the proxy) against the same student reading every frame, inference.py's loop:",
        "",
        "| preset | videos per batch | frames read, every frame / adaptive | end-to-end v/s, "
        "every frame | end-to-end v/s, adaptive | adaptive / every frame | from the frame "
        "cache: every frame / adaptive v/s (ratio) | GFLOPs a video: every frame / adaptive / "
        "adaptive with a free exit decision |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for preset, row in adaptive.items():
        operations = (
            f"{row['gflops_one_pass']:.4f} / {row['gflops_adaptive']:.4f} "
            f"({row['gflops_one_pass'] / row['gflops_adaptive']:.2f}x) / "
            f"{row['gflops_free_exit_decision']:.4f} "
            f"({row['gflops_one_pass'] / row['gflops_free_exit_decision']:.2f}x)"
        )
        for batch_size, rates in row["batch_sizes"].items():
            cache = "–"
            if "speedup_cache" in rates:
                cache = (
                    f"{rates['one_pass_videos_per_second_cache']:,.1f} / "
                    f"{rates['adaptive_videos_per_second_cache']:,.1f} "
                    f"({rates['speedup_cache']:.2f}x)"
                )
            lines.append(
                f"| {preset} | {batch_size} | {row['frames_read_one_pass']:.1f} / "
                f"{row['frames_read_adaptive']:.1f} | "
                f"{rates['one_pass_videos_per_second']:,.1f} | "
                f"{rates['adaptive_videos_per_second']:,.1f} | {rates['speedup']:.2f}x | "
                f"{cache} | {operations} |"
            )
    lines += [
        "",
        "The adaptive student runs its fixed part (hidden layer, gating, classifier) once per "
        "stage it reads, to decide whether to stop; the last column's bound runs it once per "
        "video, as a decision that cost nothing would. Each stage also costs per batch (its "
        "gathers, masks and smaller matrix products), so the adaptive student gains more at "
        "inference.py's default of 256 videos per batch than at 64.",
    ]
    return lines


def litert_markdown(report):
    """docs/serving.md's LiteRT block: the run, then the device models' table (`litert_lines`);
    "" for a benchmark.json without LiteRT rows."""
    lines = litert_lines(report)
    if not lines:
        return ""
    return "\n".join([f"`make bench`, {describe_run(report)}."] + lines)


def litert_lines(report):
    """The LiteRT table (benchmark_litert.py): per preset, model and quantization, the file's
    size, GAP beside the SavedModel's (trained models), the largest score difference from the
    TensorFlow model, one-thread latency and peak RSS; then student-10's speed-ups. Nothing for
    a benchmark.json without `litert`."""
    litert = report.get("litert")
    if not litert or not litert.get("rows"):
        return []
    lines = [
        "",
        f"LiteRT device models, one video per call on {litert.get('threads', 1)} thread "
        f"(XNNPACK), {litert.get('latency_calls', '?')} timed calls each, the variants of a "
        "preset called in turn; GAP on the held-out shards for the trained models (the "
        "SavedModel's in brackets); peak RSS of a process that loads only the LiteRT "
        f"interpreter and the model (without a model: {litert.get('baseline_rss_mib', 0):,.0f} "
        "MiB):",
        "",
        "| preset | model | quantization | frames | MB | GAP (SavedModel) | max score diff "
        "| latency ms, median / p95 | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in litert["rows"]:
        head = f"| {row['preset']} | {row['model']} | {row['quantization']} |"
        if "error" in row:
            lines.append(f"{head} does not convert: {row['error']} | | | | | |")
            continue
        gap = f"{row['gap']:.4f} ({row['saved_model_gap']:.4f})" if "gap" in row else "untrained"
        latency = row.get("latency_ms")
        timing = f"{latency['median']:,.2f} / {latency['p95']:,.2f}" if latency else ""
        lines.append(
            f"{head} {row['frames']} | {row['bytes'] / 1e6:,.1f} | {gap} | "
            f"{row['max_score_difference']:.1e} | {timing} | {row['peak_rss_mib']:,.0f} |"
        )
    for preset, ratios in litert.get("student_over_teacher_float32", {}).items():
        shown = ", ".join(f"{name} {ratio:.1f}x" for name, ratio in ratios.items())
        lines += [
            "",
            f"{preset}: student-10 per video against the teacher's float32 model: {shown}.",
        ]
    return lines
