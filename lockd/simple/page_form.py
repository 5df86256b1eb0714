"""A parsed `ProjectPage` as compact bytes: what a cache keeps beside a page's body, to skip its parse.

Parsing PyPI's JSON pages is most of a warm `lockd lock`'s CPU (200 pins: 73 MB of JSON, about
1.3 s), and most of what it decodes is thrown away (files no target can install). The form
holds only the page's kept files, column by column, with each distinct version, tag set and
requires-python written once; loading it builds the same `DistFile` values without reading the
JSON (measured in `lockd.index.page_reuse`).

A form stands for one parse only: it names the parser that made it (`parser_identity`: the
source of every module whose code decides what a page parses to, and the versions of lockd,
packaging and Python) and the caller's `source` (which body, content type, URL, project, limit),
and `decode_page` gives None for any other. Fields are written as they are, except versions and
requires-pythons (as text) and tag sets (as triples); a form is written only when each of those
reads back equal and every field has a type the decoder accepts (`encode_page`), and the tests
check whole pages read back equal field by field, `index_url` too (`DistFile` equality skips it).

The bytes are read back from the user's own cache directory, and are still treated as data that
may be damaged: a sha256 of the payload is checked before anything is decoded, the payload is
`marshal` of plain tuples, strings, bytes, ints and None only (marshal builds objects, never runs
code; pickle would), and every column's types, lengths and indexes are checked before a value
is built. Anything off gives None, which the caller treats as a miss and parses the body.
A form's bytes are not deterministic (marshal shares an object by reference only while
something else holds it too); what they decode to is.
"""

from __future__ import annotations

import hashlib
import marshal
from collections.abc import Sequence
from functools import lru_cache
from itertools import compress
from operator import itemgetter, not_
from os.path import commonprefix
from typing import cast

from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.simple.dist_file import DistFile
from lockd.simple.file_table import KIND_INDEX, KINDS, FileTable, distinct
from lockd.simple.files import ProjectPage, files_text_length, requires_python_of
from lockd.simple.form_checks import FILE_FIELDS, INDEX_TYPES, strings, typed_columns, unpacked_columns
from lockd.simple.form_checks import tag_sets as read_tag_sets
from lockd.simple.form_columns import FileColumns, page_columns
from lockd.simple.form_rows import Row, Rows
from lockd.simple.packed_columns import (
    TextColumn,
    pack_numbers,
    pack_texts,
)
from lockd.simple.parser_identity import parser_identity

__all__ = ["decode_page", "encode_columns", "encode_page"]

_MAGIC = b"lockd-page-form\x02"  # the encoding's own version, in the last byte
_DIGEST = 32
_MARSHAL_VERSION = 4


def encode_page(page: ProjectPage, source: str) -> bytes | None:
    """`page` as a form for `source`; None when it would not decode to exactly `page` (then none is kept)."""
    return encode_columns(page_columns(page), source)


def encode_columns(page: FileColumns, source: str, *, typed: bool = False) -> bytes | None:
    """The page `page` holds as a form for `source`; None when it would not decode to exactly it.

    `typed`: every column was built from values of the types `decode_page` accepts (msgspec's
    structs, in `json_form`), so they are not checked again here (5 % of the page child's time);
    `decode_page` checks them as it always does.

    Each file's details are written as its index wrote them (`DistFile.raw_details`: the URL,
    hashes and upload time as given), and worked out by the parser's own rules when a file read
    back is first used, as a freshly parsed file's are; a file whose details were already worked
    out is written in a form those rules leave unchanged. So writing a form works out nothing
    (it was half a cold `lockd lock`'s form cost, and more than parsing the page again). Other
    fields are written as they are, so what could decode to something else is a field of another
    type (checked as `decode_page` checks it) or a value written as text: each distinct version
    and requires-python is checked to read back equal. Decoding the whole form again to compare
    it cost as much as parsing the page did.
    """
    identity = parser_identity()
    if identity is None:
        return None
    columns = _columns(page, identity, source, typed=typed)
    if columns is None:
        return None
    try:
        payload = marshal.dumps(cast(tuple[str, ...], columns), _MARSHAL_VERSION)  # plain values only
    except ValueError:  # a value marshal cannot write: nothing a parser gives, but never a crash
        return None
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def decode_page(
    form: bytes, source: str, *, max_bytes: int | None = None, from_pipe: bool = False
) -> ProjectPage | None:
    """The page `form` holds, if it is intact and was made by this parser for `source`; else None.

    `from_pipe`: the form comes straight from the page child's pipe, which cannot damage bytes as
    storage can, so its digest is not computed again (15 ms for pypi-200's 205 pages); every
    field is still checked as for a form read from disk.
    """
    data = _data(form, max_bytes, check_digest=not from_pipe)
    identity = parser_identity()
    if data is None or identity is None or data[0] != identity or data[1] != source:
        return None
    try:
        return _page(data)
    except (ValueError, TypeError, IndexError):
        return None


def _data(form: bytes, max_bytes: int | None, *, check_digest: bool = True) -> _Columns | None:
    """The form's fields, once its digest says it is the payload written."""
    head = len(_MAGIC) + _DIGEST
    if len(form) <= head or not form.startswith(_MAGIC) or (max_bytes is not None and len(form) > max_bytes):
        return None
    payload = memoryview(form)[head:]
    if check_digest and hashlib.sha256(payload).digest() != form[len(_MAGIC) : head]:
        return None
    try:
        data = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    if type(data) is not tuple or len(data) != _FIELDS:
        return None
    return cast(_Columns, data)


# -- the layout: 24 fields ----------------------------------------------------------------------
# identity, source, name, index_url, foreign versions, versions, tag sets, requires-pythons, the
# URL base and the files whose URL is stored whole, then one column per file field: filename,
# URL (base + this + filename, or base + this for the files stored whole), kind, version, tags,
# sha256, size, requires-python, yanked, upload time, metadata URL (True: the file's URL +
# ".metadata"), metadata sha256 (URL, hashes, upload time and metadata as the index wrote
# them), name (None: the page's), index URL (None: the page's). These
# rules keep repeated strings out (URLs were half a form); the columns let `typed_columns` check
# each field's types in one pass. Filename, URL, kind, version, tags, sha256, size and upload time are
# packed (`lockd.simple.packed_columns`): a few values per column, not one per file.

_Columns = tuple[object, ...]
_FIELDS = 24


def _columns(page: FileColumns, identity: str, source: str, *, typed: bool = False) -> _Columns | None:
    filenames, urls = tuple(page.filenames), page.urls
    # By identity: the parser shares one value among the files that have it, and hashing a
    # SpecifierSet canonicalises every specifier in it (most of this function's time, by value).
    version_table, version_ix = distinct(page.versions)
    tag_table, tag_ix = distinct(page.tag_sets)
    require_table, require_ix = distinct(page.requires_pythons)
    # A file's URL is mostly a path shared by the page's files, one of its own, then its name.
    named = list(map(str.endswith, urls, filenames))
    heads = list(map(str.removesuffix, urls, filenames))  # the URL itself where it does not end so
    url_base = commonprefix(heads)  # noqa: RUF071  # character by character: any shared start
    whole = tuple(compress(range(len(named)), map(not_, named)))
    packed = (
        pack_texts(filenames, optional=False, checked=typed),
        pack_texts(list(map(itemgetter(slice(len(url_base), None)), heads)), optional=False, checked=typed),
        pack_numbers(list(map(KIND_INDEX.__getitem__, page.kinds)), "I", checked=True),
        pack_numbers(cast(tuple[int, ...], version_ix), "I", checked=True),  # `distinct`'s indexes
        pack_numbers(cast(tuple[int, ...], tag_ix), "I", checked=True),
        pack_texts(page.sha256s, optional=True, checked=typed),
        pack_numbers(page.sizes, "q", checked=typed) or tuple(page.sizes),  # a size no array holds
        pack_texts(page.uploads, optional=True, checked=typed),
    )
    if None in packed:
        return None
    columns = (
        *packed[:7],
        require_ix,
        tuple(page.yanks),
        packed[7],
        tuple(m or None for m in page.metadata),  # True, a URL, or None (never False: see `typed_columns`)
        tuple(page.metadata_sha256s),
        _own(page.names, page.name, len(filenames)),
        _own(page.index_urls, page.index_url, len(filenames)),
    )
    tables = (
        tuple(sorted(str(v) for v in page.foreign_versions)),
        tuple(map(str, version_table)),
        tuple(tuple(sorted((t.interpreter, t.abi, t.platform) for t in tags)) for tags in tag_table),
        tuple(map(str, require_table)),
        url_base,
        whole,
    )
    if not typed and not typed_columns(columns, len(filenames)):
        return None
    if not _reads_back(page, tables, (version_table, require_table)):
        return None
    return (identity, source, page.name, page.index_url, *tables, *columns)


def _own(values: Sequence[str] | None, page_value: str, count: int) -> tuple[str | None, ...]:
    """A file's name or index URL, None where it is the page's."""
    if values is None:
        return (None,) * count
    return tuple(None if v == page_value else v for v in values)


def _reads_back(
    page: FileColumns,
    tables: tuple[_S, _S, object, _S, str, _I],
    kept: tuple[list[Version], list[SpecifierSet]],
) -> bool:
    """Whether what `_columns` wrote as text decodes to the values it came from."""
    if type(page.name) is not str or type(page.index_url) is not str:
        return False
    foreign, versions, _, requires, _, _ = tables
    if frozenset(map(Version, foreign)) != page.foreign_versions:
        return False
    if any(_version(text) != version for text, version in zip(versions, kept[0], strict=True)):
        return False
    return all(requires_python_of(text) == spec for text, spec in zip(requires, kept[1], strict=True))


def _page(data: _Columns) -> ProjectPage | None:
    name, index_url, foreign, version_texts, tag_texts, require_texts, url_base, whole = data[2:10]
    if not (type(name) is str and type(index_url) is str and type(url_base) is str and type(whole) is tuple):
        return None
    if not (strings(foreign) and strings(version_texts) and strings(require_texts)):
        return None
    versions = [_version(text) for text in cast(_S, version_texts)]
    tag_sets = read_tag_sets(tag_texts)
    requires = [requires_python_of(text) for text in cast(_S, require_texts)]
    if tag_sets is None or None in requires:
        return None
    built = _table(
        data[10:],
        name=NormalizedName(name),
        index_url=index_url,
        url_rule=(url_base, whole),
        versions=versions,
        tag_sets=tag_sets,
        requires=requires,
    )
    if built is None:
        return None
    table, text_length = built
    foreign_versions = frozenset(map(_version, cast(_S, foreign)))
    page = ProjectPage.of_table(NormalizedName(name), index_url, table, foreign_versions)
    page.derived[files_text_length] = text_length
    return page


def _table(
    columns: tuple[object, ...],
    *,
    name: NormalizedName,
    index_url: str,
    url_rule: tuple[str, tuple[object, ...]],
    versions: list[Version],
    tag_sets: list[frozenset[Tag]],
    requires: list[SpecifierSet | None],
) -> tuple[FileTable, int] | None:
    """The files as a table, and the sum of their `DistFile.text_length` (`files_text_length`).

    Every column is checked here, so building a file later cannot fail.
    """
    count = len(columns[7]) if len(columns) == FILE_FIELDS and type(columns[7]) is tuple else -1
    read = unpacked_columns(columns, count)
    if read is None or not typed_columns(read, count):
        return None
    checked = cast(tuple[tuple[object, ...], ...], read)
    url_base, whole = url_rule
    bounds = (len(KINDS), len(versions), len(tag_sets), len(requires), count)
    indexes = (checked[2], checked[3], checked[4], checked[7], whole)
    if set(map(type, whole)) - INDEX_TYPES:
        return None
    for column, bound in zip(indexes, bounds, strict=True):
        numbers = set(cast(_IN, column))  # a few hundred distinct indexes, found in C
        numbers.discard(None)
        if numbers and (min(numbers) < 0 or max(numbers) >= bound):  # type: ignore[type-var, operator]
            return None
    # The types are checked above: what follows only reads them back.
    (filenames, url_parts, kinds, version_ix, tag_ix, sha256s, sizes, require_ix, yanks, uploads, metadata, metadata_sha256s, names, index_urls) = cast(_Typed, checked)  # fmt: skip
    # Name, version, kind, tags, requires-python and yank state are what ranking reads; the
    # rest is worked out from the row when the file is first read, as a parsed page's files are.
    rows = Rows(
        url_base,
        frozenset(cast(_I, whole)),
        url_parts,
        filenames,
        sha256s,
        sizes,
        uploads,
        metadata,
        metadata_sha256s,
    )

    # Two builders of the same files: every file column by column (about 5 ms for pypi-200's
    # 95,680, where one call per file costs a Python frame each), or one file as a release reads it.
    def build_all() -> tuple[DistFile, ...]:
        return tuple(
            map(
                DistFile,
                [name if n is None else NormalizedName(n) for n in names],
                [versions[i] for i in version_ix],
                filenames.values(),
                [KINDS[i] for i in kinds],
                [tag_sets[i] for i in tag_ix],
                [None if i is None else requires[i] for i in require_ix],
                yanks,
                [index_url if u is None else u for u in index_urls],
                [Row(rows, i) for i in range(len(filenames))],
            )
        )

    def build_one(i: int) -> DistFile:
        own_name, own_index, require = names[i], index_urls[i], require_ix[i]
        return DistFile(
            name if own_name is None else NormalizedName(own_name),
            versions[version_ix[i]],
            cast(str, filenames[i]),  # a packed column without None
            KINDS[kinds[i]],
            tag_sets[tag_ix[i]],
            None if require is None else requires[require],
            yanks[i],
            index_url if own_index is None else own_index,
            Row(rows, i),
        )

    table = FileTable(
        versions=versions,
        version_ix=version_ix,
        tag_sets=tag_sets,
        tag_ix=tag_ix,
        requires=requires,
        require_ix=require_ix,
        kinds=kinds,
        yanks=yanks,
        build_all=build_all,
        build_one=build_one,
    )
    return table, rows.text_length()


_S = tuple[str, ...]
_SN = tuple[str | None, ...]
_IN = tuple[int | None, ...]
_I = tuple[int, ...]
_T = TextColumn
_Typed = tuple[
    _T, _T, _I, _I, _I, _T, Sequence[int | None], _IN, _SN, _T, tuple[str | bool | None, ...], _SN, _SN, _SN
]
# Many projects share version texts ("1.0.0"): parsed once, and their files share the value.
_version = lru_cache(maxsize=16384)(Version)
