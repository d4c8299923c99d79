"""Errors a user can cause: each names what is wrong and how to fix it; the CLI prints them without a traceback."""

from __future__ import annotations


class HarnessError(Exception):
    """A fault in the user's input (submission, file, flag, dataset), not a bug in the harness.

    `message` says what is wrong (naming the file and field); `hint` says how to fix it.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class SubmissionError(HarnessError):
    """The submission directory, its manifest, entry point or outputs are invalid."""


class RuleViolation(HarnessError):
    """The submission breaks a rule of its track (MACs, params, bytes budget)."""


class DatasetError(HarnessError):
    """A dataset is missing or malformed."""


class PredictionError(HarnessError):
    """Predictions (from a submission or a results file) are malformed."""


class StoreError(HarnessError):
    """The store (database) cannot be opened or written."""


class CompetitionError(HarnessError):
    """A competition bundle (`competition.toml`, its cards and data) or its secret key is invalid."""


class UploadError(HarnessError):
    """A project archive cannot be packed, or an uploaded one is malformed or hostile and is refused."""
