#!/usr/bin/env python3
"""Build the offline Python package index (PEP 503 "simple" layout) from Debian's packages.

Each wheel is repacked from the files a Debian package installed under /usr/lib/python3/dist-packages,
so the index holds exactly Debian 12's pandas, numpy and their dependencies, for Debian 12's Python
(3.11), which is what the python:3.11-slim stand-in runs. Run inside the build stage of
sandbox-server/images/pypi/Dockerfile, after `apt-get install` of the packages below.

Output (argv[1], default /srv/pypi):
  simple/index.html, simple/<project>/index.html   the index pip reads
  packages/<wheel>                                  the wheels, linked with #sha256=
  not-in-index.tar.gz                               what the mirror answers for any other project:
                                                    an sdist whose build stops with a message that
                                                    says what this index is and what it holds
"""
import base64
import csv
import email.parser
import hashlib
import html
import io
import os
import platform
import re
import subprocess
import sys
import tarfile
import zipfile

DIST = "/usr/lib/python3/dist-packages"
PY_TAG = "cp%d%d" % sys.version_info[:2]

# project -> the Debian packages it is repacked from, and its dependencies. Debian strips the
# install_requires of some packages (pandas' egg-info has none), so they are written here, as in
# the upstream release's metadata.
PROJECTS = {
    "numpy": {"debs": ["python3-numpy"], "requires": [], "requires_python": ">=3.8"},
    "pandas": {
        "debs": ["python3-pandas", "python3-pandas-lib"],
        "requires": ["numpy>=1.23.2", "python-dateutil>=2.8.1", "pytz>=2020.1"],
        "requires_python": ">=3.8",
    },
    "python-dateutil": {"debs": ["python3-dateutil"], "requires": ["six>=1.5"], "requires_python": None},
    "pytz": {"debs": ["python3-tz"], "requires": [], "requires_python": None},
    "six": {"debs": ["python3-six"], "requires": [], "requires_python": None},
}

# Libraries every Debian 12 system has (glibc, the GCC runtime): extension modules may link to them.
# Anything else an extension module needs (numpy: BLAS, LAPACK, gfortran) goes into the wheel, in
# <package>.libs/, found through an $ORIGIN run path, as auditwheel does for manylinux wheels.
SYSTEM_LIBS = re.compile(r"^(libc|libm|libdl|librt|libpthread|libutil|libgcc_s|libstdc\+\+|ld-linux[-a-z0-9_]*)\.so")


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def dpkg_files(deb):
    out = subprocess.run(["dpkg", "-L", deb], check=True, capture_output=True, text=True).stdout
    return [p for p in out.splitlines() if p.startswith(DIST + "/") and os.path.isfile(p)]


def needed_libs(path):
    """(soname, resolved path) of the libraries `path` needs that Debian's base does not have."""
    out = subprocess.run(["ldd", path], check=True, capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if m and not SYSTEM_LIBS.match(m.group(1)):
            if m.group(2) == "not":
                sys.exit(f"{path} needs {m.group(1)}, which is not installed in the build stage")
            libs.append((m.group(1), os.path.realpath(m.group(2))))
    return libs


def patch_runpath(path, runpath):
    subprocess.run(["patchelf", "--set-rpath", runpath, path], check=True)


class Wheel:
    def __init__(self, name, version, tag):
        self.name, self.version, self.tag = name, version, tag
        self.files = {}  # archive path -> bytes

    @property
    def filename(self):
        return f"{self.name.replace('-', '_')}-{self.version}-{self.tag}.whl"

    def add(self, arcname, data):
        self.files[arcname] = data

    def write(self, folder, metadata, extra_info):
        info = f"{self.name.replace('-', '_')}-{self.version}.dist-info"
        purelib = self.tag.endswith("none-any")
        self.add(f"{info}/METADATA", metadata.encode())
        self.add(f"{info}/WHEEL", (
            "Wheel-Version: 1.0\nGenerator: shipshape build-index.py (repacked from Debian packages)\n"
            f"Root-Is-Purelib: {'true' if purelib else 'false'}\nTag: {self.tag}\n").encode())
        for fname, data in extra_info.items():
            self.add(f"{info}/{fname}", data)
        rows = [[p, record_hash(d), str(len(d))] for p, d in sorted(self.files.items())]
        rows.append([f"{info}/RECORD", "", ""])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        self.add(f"{info}/RECORD", buf.getvalue().encode())
        path = os.path.join(folder, self.filename)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for arcname, data in sorted(self.files.items()):
                zi = zipfile.ZipInfo(arcname, date_time=(2023, 1, 1, 0, 0, 0))
                zi.compress_type = zipfile.ZIP_DEFLATED
                zi.external_attr = (0o755 if arcname.endswith(".so") or ".libs/" in arcname else 0o644) << 16
                z.writestr(zi, data)
        return path


def build_project(name, spec, folder, workdir):
    files = []
    for deb in spec["debs"]:
        files += dpkg_files(deb)
    egg_info = [p for p in files if ".egg-info/" in p or ".dist-info/" in p]
    pkg_info = next(p for p in egg_info if p.endswith(("/PKG-INFO", "/METADATA")))
    meta = email.parser.Parser().parsestr(open(pkg_info, encoding="utf-8").read())
    version = meta["Version"]
    for header in ("Requires-Dist", "Requires-Python", "Provides-Extra"):
        del meta[header]
    for req in spec["requires"]:
        meta["Requires-Dist"] = req
    if spec["requires_python"]:
        meta["Requires-Python"] = spec["requires_python"]
    extra_info = {}
    for p in egg_info:
        base = os.path.basename(p)
        if base in ("entry_points.txt", "top_level.txt"):
            extra_info[base] = open(p, "rb").read()

    # Test suites stay out (pandas' alone is 36 MB): pip compiles every .py it installs, and on a
    # one-CPU sandbox the tests tripled the time of `pip install pandas`. pandas.test() is not there.
    code = [p for p in files if p not in egg_info and "/__pycache__/" not in p and not p.endswith(".pyc")
            and "/tests/" not in p and not p.endswith("/conftest.py")]
    binary = any(p.endswith(".so") for p in code)
    tag = f"{PY_TAG}-{PY_TAG}-linux_{platform.machine()}" if binary else "py3-none-any"
    wheel = Wheel(name, version, tag)

    # Extension modules: copy to a work folder, bundle what they need, point their run path at it.
    top = os.path.relpath(code[0], DIST).split("/")[0].removesuffix(".py")
    libs_dir = f"{top}.libs"
    vendored = {}
    for p in code:
        arcname = os.path.relpath(p, DIST)
        if not p.endswith(".so"):
            wheel.add(arcname, open(p, "rb").read())
            continue
        needs = needed_libs(p)
        copy = os.path.join(workdir, arcname)
        os.makedirs(os.path.dirname(copy), exist_ok=True)
        subprocess.run(["cp", p, copy], check=True)
        if needs:
            depth = arcname.count("/")
            patch_runpath(copy, "$ORIGIN/" + "../" * depth + libs_dir)
            for soname, real in needs:
                vendored[soname] = real
        wheel.add(arcname, open(copy, "rb").read())
    for soname, real in sorted(vendored.items()):
        copy = os.path.join(workdir, libs_dir, soname)
        os.makedirs(os.path.dirname(copy), exist_ok=True)
        subprocess.run(["cp", real, copy], check=True)
        patch_runpath(copy, "$ORIGIN")  # liblapack finds libblas and libgfortran beside it
        wheel.add(f"{libs_dir}/{soname}", open(copy, "rb").read())
    path = wheel.write(folder, meta.as_string(), extra_info)
    return wheel, spec["requires_python"], path, sorted(vendored)


def build_tzdata(folder):
    """The `tzdata` project (the IANA database as a Python package, as on PyPI) from Debian's tzdata."""
    zoneinfo = "/usr/share/zoneinfo"
    first = open(os.path.join(zoneinfo, "tzdata.zi"), encoding="utf-8").readline()
    iana = re.match(r"#\s*version\s+(\d{4})([a-z])", first)
    version = f"{iana.group(1)}.{ord(iana.group(2)) - ord('a') + 1}"  # 2026b -> 2026.2, PyPI's scheme
    wheel = Wheel("tzdata", version, "py2.py3-none-any")
    wheel.add("tzdata/__init__.py", f'IANA_VERSION = "{iana.group(1)}{iana.group(2)}"\n'.encode())
    zones = []
    for root, dirs, names in os.walk(zoneinfo):
        rel = os.path.relpath(root, zoneinfo)
        dirs[:] = sorted(d for d in dirs if not (rel == "." and d in ("posix", "right")))
        pkg = "tzdata/zoneinfo" + ("" if rel == "." else "/" + rel)
        wheel.add(f"{pkg}/__init__.py", b"")
        for n in sorted(names):
            if rel == "." and n in ("localtime", "posixrules", "leap-seconds.list"):
                continue
            data = open(os.path.join(root, n), "rb").read()
            wheel.add(f"{pkg}/{n}", data)
            if data.startswith(b"TZif"):
                zones.append(n if rel == "." else f"{rel}/{n}")
    wheel.add("tzdata/zones", ("\n".join(sorted(zones)) + "\n").encode())
    meta = (f"Metadata-Version: 2.1\nName: tzdata\nVersion: {version}\n"
            "Summary: Provider of IANA time zone data (repacked from Debian's tzdata)\n"
            "License: Apache-2.0\nRequires-Python: >=2\n")
    path = wheel.write(folder, meta, {})
    return wheel, ">=2", path, []


PLACEHOLDER_BACKEND = '''"""The build backend of every project this offline index does not hold: it refuses, saying why."""
import sys

MESSAGE = """
This package is not in this course's offline package index.

The sandboxes here have no internet; their pip reads a small index beside the registry mirror,
built from Debian 12's packages. It holds only these projects, one version each:
  {projects}

- Use one of those (a pin to another version fails: pandas==1.5.3, not pandas==2.2.0), or
- on a machine with internet, the same Dockerfile installs anything from pypi.org.
"""


def _refuse(*args, **kwargs):
    sys.stderr.write(MESSAGE)
    raise SystemExit(1)


get_requires_for_build_wheel = prepare_metadata_for_build_wheel = build_wheel = _refuse
get_requires_for_build_sdist = build_sdist = _refuse
'''


def build_placeholder(out, projects):
    """One sdist the mirror hands out for any unknown project (see nginx.conf). Its pyproject.toml names
    an in-tree backend with no requirements, so pip needs nothing else from the index to run it."""
    files = {
        "not-in-index/pyproject.toml": b'[build-system]\nrequires = []\nbuild-backend = "refuse"\nbackend-path = ["."]\n',
        "not-in-index/refuse.py": PLACEHOLDER_BACKEND.replace("{projects}", ", ".join(projects)).encode(),
        "not-in-index/PKG-INFO": b"Metadata-Version: 2.1\nName: not-in-index\nVersion: 0.0.0\n",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), 1672531200, 0o644
            tar.addfile(ti, io.BytesIO(data))
    with open(os.path.join(out, "not-in-index.tar.gz"), "wb") as f:
        f.write(buf.getvalue())


def page(title, links):
    body = "\n".join(links)
    return (f'<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
            f"<title>{html.escape(title)}</title></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/srv/pypi"
    packages = os.path.join(out, "packages")
    os.makedirs(packages, exist_ok=True)
    work = "/tmp/build-index"
    built = [build_project(n, s, packages, os.path.join(work, n)) for n, s in PROJECTS.items()]
    built.append(build_tzdata(packages))
    names = sorted(canonical(w.name) for w, *_ in built)
    versions = sorted(f"{canonical(w.name)} {w.version}" for w, *_ in built)
    os.makedirs(os.path.join(out, "simple"), exist_ok=True)
    with open(os.path.join(out, "simple", "index.html"), "w") as f:
        f.write(page("Offline package index (Debian 12 packages)", [f'<a href="{n}/">{n}</a><br>' for n in names]))
    for wheel, requires_python, path, vendored in built:
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
        rp = f' data-requires-python="{html.escape(requires_python)}"' if requires_python else ""
        folder = os.path.join(out, "simple", canonical(wheel.name))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "index.html"), "w") as f:
            f.write(page(f"Links for {canonical(wheel.name)}",
                         [f'<a href="../../packages/{wheel.filename}#sha256={digest}"{rp}>{wheel.filename}</a><br>']))
        extra = f" (bundles {', '.join(vendored)})" if vendored else ""
        print(f"{wheel.filename}: {os.path.getsize(path) // 1024} KiB{extra}")
    build_placeholder(out, versions)


if __name__ == "__main__":
    main()
