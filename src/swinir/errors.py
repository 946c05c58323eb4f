"""User-facing error types. The CLI prints their message as one line and exits non-zero."""

from __future__ import annotations


class SwinIRError(Exception):
    """Base class: a failure the user can act on, described in one line."""


class CheckpointError(SwinIRError):
    """A checkpoint could not be read or is not a SwinIR checkpoint."""


class ImageReadError(SwinIRError):
    """An image file could not be read."""


class ImageWriteError(SwinIRError):
    """An image could not be written."""


class OutputExistsError(SwinIRError):
    """An output already exists (perhaps written by another run meanwhile) and replacing it was not asked for."""

    def __init__(self, path: object, message: str = "exists; not replaced") -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class ZooError(SwinIRError):
    """A model-zoo name is unknown or its weights cannot be fetched."""


class ConfigError(SwinIRError):
    """A training configuration is invalid."""
