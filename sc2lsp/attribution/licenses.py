"""License detection: SPDX headers, LICENSE/COPYING files, Python distribution metadata.

Pure functions over strings (``spdx_header``, ``identify``, ``is_license_file``,
``looks_like_license_text``) plus ``LicenseResolver``, which reads a corpus's LICENSE files
and ``*.dist-info`` folders once and answers, for each file, its license and where that came
from: ``"spdx-header"``, ``"file:<relative path of the LICENSE file>"`` or
``"dist-info:<name>"``.
"""

from __future__ import annotations

import re
from email.parser import HeaderParser
from pathlib import Path

_SPDX = re.compile(r"SPDX-License-Identifier:\s*([A-Za-z0-9.+\-]+(?:\s+(?:AND|OR|WITH)\s+[A-Za-z0-9.+\-()]+)*)")

#: (SPDX id, phrases that must all occur in the lower-cased, whitespace-collapsed text). Texts
#: that name another license in passing ("GPL-compatible") are why the permissive ones come first.
SIGNATURES: list[tuple[str, tuple[str, ...]]] = [
    ("PSF-2.0", ("python software foundation license",)),
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("MPL-2.0", ("mozilla public license", "2.0")),
    ("MIT", ("permission is hereby granted, free of charge",)),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "neither the name")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",)),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any purpose",)),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",)),
    ("Zlib", ("this software is provided 'as-is', without any express or implied warranty",)),
    ("AGPL-3.0", ("gnu affero general public license", "version 3")),
    ("LGPL-3.0", ("gnu lesser general public license", "version 3")),
    ("LGPL-2.1", ("gnu lesser general public license", "version 2.1")),
    ("LGPL-2.0", ("gnu library general public license",)),
    ("GPL-3.0", ("gnu general public license", "version 3")),
    ("GPL-2.0", ("gnu general public license", "version 2")),
]

#: Phrases that mark a span of text as license text (a header or the license itself).
LICENSE_PHRASES = (
    "permission is hereby granted, free of charge", "licensed under the apache license",
    "redistribution and use in source and binary forms", "gnu general public license",
    "gnu lesser general public license", "the above copyright notice and this permission notice",
    "this program is free software", "without warranties or conditions of any kind",
    "the software is provided \"as is\"", "this software is provided by the copyright holders",
    "mozilla public license", "python software foundation license", "spdx-license-identifier",
    "you may not use this file except in compliance with the license",
    "distributed under the license is distributed on an \"as is\" basis",
)

_LICENSE_NAMES = re.compile(r"^(license|licence|copying|notice|copyright|unlicense)([-._].*)?$", re.I)

#: ``LICENSE-MIT`` + ``LICENSE-APACHE`` side by side: the dual-license convention (Rust, many
#: others), the user picks one: ``Apache-2.0 OR MIT`` (ids sorted)
_SUFFIXED = re.compile(r"^licen[cs]e[-_.](?!txt$|md$|rst$)", re.I)


def _several(licenses: dict[str, str]) -> str:
    """An SPDX expression for a folder whose license files name several licenses (``licenses``:
    SPDX id -> file): ``A OR B`` when each is named ``LICENSE-<name>`` (dual licensing), else
    ``A AND B`` (e.g. a project license and a notice of bundled code: both apply)."""
    dual = all(_SUFFIXED.match(where.rsplit("/", 1)[-1]) for where in licenses.values())
    return (" OR " if dual else " AND ").join(sorted(licenses))


_CLASSIFIER_SPDX = {
    "MIT License": "MIT", "BSD License": "BSD", "Apache Software License": "Apache-2.0",
    "Python Software Foundation License": "PSF-2.0", "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0", "GNU General Public License v2 (GPLv2)": "GPL-2.0",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0", "ISC License (ISCL)": "ISC",
    "The Unlicense (Unlicense)": "Unlicense",
}


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


def spdx_header(text: str) -> str | None:
    """The expression of an ``SPDX-License-Identifier:`` line in the first 4 kB, if any."""
    m = _SPDX.search(text[:4096])
    return m.group(1).strip() if m else None


def identify(text: str) -> str | None:
    """The SPDX id of a license text (a LICENSE file, a license header), or None."""
    t = _squash(text[:20000])
    for spdx, phrases in SIGNATURES:
        if all(p in t for p in phrases):
            return spdx
    return None


def is_license_file(rel_path: str) -> bool:
    parts = rel_path.split("/")
    name = parts[-1]
    return bool(_LICENSE_NAMES.match(name)) or (len(parts) > 1 and parts[-2].lower() in ("licenses", "license"))


def looks_like_license_text(text: str) -> bool:
    t = _squash(text)
    return any(p in t for p in LICENSE_PHRASES)


def _metadata_license(meta_text: str) -> str | None:
    msg = HeaderParser().parsestr(meta_text, headersonly=True)
    expr = msg.get("License-Expression")
    if expr:
        return expr.strip()
    lic = (msg.get("License") or "").strip()
    if lic and len(lic) < 60 and "\n" not in lic and lic.upper() != "UNKNOWN":
        return lic
    for c in msg.get_all("Classifier") or []:
        if c.startswith("License :: OSI Approved :: "):
            name = c.rsplit(" :: ", 1)[-1]
            return _CLASSIFIER_SPDX.get(name, name)
    if lic:
        return identify(lic)
    return None


class LicenseResolver:
    """Licenses of the files under one corpus root.

    ``for_file(rel_path, text)`` answers ``(license, source)``: the file's own SPDX header wins,
    then the distribution that installed it (``*.dist-info/RECORD`` of a site-packages root),
    then the nearest LICENSE/COPYING file in the same or a parent directory (up to the root).
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self._dir_cache: dict[str, tuple[str | None, str | None]] = {}
        self._dist_of: dict[str, tuple[str, str | None]] = {}
        self._load_dists()

    def _load_dists(self) -> None:
        if not self.root.is_dir():
            return
        for info in sorted(self.root.glob("*.dist-info")):
            try:
                meta = (info / "METADATA").read_text(encoding="utf-8", errors="replace")
                record = (info / "RECORD").read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            head = HeaderParser().parsestr(meta, headersonly=True)
            name = f"{head.get('Name', info.name)}=={head.get('Version', '?')}"
            lic = _metadata_license(meta)
            if lic is None:
                for lf in sorted(info.glob("licen[cs]e*")) + sorted((info / "licenses").glob("*")):
                    if lf.is_file():
                        lic = identify(lf.read_text(encoding="utf-8", errors="replace"))
                        if lic:
                            break
            for line in record.splitlines():
                rel = line.split(",", 1)[0]
                if rel and not rel.startswith(".."):
                    self._dist_of[rel] = (name, lic)

    def distribution(self, rel_path: str) -> str | None:
        d = self._dist_of.get(rel_path)
        return d[0] if d else None

    def _dir_license(self, rel_dir: str) -> tuple[str | None, str | None]:
        if rel_dir in self._dir_cache:
            return self._dir_cache[rel_dir]
        found: tuple[str | None, str | None] = (None, None)
        d = self.root / rel_dir if rel_dir else self.root
        try:
            names = sorted(p.name for p in d.iterdir() if p.is_file() and _LICENSE_NAMES.match(p.name))
        except OSError:
            names = []
        licenses: dict[str, str] = {}  # spdx -> the first file that has it
        for name in names:
            try:
                spdx = identify((d / name).read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
            if spdx and spdx not in licenses:
                licenses[spdx] = f"{rel_dir}/{name}" if rel_dir else name
        if len(licenses) == 1:
            (spdx, where), = licenses.items()
            found = (spdx, "file:" + where)
        elif licenses:
            found = (_several(licenses), "files:" + ",".join(sorted(licenses.values())))
        if found[0] is None and rel_dir:
            found = self._dir_license(rel_dir.rsplit("/", 1)[0] if "/" in rel_dir else "")
        self._dir_cache[rel_dir] = found
        return found

    def for_file(self, rel_path: str, text: str) -> tuple[str | None, str | None]:
        spdx = spdx_header(text)
        if spdx:
            return spdx, "spdx-header"
        if is_license_file(rel_path):
            spdx = identify(text)
            if spdx:
                return spdx, "license-text"
        dist = self._dist_of.get(rel_path)
        if dist and dist[1]:
            return dist[1], f"dist-info:{dist[0]}"
        rel_dir = rel_path.rsplit("/", 1)[0] if "/" in rel_path else ""
        return self._dir_license(rel_dir)
