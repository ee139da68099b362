"""Two CPU processes (torchrun, gloo) with a batch layout that splits a group across them.

num_generations=4 and 6 completions per process: each step's 12 completions are 3 groups, and the middle
group has two completions on each process. The harness (this file run as a script) wraps the reward
callable to dump, per rank, every completion with the reward the library returned; the test recomputes
each step's rewards in one process on the same completions and requires them to be equal.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
NUM_GENERATIONS = 4
PER_DEVICE = 6  # not a multiple of NUM_GENERATIONS: a group straddles the two processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _harness(out: Path, model_dir: str, dataset: str) -> None:
    """Runs inside each torchrun process: wrap the reward, train both stages for two steps."""
    sys.path.insert(0, str(HERE))
    from conftest import toy_overrides

    from lapo.train import rewards
    from lapo.train import run as train

    rank = int(os.environ["RANK"])
    original = rewards.GroupReward.__call__

    def dumping_call(self, prompts, completions, completion_ids, **kwargs):
        result = original(self, prompts, completions, completion_ids, **kwargs)
        step = kwargs["trainer_state"].global_step
        with (out / f"rank{rank}.jsonl").open("a", encoding="utf-8") as handle:
            for i, (completion, ids, reward) in enumerate(zip(completions, completion_ids, result)):
                row = {
                    "stage": self.__name__, "step": step, "rank": rank, "index": i, "reward": reward,
                    "completion": completion, "completion_ids": list(ids),
                    "problem_id": kwargs["problem_id"][i], "answer": kwargs["answer"][i],
                    "budget": kwargs.get("budget", [None] * len(result))[i],
                    "budget_fallback": kwargs.get("budget_fallback", [False] * len(result))[i],
                }
                handle.write(json.dumps(row) + "\n")
        return result

    rewards.GroupReward.__call__ = dumping_call
    overrides = toy_overrides(
        Path(model_dir), Path(dataset), out / "run",
        num_generations=NUM_GENERATIONS, per_device_train_batch_size=PER_DEVICE, max_steps=2,
    )
    assert train.main(overrides) == 0


def _read(out: Path) -> dict[tuple[str, int], list[dict]]:
    """Each (stage, step)'s completions in TRL's global order: rank 0's rows, then rank 1's."""
    rows = [json.loads(line) for rank in (0, 1) for line in (out / f"rank{rank}.jsonl").read_text().splitlines()]
    batches: dict[tuple[str, int], list[dict]] = {}
    for row in sorted(rows, key=lambda r: (r["rank"], r["index"])):
        batches.setdefault((row["stage"], row["step"]), []).append(row)
    return batches


def _single_process(stage: str, rows: list[dict]) -> list[float]:
    """The same reward computed in this (non-distributed) process on all of the step's completions."""
    from lapo.core.checker import AnswerChecker
    from lapo.core.stats import LengthStats
    from lapo.train.rewards import DiscoveryReward, InternalizationReward

    checker = AnswerChecker(workers=0)
    if stage == "lapo_discovery":
        reward = DiscoveryReward(NUM_GENERATIONS, LengthStats(), checker)
    else:
        reward = InternalizationReward(NUM_GENERATIONS, LengthStats(), checker, {}, tighten=False)
    columns = {"budget": [r["budget"] for r in rows], "budget_fallback": [r["budget_fallback"] for r in rows]}
    return reward(
        prompts=[""] * len(rows),
        completions=[r["completion"] for r in rows],
        completion_ids=[r["completion_ids"] for r in rows],
        problem_id=[r["problem_id"] for r in rows],
        answer=[r["answer"] for r in rows],
        **(columns if stage != "lapo_discovery" else {}),
    )


def _naive_per_process(stage: str, rows: list[dict]) -> list[float]:
    """What a reward that trusted its local slice would return (groups cut at the process boundary)."""
    out = []
    for rank in (0, 1):
        mine = [r for r in rows if r["rank"] == rank]
        groups: dict[str, list[dict]] = {}
        for r in mine:
            groups.setdefault(r["problem_id"], []).append(r)
        scored = {}
        for pid, group in groups.items():
            rewards = _single_process_group(stage, group)
            scored.update({id(r): v for r, v in zip(group, rewards)})
        out += [scored[id(r)] for r in mine]
    return out


def _single_process_group(stage: str, group: list[dict]) -> list[float]:
    from lapo.core.checker import AnswerChecker
    from lapo.core.length import discovery_rewards, internalization_rewards

    correct = AnswerChecker(workers=0).check_many([r["completion"] for r in group], [r["answer"] for r in group])
    lengths = [len(r["completion_ids"]) for r in group]
    if stage == "lapo_discovery":
        return discovery_rewards(correct, lengths).rewards
    target = None if group[0]["budget_fallback"] else group[0]["budget"]
    return internalization_rewards(correct, lengths, target).rewards


@pytest.mark.slow
@pytest.mark.multiproc
def test_split_groups_get_whole_group_rewards(tmp_path, warm_model_dir, toy_problems):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
        str(Path(__file__).resolve()), str(tmp_path), str(warm_model_dir), str(toy_problems),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]

    batches = _read(tmp_path)
    assert {stage for stage, _ in batches} == {"lapo_discovery", "lapo_internalization"}
    split_groups = naive_differs = 0
    for (stage, step), rows in batches.items():
        assert len(rows) == 2 * PER_DEVICE
        assert [r["reward"] for r in rows] == _single_process(stage, rows), (stage, step)
        groups = [rows[i : i + NUM_GENERATIONS] for i in range(0, len(rows), NUM_GENERATIONS)]
        split_groups += sum(len({r["rank"] for r in g}) == 2 for g in groups)
        naive_differs += _naive_per_process(stage, rows) != [r["reward"] for r in rows]
    assert split_groups == len(batches)  # every step had a group on both processes
    assert naive_differs > 0  # and trusting the local slice would have given other rewards


if __name__ == "__main__":
    _harness(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
