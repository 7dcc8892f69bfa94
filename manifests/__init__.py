"""The core of thinkforge: record schemas, manifests, the dataset store and the SQL catalog.

Imports no other package of the project and never imports torch (docs/architecture.md).  The public
names load lazily so that `thinkforge sql` pays only for what a query needs.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "DatasetStore": ".writer", "ForgeError": ".errors", "Manifest": ".manifest",
    "KINDS": ".schemas", "SCHEMAS": ".schemas", "schema_for": ".schemas",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'manifests' has no attribute {name!r}")
