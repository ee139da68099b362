"""Test-only hooks, loaded by Python at start-up in processes whose PYTHONPATH names this folder
(tests/test_train_distributed.py puts it there for the stage processes of a launched `lapo train`).

- ``LAPO_TEST_DUMP_DIR``: every reward call appends, per rank, each completion with the reward the library
  returned, so the test can recompute the rewards in one process.
- ``LAPO_TEST_FSDP_ON_CPU``: a SHIM. accelerate turns FSDP on only for accelerator devices (CUDA, XPU, ...);
  on CPU it silently keeps DDP. This hook makes ``AcceleratorState`` take the FSDP branch for MULTI_CPU, as
  it would for MULTI_GPU, so FSDP2 sharding runs over gloo. The test asserts the trainer really was FSDP.
"""

import os
import sys


def _stage_process() -> bool:
    return "--stage-process" in sys.argv or os.environ.get("LAPO_TEST_HOOK_ALL") == "1"


def _dump_rewards(out: str) -> None:
    import json
    from pathlib import Path

    from lapo.train import rewards

    original = rewards.GroupReward.__call__
    rank = int(os.environ.get("RANK", "0"))

    def dumping_call(self, prompts, completions, completion_ids, **kwargs):
        result = original(self, prompts, completions, completion_ids, **kwargs)
        step = kwargs["trainer_state"].global_step
        with (Path(out) / f"rank{rank}.jsonl").open("a", encoding="utf-8") as handle:
            for i, (completion, ids, reward) in enumerate(zip(completions, completion_ids, result)):
                row = {
                    "stage": self.__name__, "step": step, "epoch": kwargs["trainer_state"].epoch, "rank": rank, "index": i, "reward": reward,
                    "completion": completion, "completion_ids": list(ids),
                    "problem_id": kwargs["problem_id"][i], "answer": kwargs["answer"][i],
                    "budget": kwargs.get("budget", [None] * len(result))[i],
                    "budget_fallback": kwargs.get("budget_fallback", [False] * len(result))[i],
                }
                handle.write(json.dumps(row) + "\n")
        return result

    rewards.GroupReward.__call__ = dumping_call


def _fsdp_on_cpu() -> None:
    from accelerate import state
    from accelerate.utils import DistributedType

    original = state.AcceleratorState.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.distributed_type == DistributedType.MULTI_CPU and kwargs.get("fsdp_plugin") is not None:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = kwargs["fsdp_plugin"]
            # accelerate copies PartialState's shared state into every later AcceleratorState(): keep it FSDP there.
            state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    state.AcceleratorState.__init__ = init


if _stage_process():
    if os.environ.get("LAPO_TEST_DUMP_DIR"):
        _dump_rewards(os.environ["LAPO_TEST_DUMP_DIR"])
    if os.environ.get("LAPO_TEST_FSDP_ON_CPU") == "1":
        _fsdp_on_cpu()
