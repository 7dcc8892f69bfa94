"""thinkforge: the `thinkforge` command line and the Python API (``thinkforge.api``).

``import thinkforge as tf`` stays light: ``tf.Store`` and ``tf.steps`` load on first use.
"""

from thinkforge import logs as _logs

_logs.install_default()  # every thinkforge.* logger prints plain lines on stderr (docs: Logging)

from thinkforge.manifests import __version__  # noqa: E402

__all__ = ["Store", "Version", "__version__", "steps"]


def __getattr__(name: str):
    if name in ("Store", "Version", "steps"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'thinkforge' has no attribute {name!r}")
