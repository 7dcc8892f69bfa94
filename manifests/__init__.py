"""The core of thinkforge: record schemas, manifests, the dataset store and the SQL catalog.

Imports no other package of the project and never imports torch (DESIGN §1).
"""

__version__ = "0.1.0"

from .errors import ForgeError  # noqa: E402
from .manifest import Manifest  # noqa: E402
from .schemas import KINDS, SCHEMAS, schema_for  # noqa: E402
from .store import DatasetStore  # noqa: E402

__all__ = ["DatasetStore", "ForgeError", "KINDS", "Manifest", "SCHEMAS", "schema_for", "__version__"]
