"""Issue 22: the bytes a column query reads, Parquet against NDJSON, as DuckDB's profiler counts
them (its `io.total_bytes_read`). The objects are the formats bench's 4 MiB batch:

    ABE_FORMATS_DUMP=/tmp/formats cargo bench --bench formats -- --list
    python3 benches/parquet_query.py /tmp/formats

The query is the issue's: the request ids and times of the `platform.report` records.
"""
import json
import os
import sys
import tempfile

import duckdb

QUERIES = {
    "batch.parquet": "SELECT request_id, time FROM read_parquet('{f}') WHERE type = 'platform.report'",
    # NDJSON has no columns to skip: every line is read, and the request id is in the record.
    "batch.ndjson.gz": "SELECT json_extract_string(record, '$.requestId') AS request_id, time "
    "FROM read_ndjson('{f}', columns = {{'time': 'VARCHAR', 'type': 'VARCHAR', 'record': 'JSON'}}, compression = 'gzip') "
    "WHERE type = 'platform.report'",
    "batch.ndjson.zst": "SELECT json_extract_string(record, '$.requestId') AS request_id, time "
    "FROM read_ndjson('{f}', columns = {{'time': 'VARCHAR', 'type': 'VARCHAR', 'record': 'JSON'}}, compression = 'zstd') "
    "WHERE type = 'platform.report'",
}


def bytes_read(query):
    profile = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    con = duckdb.connect()
    con.execute("PRAGMA enable_profiling = 'json'")
    con.execute(f"PRAGMA profiling_output = '{profile}'")
    # Materialised inside DuckDB: fetching timestamps into Python would need pytz, and the query
    # is the same whoever receives its rows.
    con.execute(f"CREATE TEMP TABLE result AS {query}")
    con.execute("PRAGMA disable_profiling")
    rows = con.execute("SELECT count(*) FROM result").fetchone()[0]
    con.close()
    with open(profile) as p:
        read = json.load(p)["io"]["total_bytes_read"]
    os.unlink(profile)
    return rows, read


def main(folder):
    for name, query in QUERIES.items():
        path = os.path.join(folder, name)
        rows, read = bytes_read(query.format(f=path))
        size = os.path.getsize(path)
        print(f"{name}: {size} bytes; the query returns {rows} rows and reads {read} bytes ({100 * read / size:.0f} % of the object)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/formats")
