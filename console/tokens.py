"""Access tokens of the web console: a JSON file holding only their sha256 digests.

A token is 32 random bytes (``secrets.token_urlsafe``), shown once when it is created.
The file keeps its name, its dataset scope (a glob such as ``math-*``; ``*`` = every
dataset) and the sha256 of the token: high-entropy secrets need no slow hash, and a
stolen file does not give the tokens back.  Lookups compare digests in constant time.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from thinkforge.manifests.errors import ConfigError, ConflictError, InputDataError, NotFoundError
from thinkforge.manifests.manifest import utc_now

TOKEN_PREFIX = "tf_"
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@")


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to, and which datasets it may see."""

    name: str
    datasets: str = "*"

    def allows(self, dataset: str) -> bool:
        return fnmatch.fnmatchcase(dataset, self.datasets)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenFile:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def entries(self) -> list[dict]:
        if not self.path.is_file():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entries = data["tokens"]
            assert isinstance(entries, list)
            return entries
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise InputDataError(f"token file {self.path} is not a thinkforge token file ({exc})",
                                 hint="create tokens with `thinkforge serve token add NAME "
                                      "--token-file FILE`") from None

    def add(self, name: str, datasets: str = "*") -> str:
        """A new token for ``name`` (returned once; only its digest is written)."""
        if not name or not set(name) <= NAME_CHARS or len(name) > 64:
            raise ConfigError(f"invalid token name {name!r}: use letters, digits and _.-@ "
                              "(at most 64)", hint="for example: thinkforge serve token add alice")
        if not datasets or any(c in datasets for c in "/\\\n"):
            raise ConfigError(f"invalid --datasets pattern {datasets!r}",
                              hint="a glob over dataset names, e.g. 'math-*' (default: every dataset)")
        entries = self.entries()
        if any(e.get("name") == name for e in entries):
            raise ConflictError(f"token file {self.path} already has a token named {name!r}",
                                hint="choose another name (tokens are never shown again)")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        entries.append({"name": name, "datasets": datasets, "sha256": digest(token),
                        "created_at": utc_now()})
        self._write(entries)
        return token

    def remove(self, name: str) -> None:
        """Revoke the token ``name``: the next request that carries it gets 401."""
        entries = self.entries()
        kept = [e for e in entries if e.get("name") != name]
        if len(kept) == len(entries):
            raise NotFoundError(f"token file {self.path} has no token named {name!r}",
                                hint="see the names with `thinkforge serve token list`")
        self._write(kept)

    def _write(self, entries: list[dict]) -> None:
        """Replace the file atomically, readable by its owner only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"tokens": entries}, f, indent=2)
            f.write("\n")
        os.replace(tmp, self.path)

    def lookup(self, token: str | None) -> Principal | None:
        """The token's principal, or None for a missing or unknown token."""
        if not token:
            return None
        wanted = digest(token)
        found = None
        for e in self.entries():  # no early exit: every entry is compared
            if hmac.compare_digest(str(e.get("sha256", "")), wanted):
                found = Principal(str(e["name"]), str(e.get("datasets") or "*"))
        return found
