# SPDX-License-Identifier: BSD-3-Clause
"""The documentation cannot drift from the code: every counter has its
entry in docs/operations.md (and no entry names a counter that does not
exist), every telemetry command is in docs/telemetry.md, every key the
configuration parser accepts is in docs/configuration.md, every XFRM
message and attribute of linux/xfrm.h is in docs/xfrm-compat.md, and every
relative link between the Markdown files resolves (files and #anchors)."""
import glob
import os
import re

import conftest

ROOT = conftest.ROOT


def read(*parts):
    return open(os.path.join(ROOT, *parts)).read()


def counters():
    return re.findall(r'^XG_(?:MIB|CNT)\(\w+, "(\w+)"', read("lib", "stats", "xg_mib.def"), re.M)


def test_every_counter_has_an_entry():
    doc = read("docs", "operations.md")
    entries = re.findall(r"^#### (\S+)$", doc, re.M)
    names = counters()
    assert len(names) > 50
    missing = [n for n in names if n not in entries]
    assert not missing, "no entry in docs/operations.md: %s" % missing
    unknown = [e for e in entries if re.match(r"(Xfrm|Xg)", e) and e not in names]
    assert not unknown, "docs/operations.md names counters that do not exist: %s" % unknown
    # In the order of the counter list (the MIB first, as /proc/net/xfrm_stat).
    assert [e for e in entries if e in names] == names


def test_every_telemetry_command_is_documented():
    cmds = set()
    for path in glob.glob(os.path.join(ROOT, "app", "*.c")):
        cmds |= set(re.findall(r'rte_telemetry_register_cmd\("(/xfrmgw/\w+)"', open(path).read()))
    assert {"/xfrmgw/stats", "/xfrmgw/sa", "/xfrmgw/policy", "/xfrmgw/port", "/xfrmgw/lcore",
            "/xfrmgw/log"} <= cmds
    doc = read("docs", "telemetry.md")
    man = read("docs", "xfrmgw.8")
    for c in cmds:
        assert "`%s" % c in doc, c
        assert c.replace("/", "/") in man, c


def test_every_config_key_is_documented():
    src = read("lib", "conf", "config.c")
    keys = set(re.findall(r'strcmp\(e\[i\]\.name, "(\w+)"\)', src))
    sections = set(re.findall(r'section_arg\(sec, "(\w+)"\)', src)) | \
        set(re.findall(r'strcmp\(sec, "(\w+)"\)', src))
    assert {"ipv4", "mtu", "exception", "prefix", "via", "rx", "socket", "socket_group"} <= keys
    doc = read("docs", "configuration.md")
    for k in keys:
        assert re.search(r"^\| `%s` \|" % k, doc, re.M), "key %s" % k
    for s in sections:
        assert re.search(r"^### `\[%s" % s, doc, re.M), "section %s" % s
    example = read("conf", "xfrmgw.conf")
    for k in keys:
        assert re.search(r"^%s = " % k, example, re.M), "conf/xfrmgw.conf lacks %s" % k


def test_xfrm_table_covers_linux():
    uapi = open("/usr/include/linux/xfrm.h").read()
    doc = read("docs", "xfrm-compat.md")
    msgs = set(re.findall(r"\b(XFRM_MSG_[A-Z]+)\b", uapi)) - {"XFRM_MSG_BASE", "XFRM_MSG_MAX"}
    attrs = set(re.findall(r"\bXFRMA_([A-Z0-9_]+)\b", uapi)) - {"MAX", "UNSPEC"}
    assert len(msgs) >= 25 and len(attrs) > 40
    for m in msgs:
        short = m[len("XFRM_MSG_"):]
        assert m in doc or re.search(r"`%s`" % short, doc) or \
            re.search(r"\b%s\b" % short, doc), m
    for a in attrs:
        assert re.search(r"\b(XFRMA_)?%s\b" % a, doc), a


def slug(heading):
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    out = set()
    for h in re.findall(r"^#{1,6} (.+)$", open(path).read(), re.M):
        s = slug(h)
        n = 1
        base = s
        while s in out:
            s = "%s-%d" % (base, n)
            n += 1
        out.add(s)
    return out


def markdown_files():
    files = [os.path.join(ROOT, "README.md")]
    for pattern in ("docs/*.md", "conf/*.md", "conf/*/*.md", "perf/*.md", "tests/*/*.md",
                    "lib/*/*.md"):
        files += glob.glob(os.path.join(ROOT, pattern))
    return files


def test_links_resolve():
    assert slug("`[route NAME]` (at most 1024)") == "route-name-at-most-1024"
    bad = []
    checked = 0
    for md in markdown_files():
        text = open(md).read()
        # Code blocks are not links.
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            checked += 1
            path, _, anchor = target.partition("#")
            dest = md if not path else os.path.normpath(os.path.join(os.path.dirname(md), path))
            if not os.path.exists(dest):
                bad.append("%s: %s (no file)" % (os.path.relpath(md, ROOT), target))
                continue
            if anchor and dest.endswith(".md") and anchor not in anchors(dest):
                bad.append("%s: %s (no heading)" % (os.path.relpath(md, ROOT), target))
    assert checked > 50
    assert not bad, "\n".join(bad)


def test_readme_points_at_every_doc():
    readme = read("README.md")
    for path in glob.glob(os.path.join(ROOT, "docs", "*.md")):
        name = os.path.basename(path)
        assert "docs/" + name in readme, name
