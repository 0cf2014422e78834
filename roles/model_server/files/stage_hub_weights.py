# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Download one model revision from the Hugging Face Hub (or HF_ENDPOINT, a mirror) into a directory.

Run by roles/model_server/tasks/weights.yml with the model server venv's Python, which has huggingface_hub
(vLLM depends on it): stage_hub_weights.py REPO_ID REVISION DEST. HF_TOKEN, HF_ENDPOINT and HF_HUB_OFFLINE come
from the environment. Online, the files go straight into DEST. Offline (air-gapped sites), huggingface_hub
reads only its cache (HF_HOME) and, given a local_dir, would look in DEST alone and fail; so the snapshot is
resolved in the cache and its files copied into DEST (the cache's symlinks followed).
Prints one JSON line: the revision, DEST and the files in it.
"""

import json
import os
import shutil
import sys


def _offline():
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def main(argv):
    repo_id, revision, dest = argv[1:4]
    from huggingface_hub import snapshot_download

    if _offline():
        cached = snapshot_download(repo_id=repo_id, revision=revision)
        shutil.copytree(cached, dest, symlinks=False, dirs_exist_ok=True)
    else:
        snapshot_download(repo_id=repo_id, revision=revision, local_dir=dest)
    files = sorted(os.path.relpath(os.path.join(root, name), dest)
                   for root, _dirs, names in os.walk(dest) for name in names
                   if not os.path.relpath(root, dest).startswith(".cache"))
    if not files:
        print(json.dumps({"failed": True, "msg": f"{repo_id}@{revision}: no files in {dest}"}))
        return 1
    print(json.dumps({"repo_id": repo_id, "revision": revision, "path": dest, "files": files}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
