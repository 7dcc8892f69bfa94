"""Signed manifests: an ed25519 key outside the store signs every version it publishes.

The publish log (``integrity.py``) and the sha256s catch edits made by someone who does
not rewrite them too; someone who can write the store can rewrite all of it.  A signature
by a key kept outside the store cannot be forged by them: ``thinkforge keys init`` makes
the key (``$THINKFORGE_KEY``, else ``~/.config/thinkforge/signing-key.pem``, mode 0600,
refused inside the store), every publish with a key writes ``manifest.sig`` beside the
manifest (before the version is renamed into place), and ``verify --trusted-key PUB`` /
``pull --trusted-key PUB`` refuse a version not signed by that key.  The signed message
binds the store-independent identity of a version: its name, its version and the sha256
of its manifest bytes (which name every file's sha256 and the fingerprint of its rows).
See docs/integrity.md.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, ConflictError, IntegrityError

if TYPE_CHECKING:
    from .manifest import Manifest

KEY_ENV = "THINKFORGE_KEY"
# pins for every verify of a process (steps, exports, pulls, trainers), not only `verify`
TRUSTED_ENV = "THINKFORGE_TRUSTED_KEY"
HEAD_ENV = "THINKFORGE_EXPECT_HEAD"
SIG_FILE = "manifest.sig"
_DOMAIN = b"thinkforge manifest signature v1\n"


def key_path() -> Path:
    """Where the private key is: ``$THINKFORGE_KEY`` or ``$XDG_CONFIG_HOME/thinkforge/signing-key.pem``."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV]).expanduser().absolute()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config").expanduser()
    return (base / "thinkforge" / "signing-key.pem").absolute()


def public_path(private: Path) -> Path:
    return private.with_name(private.name + ".pub")


def key_id(raw: bytes) -> str:
    """A short, stable name for a public key (sha256 of its 32 raw bytes, 16 hex)."""
    return hashlib.sha256(raw).hexdigest()[:16]


def _outside(path: Path, store_root: Path | None) -> None:
    if store_root is not None and path.resolve().is_relative_to(Path(store_root).resolve()):
        raise ConfigError(f"signing key {path} is inside the store {store_root}: whoever can "
                          "write the store could read it and sign anything",
                          hint=f"keep it elsewhere: unset ${KEY_ENV} (default "
                               "~/.config/thinkforge/signing-key.pem) or point it outside the store")


def init_key(store_root: Path | None = None) -> tuple[Path, Path, str]:
    """Create the key pair; an existing key is never overwritten.  (private, public, key id)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = key_path()
    _outside(private, store_root)
    if private.exists():
        raise ConflictError(f"a signing key already exists at {private}",
                            hint=f"keep it (its public key: {public_path(private)}), or set "
                                 f"${KEY_ENV} to another path")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    raw = _raw_public(key)
    private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path(private).write_text(f"ed25519 {raw.hex()}\n")
    return private, public_path(private), key_id(raw)


def _raw_public(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_private(store_root: Path | None = None):
    """The private key, or None when there is none (publishes are then unsigned)."""
    path = key_path()
    if not path.is_file():
        if os.environ.get(KEY_ENV) and path.exists():
            raise ConfigError(f"${KEY_ENV}={path} is not a file")
        return None
    _outside(path, store_root)
    # imported only when there is a key: ~17 ms of every unsigned publish's process
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise ConfigError(f"cannot read the signing key {path}: {str(exc).splitlines()[0]}",
                          hint="create one with `thinkforge keys init` (after moving this file away)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an ed25519 key", hint="create one with `thinkforge keys init`")
    return key


def local_public() -> bytes | None:
    """This user's public key (from the private key), or None without one."""
    try:
        key = load_private()
    except ConfigError:
        return None
    return None if key is None else _raw_public(key)


def parse_public(text: str) -> bytes:
    """A public key given as the .pub file's path, its contents (``ed25519 <hex>``) or the hex."""
    value = text.strip()
    if Path(value).expanduser().is_file():
        value = Path(value).expanduser().read_text().strip()
    parts = value.split()
    if len(parts) == 2 and parts[0] == "ed25519":
        value = parts[1]
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"--trusted-key {text!r} is not an ed25519 public key",
                          hint="give the .pub file `thinkforge keys init` wrote, or its contents")
    return raw


def _message(name: str, version: str, manifest_sha256: str) -> bytes:
    return _DOMAIN + f"{name}\n{version}\n{manifest_sha256}\n".encode()


def sign_into(directory: Path, manifest: Manifest, manifest_sha256: str,
              store_root: Path | None = None) -> str | None:
    """Write ``manifest.sig`` into the (staging) version directory when a key exists;
    returns the key id, or None (unsigned)."""
    key = load_private(store_root)
    sig = directory / SIG_FILE
    if key is None:
        sig.unlink(missing_ok=True)
        return None
    raw = _raw_public(key)
    body = {"scheme": "ed25519", "key": raw.hex(), "manifest_sha256": manifest_sha256,
            "signature": key.sign(_message(manifest.name, manifest.version, manifest_sha256)).hex()}
    sig.write_text(json.dumps(body, sort_keys=True) + "\n")
    return key_id(raw)


def check_signature(version_dir: Path, manifest: Manifest, manifest_sha256: str,
                    trusted: list[bytes] | None = None) -> str | None:
    """The id of the key that signed this version (None: unsigned).  A signature that does
    not verify is an integrity error; with ``trusted``, so is any key not in it, or none."""
    ref = manifest.ref
    path = version_dir / SIG_FILE
    if not path.is_file():
        if trusted:
            raise IntegrityError(f"{ref} is not signed, and --trusted-key asks for a signature",
                                 hint="it was published without a key, or its manifest.sig was "
                                      "removed; do not use it")
        return None
    # imported only for a signed version (an unsigned store never pays for it)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        body = json.loads(path.read_text())
        raw = bytes.fromhex(body["key"])
        signature = bytes.fromhex(body["signature"])
        Ed25519PublicKey.from_public_bytes(raw).verify(
            signature, _message(manifest.name, manifest.version, manifest_sha256))
    except (InvalidSignature, ValueError, KeyError, TypeError, OSError):
        raise IntegrityError(f"{ref}: manifest.sig does not sign this manifest (the manifest, "
                             "its name or version, or the signature was changed)",
                             hint="do not use this version; restore it from a trusted copy") from None
    if trusted and raw not in trusted:
        raise IntegrityError(f"{ref} is signed by key {key_id(raw)}, not by the trusted key "
                             f"({', '.join(key_id(t) for t in trusted)})",
                             hint="someone else signed it; do not use it")
    return key_id(raw)


def env_trusted_keys() -> list[bytes] | None:
    """``$THINKFORGE_TRUSTED_KEY`` (public keys or .pub files, comma-separated), or None."""
    value = os.environ.get(TRUSTED_ENV, "").strip()
    if not value:
        return None
    try:
        return [parse_public(part) for part in value.split(",") if part.strip()]
    except ConfigError as exc:
        raise ConfigError(f"${TRUSTED_ENV}: {str(exc).splitlines()[0]}", hint=exc.hint) from None


def env_expect_head() -> str | None:
    """``$THINKFORGE_EXPECT_HEAD``: the publish log head every verify of the process checks."""
    return os.environ.get(HEAD_ENV, "").strip() or None
