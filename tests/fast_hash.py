"""`make check`'s cheaper password hashing (TEST_FAST_HASH=1).

The fast loop hashes passwords at scrypt N=2^10 instead of 2^14: a signup or a
login then costs about 20 ms instead of 0.3 s. The unknown-username hash
follows, so an unknown name still costs what a wrong password costs. `make
test` keeps the production cost, and the tests that look at the cost itself
are marked slow. Nothing outside tests/ reads TEST_FAST_HASH.

`python -m tests.fast_hash ARGS` is tools.local_server with the same switch:
conftest starts its HTTP servers through it in the fast loop.
"""

import os
import sys

ON = os.environ.get("TEST_FAST_HASH") == "1"


def apply() -> None:
    if not ON:
        return
    from chalicelib import credentials

    production = f"${credentials.SCRYPT_N}$"
    assert production in credentials._DUMMY_HASH, "the unknown-username hash must follow"
    credentials.SCRYPT_N = 2**10
    credentials._DUMMY_HASH = credentials._DUMMY_HASH.replace(production, "$1024$", 1)


if __name__ == "__main__":
    apply()
    from tools import local_server

    sys.exit(local_server.main(sys.argv[1:]))
