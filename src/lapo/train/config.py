"""Configuration of `lapo train`: dataclasses whose defaults are the paper's values, YAML recipes, overrides.

Three dataclasses are parsed together by TRL's ``TrlParser``, as open-r1 does:

- :class:`LapoConfig`: the method (band, weights, sigma, target policy, tightening), data and prompt;
- :class:`LapoGRPOConfig`: TRL's ``GRPOConfig`` with the reference runs' engine settings as defaults
  (8 samples per prompt, lr 1e-6, KL coefficient 1e-4 with the plain k3 estimator, the loss averaged over the
  tokens of a micro-batch, no vLLM importance-sampling correction, 4096 generated tokens, 3 epochs); the
  paper recipes also set the reference's batch layout, schedule and optimizer (docs/PAPER_RECIPES.md);
- TRL's ``ModelConfig``: the model and, optionally, LoRA through peft.

A recipe is one YAML mapping of those keys; a ``discovery:`` and an ``internalization:`` section override
them for one stage (the paper generates 4096 tokens in stage 1 and 2048 in stage 2). Command-line
overrides come last: ``key=value`` or ``--key value`` for both stages, ``discovery.key=value`` for one.
Every key must be a field of one of the three dataclasses: a typo fails before anything is loaded.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

import yaml
from trl import GRPOConfig, ModelConfig, TrlParser

from lapo.core import length
from lapo.core.budget import DEFAULT_TEMPLATE
from lapo.core.stats import POLICIES
from lapo.data.prompts import DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE, PROMPT_KINDS, PromptFormat
from lapo.errors import LapoError, one_line
from lapo.train import distributed

STAGES = ("discovery", "internalization")
STAGE_CHOICES = STAGES + ("all",)

def _help(text: str, **extra: Any) -> dict:
    return {"help": text, **extra}


@dataclass
class LapoConfig:
    """LAPO's own settings; defaults are the paper's (arXiv 2507.15758; docs/METHOD.md)."""

    # ------------------------------------------------------------------ what to run
    stage: str = field(default="all", metadata=_help("Which part to run: discovery, internalization or all."))
    stage1_dir: str | None = field(
        default=None,
        metadata=_help(
            "Stage 2 alone: the stage-1 run directory holding discovery/final and targets.json "
            "(default: this run's output_dir)."
        ),
    )
    targets_path: str | None = field(
        default=None,
        metadata=_help("Stage 2: a target map JSON {problem_id: tokens} to use instead of the stage-1 run's."),
    )
    # ------------------------------------------------------------------ data
    dataset: str = field(
        default="deepscaler",
        metadata=_help(
            "Training problems: a .json/.jsonl/.parquet file, a benchmark name, a Hugging Face hub id, or "
            "'counting' (the built-in task). The paper trains on DeepScaleR-Preview."
        ),
    )
    dataset_split: str = field(default="train", metadata=_help("Split of a hub dataset or of the built-in task."))
    data_dir: str | None = field(default=None, metadata=_help("Folder of local <name>.jsonl copies of named datasets."))
    problem_field: str = field(default="problem", metadata=_help("Column holding the question."))
    answer_field: str = field(default="answer", metadata=_help("Column holding the gold answer."))
    id_field: str = field(default="id", metadata=_help("Column holding a stable problem id (else a text hash)."))
    level_field: str = field(default="level", metadata=_help("Column holding a difficulty level, if any."))
    max_problems: int | None = field(default=None, metadata=_help("Use at most this many problems (None: all)."))
    max_prompt_length: int | None = field(
        default=1024,
        metadata=_help("Leave out problems whose prompt has more tokens than this (the reference's 1024)."),
    )
    # ------------------------------------------------------------------ prompt
    prompt_kind: str = field(
        default="chat",
        metadata=_help(
            "'reference' (the paper code's plain text: its system text, 'User: {problem} Please think step by step "
            "and output the final answer within \\boxed{}. Assistant: <think>'; the paper recipes), 'chat' (the "
            "tokenizer's chat template with system_prompt and user_template) or 'plain' (plain_template)."
        ),
    )
    system_prompt: str | None = field(
        default=DEFAULT_SYSTEM_PROMPT, metadata=_help("System message of chat prompts (None: no system message).")
    )
    user_template: str = field(default=DEFAULT_USER_TEMPLATE, metadata=_help("User message; {problem} is replaced."))
    plain_template: str = field(default="{problem}", metadata=_help("Plain prompt text; {problem} is replaced."))
    think_tag: str = field(default="<think>", metadata=_help("Think-opening tag ending the prompt ('' for none)."))
    budget_template: str = field(
        default=DEFAULT_TEMPLATE, metadata=_help("Stage-2 budget sentence written after the think tag; {n} = tokens.")
    )
    # ------------------------------------------------------------------ answer checking
    answer_timeout: float = field(default=1.0, metadata=_help("Seconds one answer check may take; slower = wrong."))
    answer_fallback: str = field(
        default="none", metadata=_help("'none' (only \\boxed{} answers count) or 'last_number'.")
    )
    answer_workers: int = field(default=1, metadata=_help("math-verify worker processes per training process."))
    # ------------------------------------------------------------------ stage 1: Discovery
    band_low: float = field(default=length.BAND_LOW, metadata=_help("Lower percentile of the band of correct lengths."))
    band_high: float = field(default=length.BAND_HIGH, metadata=_help("Upper percentile of the band."))
    band_decay: float = field(
        default=length.DECAY_TOKENS, metadata=_help("Tokens over which the length reward falls to 0 outside the band.")
    )
    discovery_weight: float = field(
        default=length.DISCOVERY_WEIGHT, metadata=_help("Weight of the length reward in stage 1 (paper: 0.7).")
    )
    # ------------------------------------------------------------------ hand-off
    target_policy: str = field(
        default="last",
        metadata=_help(
            "How stage 1's lengths become a problem's target: 'last' (median of the last solved group, the "
            "reference), 'stage' (all of stage 1) or 'last_epoch'."
        ),
    )
    fallback_target: int | None = field(
        default=None,
        metadata=_help(
            "Target of problems stage 1 never solved; stage 2 replaces it by the group's median correct length "
            "(default: stage 1's max_completion_length, the reference's 4096)."
        ),
    )
    # ------------------------------------------------------------------ stage 2: Internalization
    internalization_weight: float = field(
        default=length.INTERNALIZATION_WEIGHT, metadata=_help("Weight of the length reward in stage 2 (paper: 0.8).")
    )
    sigma: float = field(default=length.SIGMA_TOKENS, metadata=_help("Width in tokens of stage 2's Gaussian (120)."))
    online_tightening: bool = field(
        default=True,
        metadata=_help("Lower a problem's target when a group's median correct length falls below it."),
    )

    def __post_init__(self) -> None:
        _check_choice("stage", self.stage, STAGE_CHOICES)
        _check_choice("target_policy", self.target_policy, POLICIES)
        _check_choice("prompt_kind", self.prompt_kind, PROMPT_KINDS)
        _check_choice("answer_fallback", self.answer_fallback, ("none", "last_number"))
        if not 0 <= self.band_low < self.band_high <= 100:
            raise LapoError(
                f"band_low={self.band_low} must be below band_high={self.band_high}, both within 0-100; "
                "the paper uses band_low=30, band_high=70."
            )
        for name in ("band_decay", "discovery_weight", "internalization_weight", "sigma", "answer_timeout"):
            _check_positive(name, getattr(self, name))
        if self.answer_workers < 0:
            raise LapoError(f"answer_workers={self.answer_workers} must be 0 (check answers in the training process) "
                            "or more.")
        for name in ("fallback_target", "max_problems", "max_prompt_length"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise LapoError(f"{name}={value} must be a positive integer; remove it to use the default.")
        self.prompt_format()  # template errors surface now, not at the first prompt

    def prompt_format(self) -> PromptFormat:
        return PromptFormat(
            kind=self.prompt_kind,
            system_prompt=self.system_prompt,
            user_template=self.user_template,
            plain_template=self.plain_template,
            think_tag=self.think_tag,
            budget_template=self.budget_template,
        )


def _check_choice(name: str, value: Any, choices: Iterable[str]) -> None:
    if value not in choices:
        raise LapoError(f"{name}={value!r} is not one of {', '.join(map(repr, choices))}; pick one of those.")


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        default = {f.name: f.default for f in fields(LapoConfig)}[name]
        raise LapoError(f"{name}={value!r} must be a positive number; the default (the paper's) is {default}.")


@dataclass
class LapoGRPOConfig(GRPOConfig):
    """TRL's GRPOConfig whose defaults are the reference runs' engine settings (docs/PAPER_RECIPES.md).

    Where TRL's default differs from what the reference computed, the default here is the reference's: the loss
    is averaged over the tokens of a micro-batch, the KL term is plain k3, and completions generated by vLLM are
    not re-weighted. The batch layout, schedule and optimizer are left to the recipes: the paper recipes set the
    reference's, the short CPU recipes their own.
    """

    num_generations: int | None = field(default=8, metadata=_help("Completions per prompt (paper: 8)."))
    learning_rate: float = field(default=1e-6, metadata=_help("AdamW learning rate (paper: 1e-6)."))
    beta: float = field(default=1e-4, metadata=_help("KL coefficient, k3 estimator (paper: 1e-4)."))
    max_completion_length: int | None = field(
        default=4096, metadata=_help("Generated tokens at most (paper: 4096 in stage 1, 2048 in stage 2).")
    )
    num_train_epochs: float = field(default=3.0, metadata=_help("Passes over the problems (paper: 3)."))
    loss_type: str = field(
        default="bnpo",
        metadata=_help(
            "Loss aggregation. 'bnpo' (the reference's): the mean over all completion tokens of a micro-batch, as "
            "OpenRLHF 0.8's token-level PolicyLoss; 'grpo' averages each completion's tokens first, which weighs a "
            "token of a short completion more than one of a long completion; 'dapo' normalises by the tokens of the "
            "whole accumulated batch."
        ),
    )
    use_bias_correction_kl: bool = field(
        default=False,
        metadata=_help(
            "Multiply the KL term by the policy's importance ratio (DeepSeek-V3.2). Off: the reference's KL term "
            "is plain k3, exp(ref - logp) - (ref - logp) - 1, averaged over the tokens like the loss."
        ),
    )
    vllm_importance_sampling_correction: bool = field(
        default=False,
        metadata=_help(
            "Re-weight the loss by the ratio of the trainer's to vLLM's log-probabilities (TRL's default: on, "
            "one ratio per sequence, masked above 3). Off: the paper used no such correction, and a sequence-level "
            "ratio over 4,096 tokens masks long completions far more often than short ones."
        ),
    )
    temperature: float = field(default=1.0, metadata=_help("Sampling temperature (paper: 1.0)."))
    top_p: float = field(default=1.0, metadata=_help("Nucleus sampling (paper: 1.0)."))
    logging_steps: float = field(default=1, metadata=_help("Log (one metrics line) every this many steps."))
    save_steps: float = field(default=50, metadata=_help("Checkpoint every this many steps."))

    def __post_init__(self) -> None:
        if not self.learning_rate >= 0:  # else torch refuses it only once the model has loaded
            raise LapoError(f"learning_rate={self.learning_rate} must be 0 or more; the paper uses 1e-6.")
        # TRL's own check says "at least 2"; say why and what to set, before TRL's longer derivations.
        if self.num_generations is None or self.num_generations < 2:
            raise LapoError(
                f"num_generations={self.num_generations} is too small: LAPO's band and GRPO's advantages "
                "compare completions of one problem, so set num_generations to 2 or more (paper: 8)."
            )
        super().__post_init__()


# ---------------------------------------------------------------------------------------------- parsing


@dataclass
class StageConfig:
    """Everything one stage runs with."""

    stage: str
    lapo: LapoConfig
    grpo: Any  # LapoGRPOConfig; output_dir is the stage's folder inside the run directory
    model: Any  # trl.ModelConfig
    resolved: dict  # the flat key -> value mapping the stage was parsed from (written to the run dir)


@dataclass
class RunConfig:
    """A parsed recipe: the run directory, what to run, and each stage's configuration."""

    run_dir: Path
    stages: dict[str, StageConfig]
    selected: tuple[str, ...]
    resume: str | bool = False
    recipe_path: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # the recipe's `env:`, set when the run starts
    method: Any = None  # lapo.methods.registry.MethodSpec: the method and its constants (run.json records it)

    def fallback_target(self) -> int:
        """The never-solved sentinel: the configured value or stage 1's max generation length (4096)."""
        first = self.stages["discovery"]
        return int(first.lapo.fallback_target or first.grpo.max_completion_length)


PACKAGED_RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def packaged_recipes() -> list[str]:
    """Names of the recipes shipped with the package (``recipes/<name>/config.yaml``)."""
    return sorted(p.parent.name for p in PACKAGED_RECIPES.glob("*/config.yaml"))


def resolve_recipe(path: str | Path) -> Path:
    """A recipe file, a recipe folder (its ``config.yaml``), or a shipped recipe by name: ``counting`` ->
    ``lapo/recipes/counting/config.yaml``, ``deepscaler-1.5b/lora-1gpu.yaml`` ->
    ``lapo/recipes/deepscaler-1.5b/lora-1gpu.yaml``."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / "config.yaml").is_file():  # a recipe folder
        return path / "config.yaml"
    for shipped in (PACKAGED_RECIPES / path / "config.yaml", PACKAGED_RECIPES / path):
        if shipped.is_file() and not path.is_absolute() and ".." not in path.parts:
            return shipped
    raise LapoError(
        f"recipe {path} does not exist; pass --config PATH/TO/RECIPE.yaml or a shipped recipe: "
        f"{', '.join(packaged_recipes())} (or NAME/FILE.yaml inside one)."
    )


def read_recipe(path: str | Path) -> tuple[dict[str, dict], dict[str, str]]:
    """The recipe's shared keys plus per-stage overrides ({stage: flat mapping} for both stages), and its ``env:``
    section (environment variables the run sets, as TrlParser's ``env:``). Reading writes nothing into
    ``os.environ``: :func:`lapo.train.run.prepare` applies ``env`` when the run starts."""
    path = resolve_recipe(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise LapoError(f"recipe {path} is not readable YAML ({one_line(error)}); fix the file or pass another "
                        "--config.") from None
    if not isinstance(data, dict):
        raise LapoError(f"recipe {path} must be a YAML mapping of keys to values.")
    env = data.pop("env", None) or {}
    if not isinstance(env, dict):
        raise LapoError(f"recipe {path}: `env` must be a mapping of variable names to values.")
    return split_sections(data, str(path)), {str(k): str(v) for k, v in env.items()}


def split_sections(data: dict, origin: str = "recipe") -> dict[str, dict]:
    shared = {k: v for k, v in data.items() if k not in STAGES}
    out = {}
    for stage in STAGES:
        section = data.get(stage) or {}
        if not isinstance(section, dict):
            raise LapoError(f"{origin}: section {stage!r} must be a mapping of keys to values.")
        out[stage] = {**copy.deepcopy(shared), **copy.deepcopy(section)}
    return out


def parse_overrides(argv: list[str]) -> dict[str, dict[str, Any]]:
    """``key=value``, ``--key value``, ``--key=value`` and ``stage.key=value`` -> {stage: {key: value}}.

    Values are converted by the field's type as argparse does; see :func:`_override_value` for null, lists
    and mappings.
    """
    per_stage: dict[str, dict[str, Any]] = {s: {} for s in STAGES}
    i = 0
    while i < len(argv):
        token = argv[i]
        if token.startswith("--"):
            key, has_value, value = token[2:].partition("=")
            if not has_value:
                if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                    value, i = argv[i + 1], i + 1
                else:
                    value = "true"  # a bare flag
        elif "=" in token:
            key, _, value = token.partition("=")
        else:
            raise LapoError(f"cannot read the argument {token!r}; write overrides as key=value or --key value.")
        stage, dot, name = key.partition(".")
        scoped = bool(dot) and stage in STAGES
        for s in [stage] if scoped else STAGES:
            per_stage[s][(name if scoped else key).replace("-", "_")] = _override_value(value)
        i += 1
    return per_stage


def _override_value(text: str) -> Any:
    """A command-line value: ``null`` unsets, ``[a, b]`` is a list, JSON ``{...}`` a mapping; the rest stays
    text for argparse to convert by the field's type (so ``{problem}`` and ``1e-6`` mean what they say)."""
    stripped = text.strip()
    if stripped in ("null", "~"):  # not "none": report_to=none is a value
        return None
    if stripped.startswith("["):
        return yaml.safe_load(stripped)
    if stripped.startswith("{"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    return text


class _RecipeParser(TrlParser):
    """TrlParser whose errors are one LapoError naming the key and its value (``sigma=abc``), not 200 lines of
    usage: recipe keys and overrides arrive here as the defaults argparse converts."""

    def error(self, message: str):
        argument = _ARGUMENT.fullmatch(message.strip())
        if argument is None:
            raise LapoError(f"{message.rstrip('.')}; see `lapo train --help` for the keys and their values.")
        key, problem = argument["key"], argument["problem"]
        bad = _BAD_VALUE.fullmatch(problem)
        if bad:
            kind = {"int": "a whole number", "float": "a number"}.get(bad["kind"], f"a valid {bad['kind']}")
            raise LapoError(f"{key}={bad['value']} is not {kind}; give {key} {kind} (see `lapo train --help`).")
        raise LapoError(f"{key}: {problem.rstrip('.')}; see `lapo train --help` for the keys and their values.")


# "argument --key/--key-alias: problem" -> "key: problem"; "invalid float value: 'abc'".
_ARGUMENT = re.compile(r"argument --(?P<key>[^:/ ]+)[^:]*: (?P<problem>.*)", re.DOTALL)
_BAD_VALUE = re.compile(r"invalid (?P<kind>[\w.]+) value: '?(?P<value>.*?)'?")


def _parser() -> Any:
    return _RecipeParser((LapoConfig, LapoGRPOConfig, ModelConfig))


def parse_stage(stage: str, flat: dict) -> StageConfig:
    """One stage's dataclasses from its flat key -> value mapping; unknown keys are errors."""
    parser = _parser()
    unknown = parser.set_defaults_with_config(**flat)
    if unknown:
        keys = ", ".join(k[2:] for k in unknown[::2])
        raise LapoError(
            f"unknown key(s) {keys} (stage {stage}); check the spelling against `lapo train --help` "
            "and docs/TRAINING.md (LapoConfig, GRPOConfig and ModelConfig fields)."
        )
    try:
        lapo_cfg, grpo_cfg, model_cfg = parser.parse_args_into_dataclasses(args=[])
    except LapoError:
        raise
    except ValueError as error:  # TRL's and transformers' own checks of the engine settings
        raise LapoError(f"stage {stage}: {one_line(error)}") from None
    return StageConfig(stage, lapo_cfg, grpo_cfg, model_cfg, dict(flat))


def load_run_config(
    recipe: str | Path | None, overrides: list[str] = (), *, stage: str | None = None, resume: str | bool = False
) -> RunConfig:
    """Parse a recipe plus overrides into both stages' configurations (nothing is loaded yet)."""
    sections, env = read_recipe(recipe) if recipe else ({s: {} for s in STAGES}, {})
    cli = parse_overrides(list(overrides))
    flats = {s: {**sections[s], **cli[s]} for s in STAGES}
    name, knobs = pop_method(flats)
    for stage_name, flat in flats.items():
        _check_deepspeed_installed(flat)  # before parsing: TrainingArguments imports DeepSpeed for `deepspeed:`
        distributed.check_precision(flat, stage_name)  # before parsing: it writes the recipe's precision into the environment
        distributed.check_layout(flat, stage_name)
    stages = {s: parse_stage(s, flat) for s, flat in flats.items()}
    chosen = method_stage(name, stage or stages["discovery"].lapo.stage)
    _check_choice("stage", chosen, STAGE_CHOICES)
    run_dir = Path(stages["discovery"].grpo.output_dir)
    if Path(stages["internalization"].grpo.output_dir) != run_dir:
        raise LapoError("output_dir is the run directory and must be the same for both stages; set it at the top level.")
    for s, cfg in stages.items():
        cfg.grpo.output_dir = str(run_dir / s)
        _check_engine(cfg)
        _check_extras_installed(cfg)
    selected = STAGES if chosen == "all" else (chosen,)
    spec = method_spec(name, knobs, stages)
    for cfg in stages.values():  # recipe.yaml re-runs the same method with the same constants
        if name != "lapo":
            cfg.resolved["method"] = name
        if name not in LAPO_KNOB_KEYS and spec.knobs:
            cfg.resolved["method_args"] = dict(spec.knobs)
    return RunConfig(run_dir, stages, selected, resume, str(recipe) if recipe else None, env, spec)


# ---------------------------------------------------------------------------------------------- methods

# LAPO's knobs (lapo.methods.registry) as the LapoConfig fields that hold them, per stage.
LAPO_KNOB_KEYS = {
    "lapo-d": {"weight": "discovery_weight", "low": "band_low", "high": "band_high", "decay": "band_decay"},
    "lapo-i": {"weight": "internalization_weight", "sigma": "sigma"},
}


def pop_method(flats: dict[str, dict]) -> tuple[str, dict]:
    """``method:`` and ``method_args:`` (or ``method_args.KNOB=value``) taken out of both stages' keys; a LAPO
    method's knobs become the LapoConfig keys that hold them (``lapo-d``'s ``weight`` -> ``discovery_weight``)."""
    from lapo.methods import registry

    names, knobs, per_method = set(), {}, {}
    for flat in flats.values():
        names.add(flat.pop("method", None) or "lapo")
        per_method.update(_mapping("methods", flat.pop("methods", None)))
        args = dict(_mapping("method_args", flat.pop("method_args", None)))
        args.update({k.split(".", 1)[1]: flat.pop(k) for k in [k for k in flat if k.startswith("method_args.")]})
        knobs.update(args)
    if len(names) > 1:
        raise LapoError(f"method is set to {' and '.join(sorted(names))} in different stages; set one at the top level.")
    name = names.pop()
    registry.get(name, training=True)  # an unknown method fails here, before anything else
    for other, section in per_method.items():  # the recipe's constants of every method, checked even if unused
        if other in LAPO_KNOB_KEYS or other == "lapo":
            raise LapoError(f"methods: {other}: LAPO's constants are the recipe keys {', '.join(LAPO_KNOB_KEYS.get(other, LAPO_KNOB_KEYS['lapo-d']).values())}; set those instead.")
        registry.resolve(other, _mapping(f"methods: {other}", section), training=True)
    knobs = {**(per_method.get(name) or {}), **knobs}
    keys = LAPO_KNOB_KEYS.get(name)
    if keys is not None and knobs:
        registry.resolve(name, knobs, training=True)  # a knob lapo-d/lapo-i lacks: the registry's error
        for flat in flats.values():
            flat.update({keys[k]: v for k, v in knobs.items()})
        knobs = {}
    return name, knobs


def _mapping(what: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LapoError(f"{what}={value!r} must be a mapping of names to values, e.g. {{alpha: 0.003}}.")
    return value


def method_stage(name: str, stage: str) -> str:
    """The stages a method trains: LAPO's as chosen (lapo-d = discovery, lapo-i = internalization); every other
    method is one stage, run in the first stage's slot (``discovery/``)."""
    wanted = {"lapo": stage, "lapo-d": "discovery", "lapo-i": "internalization"}.get(name, "discovery")
    if stage not in ("all", wanted):
        raise LapoError(f"--stage {stage} does not go with method {name}, which trains stage {wanted}; "
                        "leave --stage out.")
    return wanted


def method_spec(name: str, knobs: dict, stages: dict[str, StageConfig]):
    """The method with its constants resolved and checked against the engine (a cap above the max completion
    length); a LAPO method records the LapoConfig values it trains with."""
    from lapo.methods import registry

    if name in LAPO_KNOB_KEYS or name == "lapo":
        parts = [("lapo-d", "discovery"), ("lapo-i", "internalization")]
        recorded = {m: {k: getattr(stages[s].lapo, f) for k, f in LAPO_KNOB_KEYS[m].items()} for m, s in parts
                    if name in (m, "lapo")}
        return registry.MethodSpec(name, recorded if name == "lapo" else recorded[name])
    return registry.resolve(name, knobs, training=True, max_length=stages["discovery"].grpo.max_completion_length)


def _check_engine(cfg: StageConfig) -> None:
    """Engine settings LAPO depends on, checked before any model loads."""
    g = cfg.grpo
    if g.num_generations_eval not in (None, g.num_generations):
        raise LapoError(
            f"num_generations_eval={g.num_generations_eval} differs from num_generations={g.num_generations}; "
            "LAPO's rewards group completions by num_generations, so leave num_generations_eval unset."
        )
    per_generation = g.steps_per_generation * g.num_iterations
    if g.save_strategy == "steps" and per_generation > g.gradient_accumulation_steps:
        steps = per_generation // g.gradient_accumulation_steps
        if int(g.save_steps) % max(steps, 1):
            raise LapoError(
                f"save_steps={g.save_steps} must be a multiple of {steps} (steps_per_generation x num_iterations "
                "/ gradient_accumulation_steps) so each checkpoint ends a generation round; otherwise a resumed run "
                "would record some lengths twice."
            )
    if cfg.stage == "internalization" and cfg.lapo.online_tightening and g.dataloader_num_workers:
        raise LapoError(
            f"dataloader_num_workers={g.dataloader_num_workers} with online_tightening: worker processes keep "
            "their own copy of the target map, so tightened targets would never reach the prompts; set "
            "dataloader_num_workers=0."
        )


# ---------------------------------------------------------------------------------------------- optional packages


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def _available_reporters() -> list[str]:
    from transformers.integrations import get_available_reporting_integrations

    return get_available_reporting_integrations()


def _missing(setting: str, package: str, extra: str, otherwise: str) -> LapoError:
    return LapoError(
        f"{setting} needs {package}, which is not installed; install it with pip install \"lapo[{extra}]\" "
        f"(in a clone: pip install -e \".[{extra}]\"), or {otherwise}."
    )


def _check_deepspeed_installed(flat: dict) -> None:
    """DeepSpeed asked for by the recipe (``deepspeed:``) or by the accelerate config (its launcher's variable)."""
    if _installed("deepspeed"):
        return
    if flat.get("deepspeed") is not None:
        raise _missing(f"deepspeed={flat['deepspeed']}", "DeepSpeed", "deepspeed", "remove the deepspeed key")
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true"):
        raise _missing("the accelerate config (DeepSpeed)", "DeepSpeed", "deepspeed",
                       "launch with recipes/accelerate/ddp.yaml")


def _check_extras_installed(cfg: StageConfig) -> None:
    """The packages the stage's settings need, checked before any model loads (TRL finds out after loading it)."""
    g = cfg.grpo
    if g.use_vllm and not _installed("vllm"):
        raise _missing("use_vllm=true", "vLLM", "vllm", "set use_vllm=false to generate with transformers")
    missing = [r for r in g.report_to if r not in _available_reporters()]
    if "tensorboard" in missing:
        raise _missing("report_to=tensorboard", "tensorboard", "tensorboard", "set report_to=none")
    if missing:
        raise LapoError(
            f"report_to={','.join(g.report_to)} names {', '.join(missing)}, which is not installed; install it "
            "with pip, or set report_to=none."
        )
