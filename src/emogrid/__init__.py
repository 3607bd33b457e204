"""emogrid: multi-label emotion classification research toolkit."""

__version__ = "0.1.0"
