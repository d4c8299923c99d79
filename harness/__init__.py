"""harness: a competition benchmark harness and leaderboard for efficient vision models."""

__version__ = "0.1.0"
