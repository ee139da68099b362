"""lapo: Length-Adaptive Policy Optimization (arXiv 2507.15758) on Hugging Face TRL."""

__version__ = "0.1.0"
