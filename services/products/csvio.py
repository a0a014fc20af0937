"""CSV in and out: reading an import file into validated rows; the export's header (its rows
are built in SQL: repository.export_csv).

Import format (docs/api/products.md): a header row; required columns `barcode,name,quantity,
price`, optional `description,min_quantity,expiration_date`; other columns (the export's `id`,
`status`, `created_at`, `updated_at`) are ignored so an export can be imported again. Comma,
semicolon or tab separated (detected from the header); UTF-8 (a BOM is fine), else Windows-1252
as spreadsheets in Spanish locales save it.

A file that is not CSV text is a 400, never a 500: bytes that are neither UTF-8 nor
Windows-1252, NUL characters (PostgreSQL cannot store them; a UTF-16 "Unicode text" export is
full of them) and anything the `csv` module refuses (e.g. a field over its size limit).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from pydantic_core import PydanticCustomError

from services.products.validation import FIELD_CHECKS, FIELD_ORDER, error_message
from stockmanager.errors import UnsupportedMediaType, ValidationFailed

REQUIRED_COLUMNS = ("barcode", "name", "quantity", "price")
OPTIONAL_COLUMNS = ("description", "min_quantity", "expiration_date")
COLUMN_ALIASES = {"barrs_code": "barcode", "stock": "quantity", "min_stock": "min_quantity"}
EXPORT_COLUMNS = (
    "id",
    "barcode",
    "name",
    "description",
    "quantity",
    "min_quantity",
    "price",
    "status",
    "expiration_date",
    "created_at",
    "updated_at",
)
# The export's first line; its rows are built by PostgreSQL (repository.export_csv) with the
# `csv` module's quoting and the formula protection below.
EXPORT_HEADER = ",".join(EXPORT_COLUMNS) + "\r\n"
RAW_CSV_TYPES = frozenset(
    {
        "text/csv",
        "text/plain",
        "application/csv",
        "application/vnd.ms-excel",
        "application/octet-stream",
    }
)
# Cells a spreadsheet would run as a formula are exported with a leading apostrophe (OWASP
# CSV injection: repository.export_csv); the import removes that apostrophe again, so a round
# trip is lossless.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_DECIMAL_COMMA = re.compile(r"^\s*\d+,\d{1,2}\s*$")


@dataclass(slots=True)
class ImportRow:
    line: int
    values: dict[str, Any]  # validated; optional columns only when the cell was not empty


@dataclass
class ParsedImport:
    rows: list[ImportRow] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def extract_csv(body: bytes, content_type: str | None) -> bytes:
    """The CSV bytes of the request: a raw CSV body or the `file` field of a multipart form."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        return _multipart_file(body, content_type or "")
    if media and media not in RAW_CSV_TYPES:
        raise UnsupportedMediaType("Content-Type debe ser text/csv o multipart/form-data")
    return body


def _multipart_file(body: bytes, content_type: str) -> bytes:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ValidationFailed("Formulario multipart inválido")
    fallback: bytes | None = None
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if part.get_param("name", header="content-disposition") == "file":
            return payload
        if fallback is None and part.get_filename():
            fallback = payload
    if fallback is None:
        raise ValidationFailed("Falta el archivo CSV (campo 'file')")
    return fallback


EMPTY_FILE = "El archivo CSV está vacío"
NOT_TEXT = "El archivo CSV debe estar en UTF-8 o Windows-1252"
HAS_NUL = "El archivo CSV contiene caracteres nulos (NUL); guárdelo como CSV UTF-8"
MALFORMED = "El archivo CSV no es válido"


def decode(raw: bytes) -> str:
    """UTF-8 (BOM or not), else Windows-1252; bytes valid in neither are refused rather than
    replaced, so nothing is imported with a garbled name."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            raise ValidationFailed(NOT_TEXT) from None
    if "\x00" in text:
        raise ValidationFailed(HAS_NUL)
    return text


def _delimiter(header_line: str) -> str:
    counts = {sep: header_line.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _unformula(cell: str) -> str:
    if len(cell) > 1 and cell[0] == "'" and cell[1] in FORMULA_START:
        return cell[1:]
    return cell


def read_import(
    raw: bytes, *, max_rows: int, chunk_rows: int, parsed: ParsedImport
) -> Iterator[list[ImportRow]]:
    """The file's valid rows, `chunk_rows` at a time, validated with the API's rules (the first
    failing field of a row is reported). Every row also goes to `parsed.rows`, every invalid
    one to `parsed.errors`; a file-level problem raises `ValidationFailed`."""
    try:
        yield from _read_import(decode(raw), max_rows, chunk_rows, parsed)
    except csv.Error as exc:
        raise ValidationFailed(MALFORMED, detail=str(exc)) from None


def _read_import(
    text: str, max_rows: int, chunk_rows: int, parsed: ParsedImport
) -> Iterator[list[ImportRow]]:
    if not text.strip():
        raise ValidationFailed(EMPTY_FILE)
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line))
    header = _header(reader)
    width = header["__width__"]
    fields = _field_plan(header)
    seen: dict[str, int] = {}
    chunk: list[ImportRow] = []
    count = 0
    # Up to 50,000 rows per request: this loop is kept lean (no per-cell helper calls for what
    # a comparison does), the checks themselves are the API's (validation.FIELD_CHECKS).
    for cells in reader:
        if not "".join(cells).strip():
            continue  # a blank line
        count += 1
        if count > max_rows:
            raise ValidationFailed(f"El archivo supera el máximo de {max_rows} filas")
        line = reader.line_num
        try:
            if len(cells) > width and "".join(cells[width:]).strip():
                raise ValidationFailed("La fila tiene más columnas que el encabezado")
            values = _row_values(cells, fields)
            barcode = values["barcode"]
            if barcode in seen:
                raise ValidationFailed(
                    f"Código de barras: Repetido en el archivo (fila {seen[barcode]})"
                )
            seen[barcode] = line
        except (PydanticCustomError, ValidationFailed) as exc:
            message = error_message(exc) if isinstance(exc, PydanticCustomError) else exc.message
            raw_barcode = _cell(cells, header, "barcode")
            parsed.errors.append(
                {"row": line, "barcode": (raw_barcode or "").strip() or None, "error": message}
            )
            continue
        row = ImportRow(line=line, values=values)
        parsed.rows.append(row)
        chunk.append(row)
        if len(chunk) == chunk_rows:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _header(reader: Iterator[list[str]]) -> dict[str, int]:
    try:
        names = next(reader)
    except StopIteration:
        raise ValidationFailed(EMPTY_FILE) from None
    header: dict[str, int] = {}
    for index, raw in enumerate(names):
        name = raw.strip().lower()
        name = COLUMN_ALIASES.get(name, name)
        if name not in REQUIRED_COLUMNS and name not in OPTIONAL_COLUMNS:
            continue  # e.g. the export's id/status/created_at/updated_at
        if name in header:
            raise ValidationFailed(f"Columna repetida: {name}")
        header[name] = index
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise ValidationFailed(f"Faltan columnas requeridas: {', '.join(missing)}")
    header["__width__"] = len(names)
    return header


def _cell(cells: list[str], header: dict[str, int], name: str) -> str | None:
    index = header.get(name)
    if index is None or index >= len(cells):
        return None
    return _unformula(cells[index])


# Validation order of a row: the API's (upstream's: the first failing field is the one
# reported); a CSV row has no status column.
ROW_FIELDS = tuple(name for name in FIELD_ORDER if name != "status")

# (name, column index, check, optional) for each field the header has, in ROW_FIELDS order.
FieldPlan = list[tuple[str, int, Callable[[Any], Any], bool]]


def _field_plan(header: dict[str, int]) -> FieldPlan:
    return [
        (name, header[name], FIELD_CHECKS[name], name in OPTIONAL_COLUMNS)
        for name in ROW_FIELDS
        if name in header
    ]


def _row_values(cells: list[str], fields: FieldPlan) -> dict[str, Any]:
    values: dict[str, Any] = {}
    width = len(cells)
    for name, index, check, optional in fields:
        cell = cells[index] if index < width else None
        if cell and cell[0] == "'":
            cell = _unformula(cell)
        if optional and (cell is None or not cell.strip()):
            continue  # not given: a default on create, unchanged on update
        if name == "price" and cell and "," in cell and _DECIMAL_COMMA.match(cell):
            cell = cell.replace(",", ".")
        values[name] = check(cell)
    return values
