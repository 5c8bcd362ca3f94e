"""The README and docs/ stay true to the code: the two commands, generated tables, links. No Ray."""
import importlib.util
import os
import re

import pytest

from raypose import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
USAGE = os.path.join(ROOT, "docs", "usage.md")   # holds the table of config keys
COMMANDS = ("python3 -m venv .venv && . .venv/bin/activate && pip install -c constraints-cpu.txt -e '.[test]' "
            "&& raypose demo\npython -m pytest -q\n")


def _bench_table():
    spec = importlib.util.spec_from_file_location("bench_table", os.path.join(ROOT, "scripts", "bench_table.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _bench_table()
DOCS = BENCH.documents()


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _name(path):
    return os.path.relpath(path, ROOT)


def _prose(text):
    """`text` without fenced code blocks, whose lines are neither headings nor links."""
    return re.sub(r"(?ms)^ *```.*?^ *```[^\n]*$", "", text)


def test_the_documents_are_the_readme_and_docs():
    names = [_name(p) for p in DOCS]
    assert names[0] == "README.md"
    assert {"docs/benchmarks.md", "docs/method.md"} <= set(names)


def test_readme_starts_with_exactly_the_two_commands():
    text = _read(README)
    assert text.startswith("# raypose\n")
    first = re.search(r"(?ms)^```bash\n(.*?)^```$", text)
    assert first is not None, "README.md has no bash block"
    assert first.group(1) == COMMANDS


def test_readme_is_short():
    """A newcomer reads the README whole: the commands, what raypose is, the headline figures; the
    rest lives in docs/ (issue #24: at most 12,000 characters, counted as `wc -c` does)."""
    size = os.path.getsize(README)
    assert size <= 12000, f"README.md is {size} bytes; move detail into docs/ (at most 12,000)"


def test_config_keys_block_is_generated_from_the_config():
    start, end = BENCH.CONFIG_MARKERS
    found = re.findall(rf"{re.escape(start)}\n(.*?)\n{re.escape(end)}", _read(USAGE), re.DOTALL)
    assert len(found) == 1, f"docs/usage.md needs exactly one {start} ... {end} block"
    assert found[0] == flags.markdown_table(), "the table of config keys is stale: run python scripts/bench_table.py"
    elsewhere = [_name(p) for p in DOCS if p != USAGE and start in _read(p)]
    assert not elsewhere, f"the table of config keys belongs in docs/usage.md only, not in {elsewhere}"


def _bench_blocks(text):
    """[(NAME, body)] of every `<!-- bench:NAME -->` block in `text`."""
    blocks = re.findall(r"<!-- bench:([\w-]+) -->\n(.*?)\n?<!-- /bench:\1 -->", text, re.DOTALL)
    opened = re.findall(r"<!-- bench:([\w-]+) -->", text)
    assert sorted(n for n, _ in blocks) == sorted(opened), "a bench block is not closed"
    return blocks


@pytest.mark.parametrize("path", DOCS, ids=_name)
def test_bench_blocks_are_rendered_from_the_json(path):
    rendered = BENCH.blocks()   # only the blocks whose JSON exists: the others are skipped
    for name, body in _bench_blocks(_read(path)):
        if name in rendered:
            assert body == rendered[name], (f"{_name(path)}: bench:{name} differs from benchmarks/ "
                                            "(run python scripts/bench_table.py)")


def test_every_rendered_table_appears_somewhere():
    shown = {name for path in DOCS for name, _ in _bench_blocks(_read(path))}
    missing = set(BENCH.blocks()) - shown
    assert not missing, f"benchmark tables rendered into no document: {sorted(missing)}"


def test_readme_has_the_summary_and_docs_the_rest():
    readme = {name for name, _ in _bench_blocks(_read(README))}
    assert readme == {"summary"}, readme


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(text):
    seen, out = {}, set()
    for heading in re.findall(r"(?m)^#{1,6} +(.+?) *#*$", _prose(text)):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("path", DOCS, ids=_name)
def test_relative_links_point_at_existing_files(path):
    text = _prose(_read(path))
    text = re.sub(r"`[^`\n]*`", "", text)   # inline code is not a link
    links = re.findall(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)
    broken = []
    for link in links:
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):   # http:, https:, mailto:
            continue
        target, _, anchor = link.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), target)) if target else path
        if not os.path.exists(dest):
            broken.append(f"{link} (no {os.path.relpath(dest, ROOT)})")
        elif anchor and dest.endswith(".md") and anchor not in _anchors(_read(dest)):
            broken.append(f"{link} (no heading #{anchor} in {os.path.relpath(dest, ROOT)})")
    assert not broken, f"{_name(path)}: broken links: {broken}"


@pytest.mark.parametrize("command", ["prepare", "synth", "demo", "train", "tune", "evaluate", "predict", "plot",
                                     "export", "export-member", "import-members"])
def test_every_commands_help_renders(command, capsys):
    """argparse formats help texts with %: a stray one in an option's help breaks --help."""
    from raypose.cli import main
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0 and "usage: raypose" in capsys.readouterr().out
