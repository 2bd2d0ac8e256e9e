"""The kubectl the manifest tests render with: its built-in kustomize must be v4 or later
(overlays use `patches:` with targets). Debian bookworm's kubernetes-client is kubectl 1.20 with
kustomize v2, which cannot render them; say so instead of failing on a YAML error."""

import re
import shutil
import subprocess


def kubectl(require):
    path = shutil.which("kubectl")
    require(path, "kubectl is not installed (run scripts/setup)")
    out = subprocess.run([path, "version", "--client"], capture_output=True, text=True, check=False)
    found = re.search(r"Kustomize Version: v(\d+)", out.stdout)
    require(
        found and int(found.group(1)) >= 4,
        f"{path} has no kustomize v4+ built in (kubectl >= 1.21 needed); it says: {out.stdout.strip()!r}",
    )
    return path
