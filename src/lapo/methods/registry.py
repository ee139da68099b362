"""The registry of length-control methods: name -> what training, scoring and evaluation need to know.

A :class:`Method` says which reward function scores a group (:mod:`lapo.methods.formulas`), its knobs and
their defaults (the papers'), whether it needs a budget N per problem (and the budget sentence its prompts
carry), a cap (the max completion length: thinkprune, dapo-overlong), and whether its reward is a group
statistic. :func:`resolve` checks a method name and its knob overrides and is what every command calls
first, before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from lapo.core import length
from lapo.core.budget import DEFAULT_TEMPLATE, check_template
from lapo.errors import LapoError
from lapo.methods import formulas as f

L1_EXACT_TEMPLATE = "Think for {n} tokens."  # L1's prompt suffix (arXiv 2503.04697)
L1_MAX_TEMPLATE = "Think for maximum {n} tokens."
L1_BUDGET_RANGE = (100, 4000)  # L1 draws N ~ U(100, 4000) per problem
THINKPRUNE_CAPS = (4096, 3072, 2048)  # ThinkPrune's rounds (arXiv 2504.01296): 4k -> 3k -> 2k


@dataclass(frozen=True)
class Method:
    """One length-control method: its reward, knobs (name -> paper default) and what it needs."""

    name: str
    reward: Callable[..., length.GroupScore]
    knobs: Mapping[str, Any]
    source: str  # the paper, for docs and reports
    group_aware: bool = False  # the reward is a statistic of the whole group (gathered across processes)
    budget_template: str | None = None  # the budget sentence; a method with one needs a budget per problem
    needs_cap: bool = False  # the reward reads the max completion length (thinkprune, dapo-overlong)
    stages: tuple[str, ...] = ("discovery",)  # the run's stages it trains (single-stage methods: the first slot)

    @property
    def needs_budget(self) -> bool:
        return self.budget_template is not None

    @property
    def is_lapo(self) -> bool:
        return self.name in LAPO_METHODS


_BUDGET_KNOBS = {"budget_low": L1_BUDGET_RANGE[0], "budget_high": L1_BUDGET_RANGE[1]}

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("plain", f.plain, {}, "GRPO with the correctness reward alone (DeepSeekMath, arXiv 2402.03300)"),
        Method("l1-exact", f.l1_exact, {"alpha": f.L1_ALPHA, **_BUDGET_KNOBS, "sentence": L1_EXACT_TEMPLATE},
               "L1 / LCPO-Exact (Aggarwal & Welleck, arXiv 2503.04697)", budget_template=L1_EXACT_TEMPLATE),
        Method("l1-max", f.l1_max, {"alpha": f.L1_ALPHA, "delta": f.L1_MAX_DELTA, **_BUDGET_KNOBS,
                                    "sentence": L1_MAX_TEMPLATE},
               "L1 / LCPO-Max (Aggarwal & Welleck, arXiv 2503.04697)", budget_template=L1_MAX_TEMPLATE),
        Method("thinkprune", f.thinkprune, {"caps": list(THINKPRUNE_CAPS)},
               "ThinkPrune (Hou et al., arXiv 2504.01296)", needs_cap=True),
        Method("kimi", f.kimi, {"weight": f.KIMI_WEIGHT}, "Kimi k1.5 length reward (arXiv 2501.12599)",
               group_aware=True),
        Method("shorterbetter", f.shorterbetter, {"alpha": f.SHORTERBETTER_ACC, "beta": f.SHORTERBETTER_BETA},
               "ShorterBetter (Yi et al., arXiv 2504.21370)", group_aware=True),
        Method("arora-zanette", f.arora_zanette, {"alpha": f.ARORA_ALPHA, "eps": f.ARORA_EPS},
               "Training language models to reason efficiently (Arora & Zanette, arXiv 2502.04463)",
               group_aware=True),
        Method("dapo-overlong", f.dapo_overlong, {"cache": None}, "DAPO soft overlong punishment (arXiv 2503.14476)",
               needs_cap=True),
        Method("lapo-d", f.lapo_d, {"weight": length.DISCOVERY_WEIGHT, "low": length.BAND_LOW,
                                    "high": length.BAND_HIGH, "decay": length.DECAY_TOKENS},
               "LAPO stage 1, Discovery (arXiv 2507.15758)", group_aware=True),
        Method("lapo-i", f.lapo_i, {"weight": length.INTERNALIZATION_WEIGHT, "sigma": length.SIGMA_TOKENS},
               "LAPO stage 2, Internalization (arXiv 2507.15758)", group_aware=True,
               budget_template=DEFAULT_TEMPLATE, stages=("internalization",)),
    )
}
LAPO_METHODS = ("lapo-d", "lapo-i", "lapo")
# `lapo` is both stages: LAPO-D's knobs for stage 1 and LAPO-I's for stage 2 (training only).
STAGE_NAMES = {"discovery": "lapo-d", "internalization": "lapo-i"}
# Knobs that are budgets' sampling or the cap schedule, not arguments of the reward function.
NOT_REWARD_ARGS = ("budget_low", "budget_high", "caps", "sentence")


def names(training: bool = False) -> list[str]:
    """Method names (``training``: with ``lapo``, both stages)."""
    return [*METHODS, "lapo"] if training else list(METHODS)


def get(name: str, training: bool = False) -> Method:
    """The method called ``name``; an unknown name is one LapoError listing the known ones."""
    if name == "lapo" and training:
        return Method("lapo", f.lapo_d, {}, "LAPO, both stages (arXiv 2507.15758)", group_aware=True,
                      budget_template=DEFAULT_TEMPLATE, stages=("discovery", "internalization"))
    if name not in METHODS:
        raise LapoError(f"method {name!r} is unknown; choose one of {', '.join(names(training))}.")
    return METHODS[name]


@dataclass(frozen=True)
class MethodSpec:
    """A method with its knobs resolved (defaults, then the user's overrides): what a run records."""

    name: str
    knobs: dict = field(default_factory=dict)

    @property
    def method(self) -> Method:
        return get(self.name, training=True)

    @property
    def budget_template(self) -> str | None:
        """The budget sentence its prompts carry: the ``sentence`` knob (L1), else the method's."""
        return self.knobs.get("sentence") or self.method.budget_template

    def reward_args(self) -> dict:
        return {k: v for k, v in self.knobs.items() if k not in NOT_REWARD_ARGS}

    def as_dict(self) -> dict:
        m = self.method
        return {"name": self.name, "knobs": dict(self.knobs), "source": m.source,
                "budget_sentence": self.budget_template, "group_aware": m.group_aware}


def resolve(name: str, overrides: Mapping[str, Any] | None = None, *, training: bool = False,
            max_length: int | None = None) -> MethodSpec:
    """The method and its knobs (paper defaults, then ``overrides``), checked: an unknown method, a knob the
    method does not have, a bad budget range or a cap above ``max_length`` is one LapoError."""
    method = get(name, training)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(method.knobs))
    if unknown:
        have = ", ".join(method.knobs) or "none"
        raise LapoError(f"method {name} has no knob {', '.join(unknown)}; its knobs are: {have}.")
    knobs = {**method.knobs, **{k: _number(name, k, v) for k, v in overrides.items()}}
    _check_knobs(name, knobs, max_length)
    return MethodSpec(name, knobs)


def _number(method: str, knob: str, value: Any) -> Any:
    """A knob's value from YAML or the command line: numbers (or a list of numbers for ``caps``), or null."""
    if value is None:
        return None
    if knob == "sentence":  # L1's budget sentence, e.g. to give L1 LAPO's wording: the one knob that is text
        check_template(str(value))
        return str(value)
    if knob == "caps":
        items = value if isinstance(value, (list, tuple)) else str(value).strip("[]").split(",")
        return [_number(method, "cap", v) for v in items]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LapoError(f"method {method}: {knob}={value!r} is not a number; give a number.") from None
    return int(number) if number.is_integer() and knob in ("budget_low", "budget_high", "cap", "cache") else number


def _check_knobs(name: str, knobs: dict, max_length: int | None) -> None:
    for knob in ("alpha", "beta", "sigma", "decay", "weight"):
        if knob in knobs and not knobs[knob] > 0:
            raise LapoError(f"method {name}: {knob}={knobs[knob]} must be positive; the paper's is "
                            f"{get(name, True).knobs[knob]}.")
    if "budget_low" in knobs and (knobs["budget_low"] is None or knobs["budget_high"] is None):
        raise LapoError(f"method {name} needs budgets (the N of its prompts): set budget_low and budget_high, "
                        f"the range N is drawn from (L1: 100 and 4000).")
    if "budget_low" in knobs and not 0 < knobs["budget_low"] <= knobs["budget_high"]:
        raise LapoError(f"method {name}: budget_low={knobs['budget_low']} must be positive and at most "
                        f"budget_high={knobs['budget_high']}; budgets are drawn from U(budget_low, budget_high).")
    caps = knobs.get("caps")
    if caps is not None:
        if not caps or any(c is None or c <= 0 for c in caps):
            raise LapoError(f"method {name}: caps={caps} must be one or more positive token counts, one per round.")
        if max_length is not None and max(caps) > max_length:
            raise LapoError(f"method {name}: cap {max(caps)} is above max_completion_length={max_length}; lower the "
                            f"caps or raise max_completion_length (a cap cannot exceed what is generated).")
    cache = knobs.get("cache")
    if cache is not None and (cache <= 0 or (max_length is not None and cache > max_length)):
        raise LapoError(f"method {name}: cache={cache} must be positive and at most max_completion_length="
                        f"{max_length}; DAPO uses max_completion_length / 5.")


def score_group(spec: MethodSpec, correct: Sequence[bool], lengths: Sequence[int], *,
                budgets: Sequence[float | None] | None = None, cap: float | None = None) -> length.GroupScore:
    """One whole group scored by ``spec``'s method (budgets: each completion's N; cap: the max length)."""
    method, args = spec.method, spec.reward_args()
    if method.needs_budget:  # l1-exact, l1-max, lapo-i (whose None budget means the group median)
        return method.reward(correct, lengths, budgets, **args)
    if method.needs_cap:
        if cap is None:
            raise LapoError(f"method {method.name} needs the max completion length (the cap); pass --max-tokens N.")
        return method.reward(correct, lengths, cap, **args)
    return method.reward(correct, lengths, **args)


def cap_at(caps: Sequence[int], step: int, total_steps: int) -> int:
    """ThinkPrune's cap at optimizer ``step``: the rounds split ``total_steps`` evenly, in order."""
    rounds = len(caps)
    per_round = max(1, -(-int(total_steps) // rounds))  # ceil: the last round is never longer than the others
    return int(caps[min(rounds - 1, max(0, int(step)) // per_round)])
