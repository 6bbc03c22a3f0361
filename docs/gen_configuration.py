"""Rewrite the options table of docs/configuration.md from otpsim.config.OPTIONS.

    .venv/bin/python docs/gen_configuration.py

tests/test_docs.py fails when the table and the code disagree.
"""

from __future__ import annotations

from pathlib import Path

from otpsim.config import OPTIONS, Settings

DOC = Path(__file__).resolve().parent / "configuration.md"
HEADER = "| flag | environment | config key | default | meaning |\n|---|---|---|---|---|\n"


def table() -> str:
    defaults = Settings()
    rows = []
    for option in OPTIONS:
        value = getattr(defaults, option.field)
        if value in ((), None):
            shown = "—"
        elif isinstance(value, tuple):
            shown = ",".join(f"{x:g}" for x in value)
        else:
            shown = str(value)
        key = ".".join(option.key)
        rows.append(f"| `{option.flag}` | `{option.env}` | `{key}` | {shown} | {option.help} |")
    return HEADER + "\n".join(rows) + "\n"


def main() -> None:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(HEADER)
    end = text.index("\n\n", start)
    DOC.write_text(text[:start] + table() + text[end + 1 :], encoding="utf-8")
    print(f"updated {DOC}")


if __name__ == "__main__":
    main()
