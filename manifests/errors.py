"""One exception tree for the whole project, each class mapped to a process exit code.

The CLI turns any ``ForgeError`` into its message on stderr and ``exit_code``; anything
else is a bug and keeps its traceback.  Messages say what was wrong, where, and how to fix it.
"""


class ForgeError(Exception):
    """Base of every error thinkforge raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message}\n  hint: {self.hint}" if self.hint else message


class NotFoundError(ForgeError):
    """A dataset, version or file that was asked for does not exist."""

    exit_code = 3


class IntegrityError(ForgeError):
    """Bytes on disk do not match the manifest (size or sha256)."""

    exit_code = 4


class ConflictError(ForgeError):
    """Another writer got there first, or a version already exists."""

    exit_code = 5


class InputDataError(ForgeError):
    """A row, file or value given to thinkforge is malformed."""

    exit_code = 6


class SqlRefusedError(ForgeError):
    """A query tried to write, change settings or read outside the store."""

    exit_code = 7


class ConfigError(ForgeError):
    """A configuration value, recipe key or option is invalid."""

    exit_code = 8


class MissingDependencyError(ForgeError):
    """An optional dependency is not installed; the message names the extra."""

    exit_code = 9


class GenerationFailedError(ForgeError):
    """A generation run failed: too many requests errored, or nothing was left to publish."""

    exit_code = 10


class ResourceLimitError(ForgeError):
    """A limit was reached: query time or memory, disk space or file size."""

    exit_code = 11


class AccessDeniedError(ForgeError):
    """The store or an output path cannot be written or read (permissions)."""

    exit_code = 12


class Interrupted(ForgeError):
    """Stopped by Ctrl-C (SIGINT); nothing was published."""

    exit_code = 130


EXIT_CODES = {
    0: "success",
    1: "unexpected thinkforge error",
    2: "usage error (bad command-line option)",
    **{cls.exit_code: cls.__doc__.split("\n")[0].rstrip(".") for cls in (
        NotFoundError, IntegrityError, ConflictError, InputDataError, SqlRefusedError,
        ConfigError, MissingDependencyError, GenerationFailedError, ResourceLimitError,
        AccessDeniedError, Interrupted)},
}


def require(module: str, extra: str):
    """Import an optional dependency or raise a clear error naming the extra that ships it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"`{module}` is not installed ({exc}).",
            hint=f"pip install 'thinkforge[{extra}]'",
        ) from exc
