"""Rewrite the generated tables in README.md and docs/*.md from the committed results.

    python scripts/render_docs.py           # rewrite stale blocks (each file by temp file + rename)
    python scripts/render_docs.py --check   # exit 1 naming the stale files, write nothing

Blocks and their sources: `mia_tf/doc_blocks.py`. tests/test_docs.py runs the check.
"""

import argparse
import os
import sys

from mia_tf.doc_blocks import documents, render
from mia_tf.io import atomic_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args()
    stale = []
    for path in documents(ROOT):
        with open(path) as f:
            text = f.read()
        rendered = render(text, ROOT)
        if rendered != text:
            stale.append(os.path.relpath(path, ROOT))
            if not args.check:
                with atomic_path(path) as tmp, open(tmp, "w") as f:
                    f.write(rendered)
    verb = "stale" if args.check else "rewritten"
    print(f"{verb}: {', '.join(stale)}" if stale else "every generated block is up to date")
    sys.exit(1 if args.check and stale else 0)


if __name__ == "__main__":
    main()
