"""Zips an installed capcheck package (the "python" install component) as a
wheel: python3 make_wheel.py STAGE VERSION OUT_DIR; prints the wheel's path.

The tag is this interpreter's (cpXY-cpXY-linux_<arch>): the module is built
for one Python and one torch (the LibTorch it links). That torch is not a
requirement pip would fetch: it is the one already installed (Debian's
python3-torch, or the wheel the module was built against)."""

import base64
import hashlib
import os
import sys
import sysconfig
import zipfile

import torch


def main():
    stage, version, out_dir = sys.argv[1:4]
    package = os.path.join(stage, "capcheck")
    if not os.path.isdir(package):
        sys.exit("make_wheel.py: {} has no capcheck/ (cmake --install --component python)".format(stage))
    py = "cp{}{}".format(*sys.version_info[:2])
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    tag = "{}-{}-{}".format(py, py, platform)
    dist_info = "capcheck-{}.dist-info".format(version)
    torch_mm = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    files = {
        dist_info + "/METADATA": (
            "Metadata-Version: 2.1\nName: capcheck\nVersion: {}\n"
            "Summary: property-based checks of CUDA graph capture in LLM inference engines\n"
            "Requires-Python: =={}.{}.*\n"
            "Description: built for torch {}; import torch from that build\n"
        ).format(version, *sys.version_info[:2], torch_mm).encode(),
        dist_info + "/WHEEL": "Wheel-Version: 1.0\nGenerator: capcheck make_wheel.py\n"
                              "Root-Is-Purelib: false\nTag: {}\n".format(tag).encode(),
    }
    for name in sorted(os.listdir(package)):
        with open(os.path.join(package, name), "rb") as f:
            files["capcheck/" + name] = f.read()
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("{},sha256={},{}".format(name, digest, len(data)))
    record.append(dist_info + "/RECORD,,")
    files[dist_info + "/RECORD"] = ("\n".join(record) + "\n").encode()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "capcheck-{}-{}.whl".format(version, tag))
    partial = path + ".partial"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    os.replace(partial, path)  # never a half-written wheel under the final name
    print(path)


if __name__ == "__main__":
    main()
