"""The thinkforge command line: one console script, thin commands over the packages."""

from manifests import __version__

__all__ = ["__version__"]
