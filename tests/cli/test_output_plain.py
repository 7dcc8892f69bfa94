"""Data strings are printed as they are: no rich markup, no emoji codes (issue 21 item 9)."""

from __future__ import annotations

from thinkforge.output import log, print_table

REASON = "pair_partner:on:incorrect [red]x[/red] :thumbs_up:"


def test_log_lines_keep_emoji_codes_and_brackets(capsys):
    log(f"rejected {{'{REASON}': 3}}")
    assert REASON in capsys.readouterr().err


def test_tables_keep_emoji_codes_and_brackets(capsys):
    print_table([{"reason": REASON, "rows": 3}], title=":on: title")
    shown = capsys.readouterr().out
    assert "pair_partner:on:incorrect" in shown and ":thumbs_up:" in shown and ":on: title" in shown


def test_the_sql_command_shows_emoji_codes_as_text(cli_run, store):
    import pyarrow as pa

    with store.writer("p", "prompts", step={"type": "t"}) as w:
        w.write(pa.table({"id": ["a"], "source": ["s"], "category": ["math"], "verifier": ["none"],
                          "input": [[{"role": "user", "content": "hi"}]]}))
    result = cli_run("sql", "SELECT 'pair_partner:on:incorrect' AS reason")
    assert result.exit_code == 0, result.output
    assert "pair_partner:on:incorrect" in result.stdout
