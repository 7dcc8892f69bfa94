"""thinkforge: the `thinkforge` command line and the Python API (``thinkforge.api``).

``import thinkforge as tf`` stays light: ``tf.Store`` and ``tf.steps`` load on first use, and
``tf.verify`` / ``tf.Verdict`` (the answer verifier, docs/verifier.md) never import torch.
"""

from thinkforge import logs as _logs

_logs.install_default()  # every thinkforge.* logger prints plain lines on stderr (docs: Logging)

from thinkforge.manifests import __version__  # noqa: E402

__all__ = ["Store", "Verdict", "Version", "__version__", "steps", "verify"]


def __getattr__(name: str):
    if name == "verify":
        from thinkforge.generators.verifiers.api import verify

        return verify
    if name == "Verdict":
        from thinkforge.generators.verifiers.verdict import Verdict

        return Verdict
    if name in ("Store", "Version", "steps"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'thinkforge' has no attribute {name!r}")
