"""The man page, --help and README describe the same options."""

import os
import re
import subprocess

from conftest import FCGIWRAP, TOP_SRCDIR


def help_options():
    out = subprocess.run([FCGIWRAP, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"--([a-z][a-z-]+)", out)), set(re.findall(r"(?<![-\w])-([a-zA-Z]),", out))


def section(text, start, end):
    return text.split(start, 1)[1].split(end, 1)[0]


def man_options():
    with open(os.path.join(TOP_SRCDIR, "man", "fcgiwrap.8")) as f:
        text = section(f.read(), ".SH OPTIONS", "\n.SH ")
    lines = text.splitlines()
    # The tag line of each .TP item names the option.
    items = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line == ".TP"]
    longs, shorts = set(), set()
    for line in items:
        line = line.replace("\\-", "-")
        longs |= set(re.findall(r"--([a-z][a-z-]+)", line))
        shorts |= set(re.findall(r"(?<![-\w])-([a-zA-Z])\b", line))
    return longs, shorts


def readme_options():
    with open(os.path.join(TOP_SRCDIR, "README.md")) as f:
        text = section(f.read(), "## Options", "\n## ")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    longs, shorts = set(), set()
    for row in rows:
        first = row.split("|")[1]
        longs |= set(re.findall(r"--([a-z][a-z-]+)", first))
        shorts |= set(re.findall(r"`-([a-zA-Z])`", first))
    return longs, shorts


def test_same_long_options_everywhere():
    h, m, r = help_options()[0], man_options()[0], readme_options()[0]
    assert h, "no long options found in --help"
    assert h == m, "--help and man page differ: %s" % (h ^ m)
    assert h == r, "--help and README differ: %s" % (h ^ r)


def test_same_short_options_everywhere():
    h, m, r = help_options()[1], man_options()[1], readme_options()[1]
    assert h >= {"c", "f", "s", "p", "h"}
    assert h == m, "--help and man page differ: %s" % (h ^ m)
    assert h == r, "--help and README differ: %s" % (h ^ r)


def test_defaults_agree():
    out = subprocess.run([FCGIWRAP, "--help"], capture_output=True, text=True).stdout
    with open(os.path.join(TOP_SRCDIR, "man", "fcgiwrap.8")) as f:
        man = f.read()
    with open(os.path.join(TOP_SRCDIR, "README.md")) as f:
        readme = f.read()
    default = re.search(r"--concurrency=N\s+.*\(default (\d+)\)", out).group(1)
    assert "(default %s)" % default in man
    assert "default %s)" % default in readme
