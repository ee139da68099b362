"""GRPO step time of the SmolLM2-135M recipe: where the time goes, and settings that cut it.

    python benchmarks/smollm2_step.py --out benchmarks/results/smollm2_step.json      # SmolLM2, minutes
    python benchmarks/smollm2_step.py --tiny                                          # seconds: the test's mode

Each *variant* trains stage 1 (Discovery) of the shipped ``smollm2-135m`` recipe through ``lapo.train.run``,
exactly as ``lapo train`` runs it (LAPO-D reward, length statistics, TRL's GRPOTrainer): 2 prompts x 8
completions of up to 128 tokens per step. The first ``--warmup`` steps of each run are not timed; the next
``--steps`` are. Variants run one after the other inside each of ``--rounds`` rounds (the order alternates
between rounds), so each pair is measured under the same machine load; the ratio is taken per round and the
median of those ratios is quoted, beside each variant's median step time.

Variants: ``stock`` (= ``fp32+trl_logps+accum1+nogc``: TRL as it comes on the recipe before issue 12, float32),
``before`` (= ``bf16+trl_logps+accum1+nogc``: the recipe before issue 12), ``after`` / ``tuned`` (= ``fp32``: the
recipe and lapo now: two halves of 8, activation checkpointing), or settings joined by ``+``; none
changes the algorithm (same prompts, samples per step, lengths, rewards, KL coefficient beta > 0 with its
reference-model forward, optimizer). Results and analysis: benchmarks/smollm2_step.md.

- ``fp32``: ``bf16: false``, whatever the recipe says;
- ``bf16``: ``bf16: true`` (the recipe's setting now): accelerate autocasts the policy and reference forwards (and
  backward) to bfloat16 (AMX / avx512_bf16 on this CPU); weights, gradients and AdamW stay float32, as in the
  paper's bf16 runs;
- ``gen_autocast``: generation inside one bfloat16 autocast region (a wrapper here; the proposed lapo.train change);
- ``threads1``: one intra-op thread instead of ``--threads``;
- ``trl_logps``: TRL's own log-probabilities on CPU (its fused LM head over every position) instead of lapo's
  (completion positions only, :func:`lapo.train.trainer.compact_lm_head_on_cpu`; equal values, tested);
- ``accum2``: each step's 16 completions trained in two halves of 8 (gradient accumulation: the same gradient);
- ``matmul_high`` / ``matmul_medium``: ``torch.set_float32_matmul_precision``; ``eager``: eager attention;
  ``static_cache``: ``cache_implementation=static``; ``paged``: transformers' continuous batching.

Each step's time is split by wrapping the trainer's parts (class-level wrappers, nothing in lapo or TRL is edited):
``generate`` (model.generate), ``ref_forward`` (reference-model log-probs, no grad), ``policy_forward`` (the loss
forward, with grad), ``backward``, ``reward`` (LAPO's reward call: answer checks, band, statistics),
``optimizer`` (optimizer.step), ``other`` (the rest: data, padding, advantages, clipping, logging).
``--torch-profile N`` also prints the top N operators of one timed step of the first variant (torch.profiler).

Each timed step also records the process's peak resident memory so far (``peak_rss_gib``; a SmolLM2 variant runs
in a process of its own, so its figure is that variant's peak). Prints a markdown table and writes JSON to ``--out``. ``--tiny``: a tiny random Qwen2 with a character-level
tokenizer built on the spot, plain prompts, 16 tokens, 4 x 2 completions, one timed step per variant.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

PARTS = ("generate", "ref_forward", "policy_forward", "backward", "reward", "optimizer", "other")
# Settings a variant combines ("threads1+matmul_medium"); none changes the algorithm.
KNOBS = {
    "fp32": {"overrides": ["bf16=false"]},
    "threads1": {"threads": 1},
    "matmul_high": {"precision": "high"},
    "matmul_medium": {"precision": "medium"},
    "bf16": {"overrides": ["bf16=true"]},
    "eager": {"overrides": ["attn_implementation=eager"]},
    "static_cache": {"overrides": ["cache_implementation=static"]},
    "paged": {"overrides": ["use_transformers_continuous_batching=true"]},
    # With bf16 on CPU, accelerate autocasts each forward call on its own, so generation casts every weight to
    # bfloat16 again for every decoded token; one autocast region around the whole generation casts each weight
    # once (PyTorch keeps its cast cache until the outermost region ends). Measured: no gain per step, so
    # lapo does not do it (benchmarks/smollm2_step.md).
    "gen_autocast": {"gen_autocast": True},
    # TRL's own log-probabilities on CPU too (LapoGRPOTrainer.compact_cpu_logps = False): the fused LM head then
    # projects every position of the batch, prompt and padding included (lapo projects the completion tokens only).
    "trl_logps": {"trl_logps": True},
    # The step's 16 completions in two backward passes of 8 (the same gradient: loss_type grpo averages per
    # sequence, and the Trainer divides each half by 2); activations of 8 sequences held at a time, not 16.
    "accum2": {"overrides": ["per_device_train_batch_size=8", "gradient_accumulation_steps=2"]},
    # Four quarters of 4 completions: the same gradient again, a quarter of the activations at a time.
    "accum4": {"overrides": ["per_device_train_batch_size=4", "gradient_accumulation_steps=4"]},
    # Activation checkpointing: each layer's activations are recomputed in backward instead of being kept.
    "gc": {"overrides": ["gradient_checkpointing=true"]},
    # The recipe before issue 12 on these two: all 16 completions in one backward pass, every activation kept.
    "accum1": {"overrides": ["per_device_train_batch_size=16", "gradient_accumulation_steps=1"]},
    "nogc": {"overrides": ["gradient_checkpointing=false"]},
}
# stock: TRL as it comes on the recipe before issue 12 in float32 (TRL's log-probs, one backward pass of 16, no
# activation checkpointing); before: that recipe as it was (bf16); after / tuned: the recipe now (float32: bf16
# autocast is slower on a CPU without bf16 units; lapo's log-probs; two halves of 8; activation checkpointing).
ALIASES = {"stock": "fp32+trl_logps+accum1+nogc", "before": "bf16+trl_logps+accum1+nogc", "after": "fp32",
           "tuned": "fp32"}


def variant_settings(name: str) -> dict:
    """{threads (None: --threads), float32 matmul precision, recipe overrides} of a variant name."""
    spec = "+".join(ALIASES.get(part, part) for part in name.split("+"))  # "after+threads1" = "bf16+threads1"
    settings: dict = {"threads": None, "precision": "highest", "overrides": [], "gen_autocast": False,
                      "trl_logps": False}
    for knob in filter(None, spec.split("+")):
        if knob not in KNOBS:
            raise ValueError(f"unknown setting {knob!r} in variant {name!r}; use stock, tuned or settings of "
                             f"{', '.join(KNOBS)} joined by +")
        for key, value in KNOBS[knob].items():
            settings[key] = settings[key] + value if key == "overrides" else value
    return settings


# ----------------------------------------------------------------------------------------------- timing


class Clock:
    """Seconds per part of the current step, filled by the wrappers installed by :func:`instrument`."""

    def __init__(self):
        self.parts: dict[str, float] = defaultdict(float)
        self.active = False

    @contextlib.contextmanager
    def part(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.active:
                self.parts[name] += time.perf_counter() - start


def _wrap(owner, attr: str, clock: Clock, name_of):
    original = getattr(owner, attr)

    @functools.wraps(original)
    def timed(*args, **kwargs):
        with clock.part(name_of(*args, **kwargs)):
            return original(*args, **kwargs)

    setattr(owner, attr, timed)
    return lambda: setattr(owner, attr, original)


@contextlib.contextmanager
def instrument(clock: Clock):
    """Time generate, the reference and policy forwards, backward and the reward call (class-level wrappers)."""
    import torch
    from accelerate import Accelerator
    from transformers.generation.utils import GenerationMixin
    from trl import GRPOTrainer

    def logps_name(trainer, model, *args, **kwargs):
        if model is getattr(trainer, "ref_model", None):
            return "ref_forward"
        return "policy_forward" if torch.is_grad_enabled() else "old_policy_forward"

    undo = [
        _wrap(GenerationMixin, "generate", clock, lambda *a, **k: "generate"),
        _wrap(GRPOTrainer, "_get_per_token_logps_and_entropies", clock, logps_name),
        _wrap(Accelerator, "backward", clock, lambda *a, **k: "backward"),
        _wrap(GRPOTrainer, "_calculate_rewards", clock, lambda *a, **k: "reward"),
    ]
    try:
        yield
    finally:
        for restore in undo:
            restore()


@contextlib.contextmanager
def generation_autocast(enabled: bool):
    """Run GRPOTrainer's generation inside one bfloat16 autocast region when the run trains in bf16 on CPU."""
    if not enabled:
        yield
        return
    import torch
    from trl import GRPOTrainer

    original = GRPOTrainer._generate_single_turn

    @functools.wraps(original)
    def generate_single_turn(self, *args, **kwargs):
        if self.args.bf16 and self.accelerator.device.type == "cpu":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return original(self, *args, **kwargs)
        return original(self, *args, **kwargs)

    GRPOTrainer._generate_single_turn = generate_single_turn
    try:
        yield
    finally:
        GRPOTrainer._generate_single_turn = original


def peak_rss_gib() -> float | None:
    """This process's peak resident memory so far (each SmolLM2 variant runs in a fresh process)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux kilobytes
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30, 3)


def step_callback(clock: Clock, records: list[dict], warmup: int, profile_top: int):
    import torch
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """One record per optimizer step: wall time and its parts; the optimizer step timed by its own hooks."""

        def __init__(self):
            self.start = self.opt_start = 0.0
            self.profiler = None

        def on_step_begin(self, args, state, control, **kwargs):
            clock.parts.clear()
            clock.active = True
            if profile_top and state.global_step == warmup and not records:
                import torch.profiler

                self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                self.profiler.__enter__()
            self.start = time.perf_counter()

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self.opt_start = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kwargs):
            clock.parts["optimizer"] += time.perf_counter() - self.opt_start

        def on_step_end(self, args, state, control, **kwargs):
            total = time.perf_counter() - self.start
            clock.active = False
            if self.profiler is not None:
                self.profiler.__exit__(None, None, None)
                print(self.profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=profile_top))
                self.profiler = None
            if state.global_step <= warmup:
                return
            parts = {k: round(v, 3) for k, v in clock.parts.items()}
            parts["other"] = round(total - sum(parts.values()), 3)
            records.append({"step": state.global_step, "seconds": round(total, 3), "parts": parts,
                            "peak_rss_gib": peak_rss_gib(),
                            "threads": torch.get_num_threads(), "precision": torch.get_float32_matmul_precision(),
                            "tokens": None, "max_tokens": None})

        def on_log(self, args, state, control, logs=None, **kwargs):
            # TRL logs a step's completion lengths (mean; the longest sets how many tokens generate decoded) after
            # on_step_end, so the history read there holds the previous step's: fill them in here.
            if records and records[-1].get("tokens") is None and logs and "completions/mean_length" in logs:
                records[-1].update(tokens=logs["completions/mean_length"], max_tokens=logs.get("completions/max_length"))

    return StepTimer()


# ----------------------------------------------------------------------------------------------- runs


def build_tiny_model(folder: Path) -> str:
    """A tiny random Qwen2 with lapo's character-level tokenizer, saved as a Hugging Face checkpoint."""
    from lapo.models.tiny import build_char_tokenizer
    from lapo.models.tiny import build_tiny_model as tiny

    tokenizer = build_char_tokenizer()
    tiny(tokenizer, hidden_size=32, num_layers=2, seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def overrides(args, run_dir: Path, model: str | None, extra: list[str]) -> list[str]:
    values = {
        "output_dir": run_dir, "max_steps": args.warmup + args.steps, "save_steps": 100_000, "logging_steps": 1,
        "report_to": "none", "seed": 0, "max_completion_length": args.max_completion_length,
    }
    if model:
        values["model_name_or_path"] = model
    if args.tiny:  # the char-level tokenizer has no chat template
        values.update({"prompt_kind": "plain", "num_generations": 4, "per_device_train_batch_size": 8})
    return [f"{k}={v}" for k, v in values.items()] + extra


def run_variant(name: str, args, model: str | None, profile_top: int) -> list[dict]:
    """Train warmup + steps steps of stage 1 with the variant's settings; the timed steps' records."""
    import torch

    from lapo.train import run as train
    from lapo.train.config import load_run_config
    from lapo.train.trainer import LapoGRPOTrainer

    settings = variant_settings(name)
    threads, precision, extra = settings["threads"], settings["precision"], settings["overrides"]
    torch.set_num_threads(threads or args.threads)
    torch.set_float32_matmul_precision(precision)
    LapoGRPOTrainer.compact_cpu_logps = not settings["trl_logps"]
    clock, records = Clock(), []
    try:
        with tempfile.TemporaryDirectory(prefix="lapo-step-") as tmp, instrument(clock), \
                generation_autocast(settings["gen_autocast"]):
            cfg = load_run_config("smollm2-135m", overrides(args, Path(tmp) / "run", model, extra), stage="discovery")
            train.run(cfg, callbacks=[step_callback(clock, records, args.warmup, profile_top)])
    finally:
        torch.set_num_threads(args.threads)
        torch.set_float32_matmul_precision("highest")
        LapoGRPOTrainer.compact_cpu_logps = True
    return records


def summarize(results: dict[str, list[list[dict]]], baseline: str) -> dict:
    """Per variant: median step time over every timed step, median parts; per round ratios to the baseline."""
    out = {}
    for name, rounds in results.items():
        steps = [r for rnd in rounds for r in rnd]
        parts = {p: statistics.median(r["parts"].get(p, 0.0) for r in steps) for p in PARTS}
        medians = [statistics.median(r["seconds"] for r in rnd) for rnd in rounds]
        base = [statistics.median(r["seconds"] for r in rnd) for rnd in results[baseline]]
        ratios = [b / m for b, m in zip(base, medians)]
        out[name] = {
            "median_s": statistics.median(r["seconds"] for r in steps), "steps": len(steps),
            "round_medians_s": medians, "speedup_per_round": ratios, "speedup": statistics.median(ratios),
            "parts_median_s": parts,
            "peak_rss_gib": max((r.get("peak_rss_gib") or 0.0) for r in steps) or None,
            "mean_tokens": statistics.mean(r["tokens"] for r in steps if r.get("tokens") is not None)
            if any(r.get("tokens") is not None for r in steps) else None,
        }
    return out


def markdown(summary: dict, baseline: str) -> str:
    head = ("| variant | median s/step | speed-up vs " + baseline + " (median of rounds) | peak RSS GiB | "
            "mean tokens | " + " | ".join(PARTS) + " |")
    lines = [head, "|" + "---|" * (5 + len(PARTS))]
    for name, s in summary.items():
        parts = " | ".join(f"{s['parts_median_s'][p]:.2f}" for p in PARTS)
        tokens = f"{s['mean_tokens']:.1f}" if s.get("mean_tokens") is not None else "-"
        rss = f"{s['peak_rss_gib']:.2f}" if s.get("peak_rss_gib") else "-"
        lines.append(f"| {name} | {s['median_s']:.2f} ({s['steps']} steps) | {s['speedup']:.2f}x | {rss} | {tokens} | "
                     f"{parts} |")
    return "\n".join(lines)


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_in_child(name: str, args, model: str | None, profile_top: int) -> list[dict]:
    """One run of ``name`` in a fresh Python process (each variant starts from the same clean state; a crash
    shows as an error naming the variant); returns its timed steps' records."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix="lapo-step-records-") as tmp:
        path = Path(tmp) / "records.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--child-out", str(path),
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
                   "--max-completion-length", str(args.max_completion_length), "--torch-profile", str(profile_top)]
        command += (["--model", model] if model else []) + (["--tiny"] if args.tiny else [])
        done = subprocess.run(command)
        if done.returncode != 0 or not path.exists():
            raise SystemExit(f"the {name} run failed (exit status {done.returncode}); see its output above.")
        return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random model built on the spot; seconds")
    parser.add_argument("--variants", default="stock,tuned",
                        help=f"comma-separated: stock, tuned, or settings joined by + ({', '.join(KNOBS)})")
    parser.add_argument("--steps", type=int, help="timed steps per variant and round (default 3; tiny 1)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps at the start of each run (default 1)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of all variants (order alternates)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of variants that do not set them")
    parser.add_argument("--max-completion-length", type=int, help="default 128 (the recipe's); tiny 16")
    parser.add_argument("--model", help="model path or alias instead of the recipe's smollm2-135m-instruct")
    parser.add_argument("--torch-profile", type=int, default=0, metavar="N",
                        help="print the top N operators of one timed step of the first variant")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one run of one variant, in its own process
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.steps = args.steps or (1 if args.tiny else 3)
    args.max_completion_length = args.max_completion_length or (16 if args.tiny else 128)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        records = run_variant(args.child, args, args.model, args.torch_profile)
        args.child_out.write_text(json.dumps(records))
        return 0
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    try:
        variants = {name: variant_settings(name) for name in names}
    except ValueError as error:
        parser.error(str(error))
    import torch

    torch.set_num_threads(args.threads)
    results: dict[str, list[list[dict]]] = {name: [] for name in names}
    load_before = load_average()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lapo-step-model-") as tmp:
        model = build_tiny_model(Path(tmp) / "tiny") if args.tiny else args.model
        for rnd in range(args.rounds):
            order = names if rnd % 2 == 0 else names[::-1]
            for name in order:
                top = args.torch_profile if (rnd == 0 and name == names[0]) else 0
                # SmolLM2 runs each in a fresh process; the tiny model's runs share this one (seconds, not minutes).
                run = run_variant if args.tiny else run_in_child
                records = run(name, args, model, top)
                results[name].append(records)
                print(f"round {rnd + 1} {name}: " + "; ".join(
                    f"{r['seconds']:.2f}s (" + ", ".join(f"{k} {v:.2f}" for k, v in r["parts"].items()) + ")"
                    for r in records), flush=True)
    summary = summarize(results, names[0])
    table = markdown(summary, names[0])
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        machine = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                   "torch": torch.__version__, "load_average_before": load_before, "load_average_after": load_average()}
        payload = {"command": sys.argv, "machine": machine, "seconds": round(time.perf_counter() - started, 1),
                   "variants": variants, "summary": summary, "records": results}
        args.out.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
