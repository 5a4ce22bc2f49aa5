"""The extension exports its module init function and nothing else: the
core's C++ symbols, cub's and the static CUDA runtime's stay local, so they
cannot interpose with another extension's copies of the same names."""

import shutil
import subprocess
import sys

import pytest

import detcore._C


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the ELF dynamic symbol table with nm")
@pytest.mark.skipif(shutil.which("nm") is None, reason="needs binutils' nm")
def test_only_the_module_init_function_is_exported():
    listing = subprocess.run(["nm", "-D", "--defined-only", detcore._C.__file__], capture_output=True, text=True,
                             check=True).stdout
    exported = sorted(line.split()[-1] for line in listing.splitlines() if line.strip())
    assert exported == ["PyInit__C"]
