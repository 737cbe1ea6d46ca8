"""The one exception type a stage reports as a one-line failure."""


class PipelineError(Exception):
    """A failure the user can act on; its message names the file or key and what was wrong."""
