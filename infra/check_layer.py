#!/usr/bin/env python3
"""Checks a layer zip: the binary is at extensions/adaptive-batching-extension with its run bit, is an
ELF for the right architecture, and needs no glibc newer than the given version (so it runs on
Amazon Linux 2, glibc 2.26, as well as Amazon Linux 2023).

usage: check_layer.py LAYER.zip x86_64|arm64 MAX_GLIBC
"""
import re
import subprocess
import sys
import tempfile
import zipfile

MEMBER = "extensions/adaptive-batching-extension"
# e_machine values of the ELF header.
MACHINES = {"x86_64": 62, "arm64": 183}


def version(v):
    return tuple(int(x) for x in v.split("."))


def main():
    path, arch, max_glibc = sys.argv[1], sys.argv[2], sys.argv[3]
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        if names != [MEMBER]:
            sys.exit(f"{path}: expected exactly {MEMBER}, found {names}")
        info = z.getinfo(MEMBER)
        mode = info.external_attr >> 16
        if mode & 0o111 != 0o111:
            sys.exit(f"{path}: {MEMBER} is not executable (mode {oct(mode)})")
        data = z.read(MEMBER)
    if data[:4] != b"\x7fELF":
        sys.exit(f"{path}: {MEMBER} is not an ELF binary")
    machine = int.from_bytes(data[18:20], "little")
    if machine != MACHINES[arch]:
        sys.exit(f"{path}: ELF machine {machine}, expected {MACHINES[arch]} for {arch}")
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        info = subprocess.run(["readelf", "--version-info", "--wide", f.name], capture_output=True, text=True, check=True).stdout
        dynamic = subprocess.run(["readelf", "--dynamic", "--wide", f.name], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)
    glibc = sorted({v for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", info)}, key=version)
    if glibc and version(glibc[-1]) > version(max_glibc):
        newer = [v for v in glibc if version(v) > version(max_glibc)]
        sys.exit(f"{path}: needs GLIBC_{glibc[-1]} (symbols versioned {', '.join(newer)}), above {max_glibc}")
    highest = glibc[-1] if glibc else "none (no dynamic libc)"
    print(f"{path}: {arch} ELF at {MEMBER}, mode {oct(mode)}, {len(data)} bytes, "
          f"needs {', '.join(needed) or 'nothing'}; highest GLIBC {highest} <= {max_glibc}: ok")


if __name__ == "__main__":
    main()
