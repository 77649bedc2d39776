"""Zips an installed capcheck package (the "python" install component) as a
wheel: python3 make_wheel.py STAGE VERSION OUT_DIR; prints the wheel's path.

The tag is this interpreter's (cpXY-cpXY-linux_<arch>): the module is built
for one Python and one torch (the LibTorch it links). That torch is not a
requirement pip would fetch: it is the one already installed (Debian's
python3-torch, or the wheel the module was built against).

scripts/wheel.sh runs this file; the build backend of `pip install .`
(python/build_backend/capcheck_build.py) imports it and calls write_wheel()
and write_dist_info(), passing the torch version it asked the interpreter
for (the backend's own process may not see torch under build isolation)."""

import base64
import hashlib
import os
import sys
import sysconfig
import zipfile

NAME = "capcheck"
SUMMARY = "property-based checks of CUDA graph capture in LLM inference engines"


def wheel_tag():
    """This interpreter's wheel tag, e.g. cp311-cp311-linux_x86_64."""
    py = "cp{}{}".format(*sys.version_info[:2])
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return "{}-{}-{}".format(py, py, platform)


def dist_info_name(version):
    """The wheel's .dist-info directory name."""
    return "{}-{}.dist-info".format(NAME, version)


def torch_major_minor(torch_version):
    """'2.11.0+cu130' -> '2.11'."""
    return ".".join(torch_version.split("+")[0].split(".")[:2])


def metadata_files(version, torch_version):
    """{path in the wheel: bytes} for METADATA and WHEEL. torch is not named
    as a requirement: the module works only with the torch it was built
    against, which is the one installed already."""
    dist_info = dist_info_name(version)
    return {
        dist_info + "/METADATA": (
            "Metadata-Version: 2.1\nName: {}\nVersion: {}\n"
            "Summary: {}\n"
            "Requires-Python: =={}.{}.*\n"
            "Description: built for torch {}; import torch from that build\n"
        ).format(NAME, version, SUMMARY, sys.version_info[0], sys.version_info[1],
                 torch_major_minor(torch_version)).encode(),
        dist_info + "/WHEEL": "Wheel-Version: 1.0\nGenerator: capcheck make_wheel.py\n"
                              "Root-Is-Purelib: false\nTag: {}\n".format(wheel_tag()).encode(),
    }


def write_dist_info(directory, version, torch_version):
    """Writes the .dist-info directory (METADATA, WHEEL) into `directory`, as
    PEP 517's prepare_metadata_for_build_wheel does; returns its name."""
    for name, data in metadata_files(version, torch_version).items():
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return dist_info_name(version)


def write_wheel(stage, version, out_dir, torch_version):
    """Zips STAGE/capcheck/ (cmake --install --component python --prefix
    STAGE) as OUT_DIR/capcheck-VERSION-TAG.whl; returns the wheel's path.
    Raises ValueError when STAGE has no capcheck/."""
    package = os.path.join(stage, NAME)
    if not os.path.isdir(package):
        raise ValueError("{} has no capcheck/ (cmake --install --component python)".format(stage))
    dist_info = dist_info_name(version)
    files = metadata_files(version, torch_version)
    for name in sorted(os.listdir(package)):
        with open(os.path.join(package, name), "rb") as f:
            files[NAME + "/" + name] = f.read()
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("{},sha256={},{}".format(name, digest, len(data)))
    record.append(dist_info + "/RECORD,,")
    files[dist_info + "/RECORD"] = ("\n".join(record) + "\n").encode()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "{}-{}-{}.whl".format(NAME, version, wheel_tag()))
    partial = path + ".partial"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    os.replace(partial, path)  # never a half-written wheel under the final name
    return path


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: make_wheel.py STAGE VERSION OUT_DIR")
    stage, version, out_dir = sys.argv[1:4]
    import torch  # the torch this interpreter imports: the one the module was built against
    try:
        print(write_wheel(stage, version, out_dir, torch.__version__))
    except ValueError as e:
        sys.exit("make_wheel.py: {}".format(e))


if __name__ == "__main__":
    main()
