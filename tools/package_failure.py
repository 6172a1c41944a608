"""What `make package` says when `chalice package` fails: for the common
offline case (pip could not get a Linux wheel of a requirement) one line that
says what to do, instead of chalice's traceback; anything else as chalice
wrote it.

    python -m tools.package_failure <chalice's stderr file>
"""

import re
import sys
from pathlib import Path

_NO_WHEEL = re.compile(r"NoSuchPackageError: Could not satisfy the requirement: (\S+)")


def message(stderr: str) -> str:
    found = _NO_WHEEL.search(stderr)
    if found is None:
        return stderr.rstrip()
    return (f"package: no Linux (manylinux x86_64) wheel of {found[1]} could be fetched: "
            "run it online, or offline with PIP_NO_INDEX=1 PIP_FIND_LINKS=<a folder of "
            "those wheels> make package")


def main(argv: list[str]) -> int:
    print(message(Path(argv[1]).read_text(errors="replace")), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
