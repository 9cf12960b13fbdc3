"""Exceptions of sage_core. Each message names what was wrong, where, and what is expected."""


class SageError(Exception):
    """Base class of every error sage_core raises on purpose."""


class ConfigError(SageError, ValueError):
    """A setting (config key, override, device name, node parameter) that cannot be used; names the setting."""


class FusionInputError(SageError, ValueError):
    """An image given to fusion has the wrong size, type or channel count."""


class CheckpointError(SageError):
    """A weights file is missing, corrupt, foreign, or does not match its architecture."""


class BackendError(SageError):
    """An inference backend cannot run here or cannot run this model file; the message says why."""


class ImageReadError(SageError):
    """An image file is missing or cannot be decoded."""


class PairingError(SageError):
    """Thermal and visible files cannot be paired by stem."""
