"""Built-in reasoning tasks with verifiable answers and difficulty levels (pure Python, no torch).

- :mod:`lapo.tasks.counting`: count a letter in a string; the embedded default's task (`lapo quickstart`).
- :mod:`lapo.tasks.sums`: the arithmetic task of the SmolLM2 recipe.
"""
