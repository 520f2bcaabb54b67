"""Dataset names as LeRobot users write them: a local directory, or a Hugging Face Hub id ``user/name``.

``resolve_dataset(name)`` is the one place a dataset name becomes a directory; ``load_meta`` calls it, so
every reader (``vla-dataset``, ``vla-train``, ``VLADataset``) takes both forms:

- an existing path is that path;
- otherwise a name shaped like a repo id (``user/name``: two segments of letters, digits, ``-``, ``_``,
  ``.``) is looked up through ``huggingface_hub.snapshot_download(name, repo_type="dataset")``, which
  returns the snapshot folder of the Hugging Face cache (``HF_HUB_CACHE``, by default
  ``~/.cache/huggingface/hub``, ``datasets--<user>--<name>/snapshots/<revision>/``). With ``HF_HUB_OFFLINE=1``
  only the cache is read (``local_files_only=True``); online, the Hub is asked for the newest revision,
  which is downloaded when the cache lacks it;
- anything else, or an id found in neither place, is a ``DatasetError`` naming both places looked at.
"""

from __future__ import annotations

import re
from pathlib import Path

from vla.data.layout import DatasetError

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
REPO_TYPE = "dataset"


def looks_like_repo_id(name: str) -> bool:
    return REPO_ID.fullmatch(name) is not None and ".." not in name


def resolve_dataset(name: str | Path) -> Path:
    """The directory of dataset ``name``: an existing path, else the Hub cache's snapshot of repo id ``name``."""
    path = Path(name)
    if path.exists():
        return path
    if not looks_like_repo_id(str(name)):
        raise DatasetError(path, "dataset directory not found")
    return _from_hub_cache(str(name), path)


def _from_hub_cache(repo_id: str, path: Path) -> Path:
    # Imported here: a local path (the common case) never pays for huggingface_hub's import.
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError

    cache = Path(constants.HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}"
    try:
        folder = snapshot_download(repo_id, repo_type=REPO_TYPE, local_files_only=constants.HF_HUB_OFFLINE)
    except (OSError, HFValidationError) as error:  # not cached, not on the Hub, no network, a bad id
        where = "the Hub was not asked (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else str(error)
        raise DatasetError(
            repo_id,
            f"no such directory ({path.resolve()}) and no dataset '{repo_id}' in the Hugging Face cache "
            f"({cache}); {where.splitlines()[0]}",
        ) from None
    return Path(folder)
