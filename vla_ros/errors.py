"""Errors shared across layers, in a module that imports nothing heavy (no torch), so
processes that never load a model (e.g. the image source node) stay small."""


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, or does not fit the model it describes."""
