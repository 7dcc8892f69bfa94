"""`thinkforge serve`: the web console over a store (docs/console.md), and its tokens."""

from __future__ import annotations

import click

from .context import get_store, is_quiet


@click.group("serve", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback only unless you say otherwise).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="Token file (sha256 digests) made by `thinkforge serve token add`.")
@click.option("--reports", type=click.Path(file_okay=False, exists=True),
              help="Folder of `thinkforge report` outputs: their plots appear on version pages.")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds one SQL query may run.")
@click.option("--max-rows", default=10_000, show_default=True, type=click.IntRange(1),
              help="Rows one SQL query (page or download) may return.")
@click.option("--memory-limit", default="1GB", show_default=True, help="DuckDB memory per query.")
@click.pass_context
def serve_group(ctx, host, port, token_file, reports, timeout, max_rows, memory_limit):
    """Serve the read-only web console and JSON API (/api/) of the store.

    Every request needs a token (`Authorization: Bearer` or the login page); a token's
    --datasets pattern decides which datasets it sees. The store is never written.

    \b
    Example:
      thinkforge serve token add alice --token-file ~/.thinkforge-tokens
      thinkforge serve --token-file ~/.thinkforge-tokens --port 8765
    """
    if ctx.invoked_subcommand is not None:
        return
    from thinkforge.manifests.errors import ConfigError, MissingDependencyError

    if not token_file:
        raise ConfigError("thinkforge serve needs --token-file",
                          hint="create one: thinkforge serve token add NAME --token-file FILE")
    from thinkforge.console.tokens import TokenFile

    if not TokenFile(token_file).entries():
        raise ConfigError(f"token file {token_file} holds no token: nobody could log in",
                          hint=f"thinkforge serve token add NAME --token-file {token_file}")
    try:
        import uvicorn

        from thinkforge.console.app import create_app
        from thinkforge.console.data import Limits
    except ImportError as exc:
        raise MissingDependencyError(f"thinkforge serve needs the serve extra ({exc.name} is missing)",
                                     hint="pip install 'thinkforge[serve]'") from None
    store = get_store(ctx)
    app = create_app(store.root, token_file, reports_dir=reports,
                     limits=Limits(timeout=timeout, max_rows=max_rows, memory_limit=memory_limit))
    if not is_quiet(ctx):
        click.echo(f"thinkforge console: http://{host}:{port}/ (store {store.root})", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):  # said even with --quiet: it matters
        click.echo(f"warning: --host {host} serves beyond this machine over plain HTTP: tokens and "
                   "data travel unencrypted; put a TLS proxy in front", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning" if is_quiet(ctx) else "info")


@serve_group.group("token")
def token_group():
    """Manage the console's access tokens (only their sha256 is stored).

    \b
    Example:
      thinkforge serve token add alice --token-file tokens.json
    """


@token_group.command("add")
@click.argument("name")
@click.option("--token-file", required=True, type=click.Path(dir_okay=False),
              help="Token file to add to (created with mode 600).")
@click.option("--datasets", default="*", show_default=True,
              help="Glob of the dataset names the token may see and query, e.g. 'math-*'.")
def token_add(name, token_file, datasets):
    """Create a token NAME; print it once (only its sha256 is stored).

    \b
    Example:
      thinkforge serve token add bob --datasets 'math-*' --token-file tokens.json
    """
    from thinkforge.console.tokens import TokenFile

    click.echo(TokenFile(token_file).add(name, datasets))


@token_group.command("list")
@click.option("--token-file", required=True, type=click.Path(dir_okay=False))
def token_list(token_file):
    """Print each token's name, dataset scope and creation date (never the token).

    \b
    Example:
      thinkforge serve token list --token-file tokens.json
    """
    from thinkforge.console.tokens import TokenFile

    for entry in TokenFile(token_file).entries():
        click.echo(f"{entry.get('name')}\t{entry.get('datasets', '*')}\t{entry.get('created_at', '')}")


@token_group.command("remove")
@click.argument("name")
@click.option("--token-file", required=True, type=click.Path(dir_okay=False))
def token_remove(name, token_file):
    """Revoke the token NAME (a running server refuses it from the next request).

    \b
    Example:
      thinkforge serve token remove bob --token-file tokens.json
    """
    from thinkforge.console.tokens import TokenFile

    TokenFile(token_file).remove(name)


COMMANDS = (serve_group,)
