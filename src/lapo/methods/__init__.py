"""Length-control methods under one harness (pure: no torch, TRL or transformers).

- :mod:`lapo.methods.formulas`: one reward function per method, on one whole group;
- :mod:`lapo.methods.registry`: name -> :class:`~lapo.methods.registry.Method` (reward, knobs and their
  paper defaults, budget sentence, cap), :func:`~lapo.methods.registry.resolve` (checked before any model
  loads) and :func:`~lapo.methods.registry.score_group`;
- :mod:`lapo.methods.budgets`: per-problem budgets for L1, seeded.

docs/METHODS.md gives every formula, constant, source and prompt.
"""
