"""A tab's output folder as the page may see it: the latest images, for the Open folder button's gallery.

A1111's button opens a file browser on the server's desktop; here the page gets a gallery of the
newest image files instead (served copies, see webui/ui/served_files.py). With logins on, a user
who is not an admin sees only the images of their own jobs (those the job queue still knows).
"""

from __future__ import annotations

import heapq
import os
from pathlib import Path

from webui.auth.users import User
from webui.jobs import JobState
from webui.ui.protocol import StudioView

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
LIMIT = 50


def tab_folder(studio: StudioView, tab: str) -> tuple[str, Path]:
    """The tab's image folder as set (``outdir_<tab>_samples``, under ``outdir_samples`` when that is
    set, as the runner saves) and as a path; ValueError when the tab has none or it is not allowed."""
    try:
        setting = str(studio.options.get(f"outdir_{tab}_samples"))
    except (KeyError, AttributeError, ValueError):
        raise ValueError(f"the {tab} tab has no output folder") from None
    shared = str(studio.options.get("outdir_samples") or "")
    folder = str(Path(shared) / Path(setting).name) if shared else setting
    return folder, studio.paths.outputs(folder)


def latest_images(studio: StudioView, tab: str, user: User, limit: int = LIMIT) -> list[Path]:
    """The newest image files of the tab's folder (and its dated subfolders), newest first."""
    _, root = tab_folder(studio, tab)
    if studio.auth.enabled and not user.is_admin:
        candidates = _own_images(studio, tab, user.name, root)
    else:
        candidates = _folder_images(root)
    return [path for _, path in heapq.nlargest(limit, candidates, key=lambda item: item[0])]


def _folder_images(root: Path) -> list[tuple[float, Path]]:
    found: list[tuple[float, Path]] = []
    folders = [root]
    for depth in range(2):  # the folder and its dated subfolders (save_to_dirs)
        next_folders = []
        for folder in folders:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        next_folders.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False) and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                        found.append((entry.stat(follow_symlinks=False).st_mtime, Path(entry.path)))
                except OSError:
                    continue
        folders = next_folders if depth == 0 else []
    return found


def _own_images(studio: StudioView, tab: str, owner: str, root: Path) -> list[tuple[float, Path]]:
    found: list[tuple[float, Path]] = []
    for job in studio.queue.list(owner=owner):
        mode = "img2img" if getattr(job.payload, "img2img", None) is not None else "txt2img"
        if job.state is not JobState.DONE or job.result is None or mode != tab:
            continue
        for image in getattr(job.result, "images", []):
            path = getattr(image, "path", None)
            if path is None:
                continue
            try:
                resolved = Path(path).resolve()
                if root in resolved.parents and resolved.is_file():
                    found.append((resolved.stat().st_mtime, resolved))
            except OSError:
                continue
    return found
