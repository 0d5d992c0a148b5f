"""Rows in and out: a BigQuery table or, where a value names a file, CSV lines in and JSON
lines out. Which a value is follows one rule (pipelines/core/checks.py, LOCATION_RULE)."""

from __future__ import annotations

from collections.abc import Callable

import apache_beam as beam
from apache_beam.io import WriteToText
from apache_beam.io.gcp.bigquery import BigQueryDisposition, ReadFromBigQuery, WriteToBigQuery
from apache_beam.metrics import Metrics

from pipelines.core.checks import Place, place_of
from pipelines.core.deadletters import to_json_line
from pipelines.io.bigquery import replace_with_empty
from pipelines.io.text import ReadRecords, RemoveStaleFiles


def is_table(value: str) -> bool:
    return place_of(value) is Place.TABLE


class ReadRows(beam.PTransform):
    """The input as raw elements: BigQuery rows (dicts of `fields`) or, from a CSV file,
    its records as bytes (a quoted field may hold line breaks) without the header records
    (`is_header`, counted in `<namespace>/csv_headers`); with `block_records`, a CSV file's
    records come in lists of up to that many (ReadRecords), headers taken out."""

    def __init__(
        self,
        source: str,
        *,
        fields: tuple[str, ...],
        is_header: Callable[[bytes], bool],
        namespace: str,
        read_method: str = "DIRECT_READ",
        block_records: int | None = None,
    ):
        super().__init__()
        self._source = source
        self._block_records = block_records
        self._fields = fields
        self._is_header = is_header
        self._namespace = namespace
        self._read_method = read_method

    def expand(self, pipeline):
        if is_table(self._source):
            return pipeline | "ReadTable" >> ReadFromBigQuery(
                table=self._source, method=self._read_method, selected_fields=list(self._fields)
            )
        return (
            pipeline
            | "ReadCsv" >> ReadRecords(self._source, block_records=self._block_records)
            | "SkipHeaders"
            >> beam.ParDo(
                _SkipHeadersFn(self._is_header, self._namespace, blocks=bool(self._block_records))
            )
        )


class _SkipHeadersFn(beam.DoFn):
    def __init__(self, is_header: Callable[[bytes], bool], namespace: str, blocks: bool):
        self._is_header = is_header
        self._blocks = blocks
        self._headers = Metrics.counter(namespace, "csv_headers")

    def process(self, element):
        if not self._blocks:
            if self._is_header(element):
                self._headers.inc()
            else:
                yield element
            return
        kept = [record for record in element if not self._is_header(record)]
        if len(kept) < len(element):
            self._headers.inc(len(element) - len(kept))
        if kept:
            yield kept


class WriteRows(beam.PTransform):
    """Rows to a BigQuery table (replacing its content) or to JSON-lines files (replacing the
    files an earlier run wrote to the same prefix: RemoveStaleFiles).

    Each element is a row (a dict), or a batch of rows its producer already formatted for
    this destination (`is_table`): a list of rows for a table, JSON-lines text (lines joined
    by newlines) for files."""

    def __init__(self, destination: str, schema: dict):
        super().__init__()
        self._destination = destination
        self._schema = schema

    def expand(self, elements):
        if is_table(self._destination):
            rows = elements | "ToRows" >> beam.FlatMap(_as_rows)
            # A load job replaces the table, but Beam starts none when there are no rows:
            # then the table is replaced here, so it never shows a previous run's rows.
            (
                rows
                | "CountRows" >> beam.combiners.Count.Globally()
                | "ReplaceIfEmpty"
                >> beam.ParDo(_ReplaceTableIfEmpty(self._destination, self._schema))
            )
            return rows | "WriteTable" >> WriteToBigQuery(
                self._destination,
                schema=self._schema,
                create_disposition=BigQueryDisposition.CREATE_IF_NEEDED,
                write_disposition=BigQueryDisposition.WRITE_TRUNCATE,
            )
        written = (
            elements
            | "ToJson" >> beam.Map(_as_json_lines)
            | "WriteFiles" >> WriteToText(self._destination, file_name_suffix=".json")
        )
        written | "RemoveStale" >> RemoveStaleFiles(self._destination, ".json")
        return written


def _as_rows(element) -> list:
    return element if isinstance(element, list) else [element]


def _as_json_lines(element) -> str:
    return element if isinstance(element, str) else to_json_line(element)


class _ReplaceTableIfEmpty(beam.DoFn):
    def __init__(self, table: str, schema: dict):
        self._table = table
        self._schema = schema

    def process(self, row_count: int):
        if row_count:
            return
        replace_with_empty(self._table, self._schema)
