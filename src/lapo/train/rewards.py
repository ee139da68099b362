"""TRL reward callables for LAPO's two stages: gather the whole group, score it with `lapo.core.length`, record.

TRL 1.16 calls a reward function on each process's *local* slice of the generation batch and only then
gathers the rewards; a group of ``num_generations`` completions of one problem can be split across
processes (docs/METHOD.md, section 9; trl#3896). LAPO's rewards are group statistics (the [P30, P70] band of
stage 1, the median fallback of stage 2), so each call here:

1. checks the local completions' answers (in parallel across processes),
2. gathers (problem id, correct, length, budget) from every process with ``accelerate.utils.gather_object``,
3. cuts the global list into groups by ``global_index // num_generations`` -- exactly how TRL's
   ``_generate_and_score_completions`` groups rewards for the advantages (``rewards.view(-1, G)``, with
   process ``p`` holding global rows ``p * local_size ... (p + 1) * local_size``),
4. scores each whole group with :func:`lapo.core.length.discovery_rewards` / :func:`internalization_rewards`,
5. records lengths into the ``LengthStats`` passed in (every process holds the same, complete records;
   only the main process saves them, from a callback, never from here), and
6. returns this process's slice.

Lengths are ``len(completion_ids)``: completion tokens only, as generated (TRL cuts after the first EOS and
keeps it), never the prompt or the budget sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from lapo.core import length
from lapo.core.checker import AnswerChecker
from lapo.core.stats import LengthStats, tighten_target
from lapo.methods.registry import cap_at, score_group


@dataclass(frozen=True)
class Row:
    """What the group statistics need from one completion."""

    problem_id: str
    correct: bool
    length: int
    budget: int | None = None
    fallback: bool = False


def _text(completion: Any) -> str:
    """A completion's text, whether TRL passed a string or a conversational message list."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return completion if isinstance(completion, str) else ""


def gather_rows(local: list[Row]) -> tuple[list[Row], int]:
    """All processes' rows in process order, and where this process's rows start in that list."""
    from accelerate import PartialState
    from accelerate.utils import gather_object

    parts = gather_object([local])  # one list per process, in rank order (a single process: [local])
    rank = PartialState().process_index if len(parts) > 1 else 0
    offset = sum(len(p) for p in parts[:rank])
    return [row for part in parts for row in part], offset


def split_groups(rows: list[Row], group_size: int) -> list[list[Row]]:
    """Consecutive runs of ``group_size`` rows: TRL's grouping. Refuses a group that mixes problems."""
    if len(rows) % group_size:
        raise RuntimeError(
            f"{len(rows)} completions do not split into groups of num_generations={group_size}; the reward was "
            "called on a batch TRL did not lay out for training (evaluation with another group size?)."
        )
    groups = [rows[i : i + group_size] for i in range(0, len(rows), group_size)]
    for index, group in enumerate(groups):
        ids = {r.problem_id for r in group}
        if len(ids) > 1:
            raise RuntimeError(
                f"group {index} mixes problems {sorted(ids)}: the batch layout is not TRL's repeat-by-"
                "num_generations layout, so group rewards would be wrong; check the sampler and num_generations."
            )
    return groups


def _step_epoch(state: Any, fallback_step: int) -> tuple[int, int]:
    """The optimizer step about to use these completions, and the epoch it belongs to."""
    if state is None:
        return fallback_step, 0
    return int(state.global_step), int(state.epoch or 0)


class GroupReward:
    """Shared machinery of the two stages: local check, gather, group, score, slice."""

    __name__ = "lapo"

    def __init__(self, num_generations: int, stats: LengthStats, checker: AnswerChecker):
        self.num_generations = int(num_generations)
        self.stats = stats
        self.checker = checker
        self.calls = 0

    def _local_rows(self, completions, completion_ids, problem_id, answer, columns) -> list[Row]:
        # A missing gold (None from a column with gaps) must never be matched, not even by \boxed{None}.
        golds = ["" if a is None else str(a) for a in answer]
        correct = self.checker.check_many([_text(c) for c in completions], golds)
        return [Row(str(p), bool(ok), len(ids)) for p, ok, ids in zip(problem_id, correct, completion_ids)]

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]],
        problem_id: Sequence[str],
        answer: Sequence[str],
        trainer_state: Any = None,
        log_metric: Callable[[str, float], None] | None = None,
        log_extra: Callable[[str, list], None] | None = None,
        **columns: Any,
    ) -> list[float]:
        local = self._local_rows(completions, completion_ids, problem_id, answer, columns)
        rows, offset = gather_rows(local)
        step, epoch = _step_epoch(trainer_state, self.calls)
        self.calls += 1
        scored = [(g, self.score_group(g, step, epoch)) for g in split_groups(rows, self.num_generations)]
        rewards = [r for _, s in scored for r in s.rewards]
        length_rewards = [r for _, s in scored for r in s.length_rewards]
        if log_metric is not None:
            for name, value in self.metrics(scored).items():
                log_metric(f"lapo/{name}", value)
        mine = slice(offset, offset + len(local))
        if log_extra is not None:
            log_extra("correct", [r.correct for r in local])
            log_extra("length_reward", length_rewards[mine])
        return rewards[mine]

    def score_group(self, group: list[Row], step: int, epoch: int) -> length.GroupScore:
        raise NotImplementedError

    def metrics(self, scored: list[tuple[list[Row], length.GroupScore]]) -> dict[str, float]:
        rows = [r for g, _ in scored for r in g]
        return {
            "accuracy": sum(r.correct for r in rows) / len(rows),
            "mean_length": sum(r.length for r in rows) / len(rows),
        }


class DiscoveryReward(GroupReward):
    """Stage 1 (LAPO-D): ``acc + 0.7 * band reward`` over the group's [P30, P70] band of correct lengths.

    Records every group's correct lengths into ``stats`` (the hand-off to stage 2).
    """

    __name__ = "lapo_discovery"

    def __init__(
        self,
        num_generations: int,
        stats: LengthStats,
        checker: AnswerChecker,
        *,
        weight: float = length.DISCOVERY_WEIGHT,
        low: float = length.BAND_LOW,
        high: float = length.BAND_HIGH,
        decay: float = length.DECAY_TOKENS,
    ):
        super().__init__(num_generations, stats, checker)
        self.weight, self.low, self.high, self.decay = weight, low, high, decay

    def score_group(self, group: list[Row], step: int, epoch: int) -> length.GroupScore:
        score = length.discovery_rewards(
            [r.correct for r in group],
            [r.length for r in group],
            weight=self.weight,
            low=self.low,
            high=self.high,
            decay=self.decay,
        )
        self.stats.record(group[0].problem_id, step, score.correct_lengths, len(group), epoch)
        return score

    def metrics(self, scored):
        out = super().metrics(scored)
        # Band hit rate: correct completions inside their group's band, over all correct completions.
        hits = [lr == 1.0 for g, s in scored for r, lr in zip(g, s.length_rewards) if r.correct]
        out["band_hit_rate"] = sum(hits) / len(hits) if hits else 0.0
        return out


class InternalizationReward(GroupReward):
    """Stage 2 (LAPO-I): ``acc + 0.8 * exp(-(L - N)^2 / (2 * 120^2))`` for correct completions, else 0.

    N is the budget the prompt showed (dataset column ``budget``); a prompt that showed the fallback
    sentinel (``budget_fallback``) is scored against the group's median correct length instead. With
    ``tighten``, a group whose median correct length is below its problem's target lowers that target in
    ``targets``, the live map the stage-2 prompts are rendered from (``lapo.data.prompts.BudgetedPrompts``).
    """

    __name__ = "lapo_internalization"

    def __init__(
        self,
        num_generations: int,
        stats: LengthStats,
        checker: AnswerChecker,
        targets: dict[str, int],
        *,
        weight: float = length.INTERNALIZATION_WEIGHT,
        sigma: float = length.SIGMA_TOKENS,
        tighten: bool = True,
    ):
        super().__init__(num_generations, stats, checker)
        self.targets, self.weight, self.sigma, self.tighten = targets, weight, sigma, tighten
        self.tightened = 0

    def _local_rows(self, completions, completion_ids, problem_id, answer, columns):
        rows = super()._local_rows(completions, completion_ids, problem_id, answer, columns)
        if "budget" not in columns:
            raise KeyError(
                "the stage-2 reward needs the dataset column 'budget' (the N shown in each prompt); build the "
                "dataset with lapo.data.prompts.BudgetedPrompts."
            )
        fallbacks = columns.get("budget_fallback") or [False] * len(rows)
        return [
            Row(r.problem_id, r.correct, r.length, int(n), bool(fb))
            for r, n, fb in zip(rows, columns["budget"], fallbacks)
        ]

    def score_group(self, group: list[Row], step: int, epoch: int) -> length.GroupScore:
        first = group[0]
        target = None if first.fallback else first.budget
        score = length.internalization_rewards(
            [r.correct for r in group], [r.length for r in group], target, weight=self.weight, sigma=self.sigma
        )
        self.stats.record(first.problem_id, step, score.correct_lengths, len(group), epoch)
        if self.tighten and tighten_target(self.targets, first.problem_id, length.median(score.correct_lengths)):
            self.tightened += 1
        return score

    def metrics(self, scored):
        out = super().metrics(scored)
        pairs = [(r.length, s.target) for g, s in scored if s.target for r in g]
        deviation = length.relative_deviation([p[0] for p in pairs], [p[1] for p in pairs])
        out["budget_deviation"] = deviation if deviation is not None else 0.0
        out["targets_tightened"] = float(self.tightened)
        return out


class MethodReward(GroupReward):
    """Any registered length-control method (:mod:`lapo.methods`) on whole gathered groups.

    Budget methods (L1) read each prompt's N from the dataset column ``budget``; thinkprune reads the cap of
    the current round (``lapo.methods.registry.cap_at`` of the optimizer step), dapo-overlong the max
    completion length. Lengths are recorded into ``stats`` as in LAPO's stages (for `lapo stats`).
    """

    def __init__(self, num_generations: int, stats: LengthStats, checker: AnswerChecker, spec: Any, *,
                 max_length: int, total_steps: int):
        super().__init__(num_generations, stats, checker)
        self.spec, self.max_length, self.total_steps = spec, int(max_length), int(total_steps)
        self.__name__ = spec.name.replace("-", "_")  # TRL keys the reward's metrics by it

    def _local_rows(self, completions, completion_ids, problem_id, answer, columns):
        rows = super()._local_rows(completions, completion_ids, problem_id, answer, columns)
        if not self.spec.method.needs_budget:
            return rows
        if "budget" not in columns:
            raise KeyError(f"method {self.spec.name} needs the dataset column 'budget' (the N of each prompt).")
        return [Row(r.problem_id, r.correct, r.length, int(n)) for r, n in zip(rows, columns["budget"])]

    def cap(self, step: int) -> int:
        caps = self.spec.knobs.get("caps")
        return cap_at(caps, step, self.total_steps) if caps else self.max_length

    def score_group(self, group: list[Row], step: int, epoch: int) -> length.GroupScore:
        score = score_group(self.spec, [r.correct for r in group], [r.length for r in group],
                            budgets=[r.budget for r in group], cap=self.cap(step))
        self.stats.record(group[0].problem_id, step, score.correct_lengths, len(group), epoch)
        return score


def method_reward(cfg: Any, spec: Any, num_generations: int, stats: LengthStats, *, max_length: int,
                  total_steps: int) -> MethodReward:
    """The reward of ``spec``'s method, with the answer checking of a :class:`lapo.train.config.LapoConfig`."""
    checker = make_checker(cfg.answer_timeout, cfg.answer_fallback, cfg.answer_workers)
    return MethodReward(num_generations, stats, checker, spec, max_length=max_length, total_steps=total_steps)


def make_checker(timeout_s: float = 1.0, fallback: str = "none", workers: int = 1) -> AnswerChecker:
    return AnswerChecker(timeout_s=timeout_s, fallback=fallback, workers=workers)


def discovery_reward(cfg: Any, num_generations: int, stats: LengthStats) -> DiscoveryReward:
    """The stage-1 reward configured from a :class:`lapo.train.config.LapoConfig`."""
    return DiscoveryReward(
        num_generations,
        stats,
        make_checker(cfg.answer_timeout, cfg.answer_fallback, cfg.answer_workers),
        weight=cfg.discovery_weight,
        low=cfg.band_low,
        high=cfg.band_high,
        decay=cfg.band_decay,
    )


def internalization_reward(
    cfg: Any, num_generations: int, stats: LengthStats, targets: dict[str, int]
) -> InternalizationReward:
    """The stage-2 reward configured from a :class:`lapo.train.config.LapoConfig`; ``targets`` is the live map."""
    return InternalizationReward(
        num_generations,
        stats,
        make_checker(cfg.answer_timeout, cfg.answer_fallback, cfg.answer_workers),
        targets,
        weight=cfg.internalization_weight,
        sigma=cfg.sigma,
        tighten=cfg.online_tightening,
    )
