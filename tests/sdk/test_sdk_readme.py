"""The README's "Using the official SDK" example is the file that runs with the tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_shows_the_sdk_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Using the official SDK", 1)[1].split("\n## ", 1)[0]
    example = (ROOT / "tests" / "examples" / "test_sdk_example.py").read_text(encoding="utf-8")
    assert "```python\n" + example + "```" in section
    assert "smscx_client.Configuration(host=otpsim.url, api_key=otpsim.api_key)" in example
