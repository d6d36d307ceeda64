"""Faults in the update itself: one of the image's bundles taken apart, its root file system changed, put
back together and signed again, as the OS profile's `update.repack` says. hil's own format is rebuilt
natively (it carries checksums, no signature); any other by the profile's commands, run on the host with
what they work on in the environment (HIL_BUNDLE, HIL_CONTENT, HIL_OUT, HIL_IMAGE_DIR), never pasted
into their text. Each command is bounded in time and its whole process group is killed past the bound.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from hil.errors import FaultError
from hil.images import hil_bundle
from hil.os.model import Repack

COMMAND_SECONDS = 900.0  # unpacking or packing a root of a few GiB, signing included
_SAID = 600  # characters of a failing command's output quoted in the error

# The root file system as the change is given it: a bare ext2/3/4 file system in a raw file.
Change = Callable[[Path], list[str]]


def rebuild(
    bundle: Path, out: Path, how: Literal["hil"] | Repack, image_dir: Path, change: Change
) -> list[str]:
    """`bundle` rebuilt at `out` with `change` made to its root; what the change did. FaultError when the
    bundle cannot be taken apart or put back together (the command's own words quoted)."""
    with tempfile.TemporaryDirectory(prefix=".hil-repack-", dir=out.parent) as tmp:
        work = Path(tmp)
        if how == "hil":
            root = work / "rootfs.img"
            manifest = hil_bundle.unpack(bundle, root)
            done = change(root)
            hil_bundle.repack(manifest, root, out)
            return done
        content = work / "content"  # not made: the unpack command makes it (rauc extract insists)
        env = {"HIL_BUNDLE": bundle, "HIL_CONTENT": content, "HIL_OUT": out, "HIL_IMAGE_DIR": image_dir}
        _host(how.unpack, env, work, f"unpacking {bundle.name} (update.repack.unpack)")
        root = (content / how.rootfs).resolve()
        if not root.is_relative_to(content.resolve()) or not root.is_file():
            raise FaultError(
                f"unpacking {bundle.name} left no file {how.rootfs} in HIL_CONTENT (update.repack.rootfs)"
            )
        done = change(root)
        _host(how.pack, env, work, f"packing {out.name} (update.repack.pack)")
        if not out.is_file():
            raise FaultError(f"packing {out.name} (update.repack.pack) wrote no file at HIL_OUT")
        return done


def _host(command: str, env: dict[str, Path], cwd: Path, what: str) -> None:
    """Run one of the profile's host commands; FaultError naming what failed and quoting its output."""
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command], cwd=cwd, env={**os.environ, **{k: str(v) for k, v in env.items()}},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=COMMAND_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):  # the whole group: rauc's mksquashfs, say
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise FaultError(f"{what} did not finish within {COMMAND_SECONDS:.0f} s") from None
    if proc.returncode != 0:
        said = output.decode(errors="replace").strip()[-_SAID:]
        raise FaultError(f"{what} exited {proc.returncode}: {said or 'it said nothing'}")
