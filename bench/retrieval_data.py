"""A labelled retrieval set from Debian package metadata: the query is a package's one-line synopsis,
its one relevant document the package's long description.

    apt-get update -o Acquire::Languages=en      # once: the long descriptions are in Translation-en
    inference/.venv/bin/python bench/retrieval_data.py [--size 3000] [--out FILE]

The package list comes from `apt-cache dumpavail`; the long descriptions from the Translation-en
indexes apt downloaded (found with `apt-get indextargets`, read with `apt-helper cat-file`), joined
on Description-md5. Packages whose query or document would be ambiguous are left out (see
`eligible`); the selection is the `size` packages with the smallest SHA-256 of their name, so it is
the same on every machine with the same apt lists, and a larger set contains a smaller one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / ".cache" / "bench" / "debian-retrieval.jsonl"
APT_HELPER = "/usr/lib/apt/apt-helper"
MIN_DOCUMENT_CHARS = 80
"""Shorter long descriptions ("This package contains the library.") say too little to be retrieved."""
_BOILERPLATE = re.compile(r"transitional|dummy package|debug symbols|metapackage", re.IGNORECASE)


@dataclass(frozen=True)
class Example:
    id: str
    """The package name."""
    query: str
    """Its synopsis (the first line of Description)."""
    document: str
    """Its long description, paragraphs kept, Debian's ' .' paragraph marks turned into blank lines."""


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """deb822 records: fields with continuation lines joined by newlines."""
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        name = None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and name is not None:
                fields[name] += "\n" + line
            elif ":" in line:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
        if fields:
            yield fields


def long_description(continuation: str) -> str:
    lines = []
    for line in continuation.split("\n")[1:]:
        line = line[1:] if line.startswith(" ") else line
        lines.append("" if line.strip() == "." else line)
    return "\n".join(lines).strip()


def read_apt() -> tuple[list[dict[str, str]], dict[str, str]]:
    """The dumpavail records, and long description by Description-md5 from Translation-en."""
    packages = list(stanzas(_run(["apt-cache", "dumpavail"])))
    # Images that set Acquire::Languages "none" list no translation targets unless asked for them.
    query = ["apt-get", "indextargets", "-o", "Acquire::Languages=en", "--format", "$(FILENAME)"]
    targets = _run([*query, "Identifier: Translations"])
    descriptions: dict[str, str] = {}
    for index in sorted(line for line in targets.splitlines() if "Translation-en" in line):
        if not Path(index).exists():
            continue
        for record in stanzas(_run([APT_HELPER, "cat-file", index])):
            if "Description-md5" in record and "Description-en" in record:
                descriptions[record["Description-md5"]] = long_description(record["Description-en"])
    if not descriptions:
        raise SystemExit(
            "apt has no Translation-en index, so no long descriptions: run "
            "`apt-get update -o Acquire::Languages=en` first"
        )
    return packages, descriptions


def eligible(packages: list[dict[str, str]], descriptions: dict[str, str]) -> list[Example]:
    """One example per package whose synopsis and long description are both unique in the archive
    (0ad and 0ad-data share a description: neither could be told from the other), the long
    description has at least MIN_DOCUMENT_CHARS, and the synopsis is no transitional, dummy,
    debug-symbol or metapackage boilerplate."""
    by_name: dict[str, Example] = {}
    for record in packages:
        name, synopsis = record.get("Package"), record.get("Description", "").split("\n")[0].strip()
        document = descriptions.get(record.get("Description-md5", ""))
        if name and synopsis and document and name not in by_name:
            by_name[name] = Example(name, synopsis, document)
    queries = Counter(example.query.lower() for example in by_name.values())
    documents = Counter(example.document for example in by_name.values())
    return [
        example
        for example in by_name.values()
        if queries[example.query.lower()] == 1
        and documents[example.document] == 1
        and len(example.document) >= MIN_DOCUMENT_CHARS
        and not _BOILERPLATE.search(example.query)
    ]


def select(examples: list[Example], size: int) -> list[Example]:
    ranked = sorted(examples, key=lambda e: hashlib.sha256(e.id.encode()).hexdigest())
    if len(ranked) < size:
        raise SystemExit(f"only {len(ranked)} eligible packages, fewer than --size {size}")
    return ranked[:size]


def write(path: Path, examples: list[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for example in examples:
            out.write(json.dumps(asdict(example), ensure_ascii=False) + "\n")


def load(path: Path) -> list[Example]:
    with path.open(encoding="utf-8") as lines:
        return [Example(**json.loads(line)) for line in lines if line.strip()]


def _run(command: list[str]) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=3000, help="packages in the set")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines: {id, query, document}")
    options = parser.parse_args()
    packages, descriptions = read_apt()
    examples = eligible(packages, descriptions)
    write(options.out, select(examples, options.size))
    print(f"{options.out}: {options.size} of {len(examples)} eligible packages ({len(packages)} in apt)")


if __name__ == "__main__":
    main()
