#!/usr/bin/env python3
"""Makes heapscope(1) from docs/cli.md, so the manual and the docs cannot drift apart.

usage: md_to_man.py CLI.md OUT.1 VERSION

Knows the Markdown that docs/cli.md uses: headings, paragraphs, tables (each row becomes a
tagged paragraph: the first cell the tag), fenced code, '-' lists, `code`, **bold**, links.
"""
import os
import re
import sys


def escape(text):
    text = text.replace("\\", "\\e").replace("-", "\\-")
    # Anything past ASCII as a named glyph: the page reads the same whatever the locale.
    return "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in text)


def inline(text):
    """Markdown inline markup to roff: `code` and **bold** in bold, links as their text."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    text = text.replace("\\|", "|")
    out = []
    for index, piece in enumerate(re.split(r"(`[^`]*`|\*\*[^*]+\*\*)", text)):
        if index % 2 == 1:
            inner = piece[1:-1] if piece.startswith("`") else piece[2:-2]
            out.append("\\fB" + escape(inner) + "\\fR")
        else:
            out.append(escape(piece))
    return "".join(out)


def line_safe(text):
    """A roff text line must not start with '.' or "'" (it would be a request)."""
    return "\\&" + text if text[:1] in (".", "'") else text


def table_cells(row):
    row = row.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|"):
        row = row[:-1]
    cells, current, i = [], "", 0
    while i < len(row):
        if row[i] == "\\" and i + 1 < len(row) and row[i + 1] == "|":
            current += "\\|"
            i += 2
            continue
        if row[i] == "|":
            cells.append(current.strip())
            current = ""
        else:
            current += row[i]
        i += 1
    cells.append(current.strip())
    return cells


def convert(markdown, version):
    out = [
        '.TH HEAPSCOPE 1 "" "heapscope %s" "User Commands"' % version,
        ".SH NAME",
        "heapscope \\- memory debugger and leak profiler for C and C++ programs",
        ".SH SYNOPSIS",
    ]
    lines = markdown.splitlines()
    synopsis = [l for l in lines if l.startswith("## `heapscope ")]
    for heading in synopsis:
        out.append(".br")
        out.append(inline(heading[3:].strip()))
    out += [".SH DESCRIPTION",
            "heapscope catches heap corruption when it happens, finds leaks and who made them, shows "
            "where memory goes over time, attaches to running processes, and gates CI with JSON and "
            "HTML reports. What follows is docs/cli.md of the version installed."]
    paragraph = []
    header_row = None

    def flush():
        if paragraph:
            out.append(".PP")
            out.append(line_safe(inline(" ".join(paragraph))))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            flush()
            out += [".PP", ".nf", ".RS 4"]
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                out.append(line_safe(escape(lines[i])))
                i += 1
            out += [".RE", ".fi"]
        elif line.startswith("# "):
            flush()  # the title: the NAME section says it
        elif line.startswith("## "):
            flush()
            out.append('.SH "%s"' % inline(line[3:].strip()).replace('"', "'").upper())
        elif line.startswith("### ") or line.startswith("#### "):
            flush()
            out.append('.SS "%s"' % inline(line.lstrip("#").strip()).replace('"', "'"))
        elif line.startswith("|"):
            flush()
            cells = table_cells(line)
            if all(re.fullmatch(r":?-+:?", c) for c in cells if c):
                pass  # the separator row
            elif header_row is None:
                header_row = cells  # column names: implied by the tags
            else:
                out.append(".TP")
                out.append(line_safe(inline(cells[0])))
                rest = [c for c in cells[1:] if c]
                if len(cells) == 3 and header_row and header_row[1].lower() == "default":
                    out.append(line_safe(inline("(default: %s) %s" % (cells[1], cells[2]))))
                else:
                    out.append(line_safe(" \\(em ".join(inline(c) for c in rest)))
        elif re.match(r"^\s*[-*] ", line):
            flush()
            text = re.sub(r"^\s*[-*] ", "", line)
            while i + 1 < len(lines) and lines[i + 1].startswith("  ") and not re.match(r"^\s*[-*] ", lines[i + 1]):
                i += 1
                text += " " + lines[i].strip()
            out += [".IP \\(bu 2", line_safe(inline(text))]
        elif not line.strip():
            flush()
            if not (i + 1 < len(lines) and lines[i + 1].startswith("|")):
                header_row = None
        else:
            paragraph.append(line.strip())
        if not line.startswith("|") and line.strip():
            header_row = header_row if line.startswith("|") else None
        i += 1
    flush()
    out += [".SH SEE ALSO", "valgrind(1), heaptrack(1); the docs/ folder of heapscope's sources"]
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: md_to_man.py CLI.md OUT.1 VERSION")
    with open(sys.argv[1], encoding="utf-8") as source:
        page = convert(source.read(), sys.argv[3])
    os.makedirs(os.path.dirname(os.path.abspath(sys.argv[2])), exist_ok=True)
    with open(sys.argv[2], "w", encoding="utf-8") as target:
        target.write(page)


if __name__ == "__main__":
    main()
