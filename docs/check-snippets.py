#!/usr/bin/env python3
"""check-snippets.py [--excerpt-of SOURCE] INCLUDE_DIR MARKDOWN CC [CC_ARGS...]

Compiles every ```c block of MARKDOWN, in order, as one translation unit after <corral.h>
and the usual libc headers, so that a snippet in the docs is code that builds. With
--excerpt-of, each block must also appear verbatim in SOURCE (a compiled example), so that
it is the example's code and not a copy drifting away from it. Run by meson test
(docs/guide-snippets, docs/from-rust-snippets)."""
import subprocess
import sys
import tempfile

HEADERS = ["errno", "fcntl", "signal", "stdint", "stdio", "stdlib", "string", "unistd",
           "sys/stat"]


def c_blocks(path):
    blocks, inside, start, lines = [], False, 0, []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not inside and line.rstrip("\n") == "```c":
                inside, start, lines = True, number + 1, []
            elif inside and line.startswith("```"):
                inside = False
                blocks.append((start, "".join(lines)))
            elif inside:
                lines.append(line)
    return blocks


def main(argv):
    source = None
    if argv[:1] == ["--excerpt-of"]:
        source, argv = argv[1], argv[2:]
    include, md, cc = argv[0], argv[1], argv[2:]
    blocks = c_blocks(md)
    if not blocks:
        print(f"{md}: no ```c blocks")
        return 1
    failed = 0
    if source:
        with open(source, encoding="utf-8") as f:
            text = f.read()
        for start, code in blocks:
            if code not in text:
                print(f"{md}:{start}: this block is not verbatim in {source}")
                failed = 1
    unit = "#define _GNU_SOURCE\n#include <corral.h>\n"
    unit += "".join(f"#include <{h}.h>\n" for h in HEADERS)
    for start, code in blocks:
        unit += f'#line {start} "{md}"\n{code}'
    with tempfile.NamedTemporaryFile("w", suffix=".c") as tu:
        tu.write(unit)
        tu.flush()
        cmd = cc + ["-std=gnu17", "-I" + include, "-Wall", "-Wextra", "-Werror",
                    "-Wno-unused-function", "-Wno-unused-parameter", "-fsyntax-only", tu.name]
        if subprocess.run(cmd).returncode != 0:
            failed = 1
    if not failed:
        print(f"{md}: {len(blocks)} C blocks compile")
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
