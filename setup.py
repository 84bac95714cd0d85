"""Optional compiled build of the matching engine and the command step.

`MYPYC_ENGINE=1` compiles the pure modules of `ome.engine` to C extensions with
mypyc (same source, same behaviour: the engine tests run against both
builds), which more than makes up the gap to C++ books that pure CPython
cannot (bench/engine.py). It compiles the command step with them (the
`Machine` of `ome.commands` and the records, outbox and state it changes):
a start replays it once per journal record, and compiled it calls the
compiled engine directly (replay 1.1x, bench/journal.py). It needs mypy in
the build environment and a C compiler, so it is opt-in:
`MYPYC_ENGINE=1 pip wheel --no-build-isolation .`. Without it the package is
pure Python and installs anywhere.
"""

import os

from setuptools import setup

COMPILED_MODULES = [
    "ome/engine/book.py",
    "ome/engine/orders.py",
    "ome/engine/errors.py",
    "ome/commands.py",
    "ome/records.py",
    "ome/outbox.py",
    "ome/state.py",
]

if os.environ.get("MYPYC_ENGINE") == "1":
    from mypyc.build import mypycify

    setup(ext_modules=mypycify(COMPILED_MODULES, opt_level="3"))
else:
    setup()
