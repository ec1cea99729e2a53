"""Reads Parquet files with pyarrow and with DuckDB, readers that share no code with the extension's
writer, and prints what they read as JSON lines for tests/parquet.rs to compare with what Lambda
delivered: first one line with each reader's schema, then one line per row, in file order.

Both readers must agree on every row; a disagreement is an error (exit status 1).

Usage: python3 read.py FILE...
"""
import json
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = ["time", "type", "request_id", "level", "message", "record"]


def arrow_rows(path):
    table = pq.read_table(path)
    schema = {f.name: [str(f.type), f.nullable] for f in table.schema}
    # Milliseconds since the epoch, as the extension's time column holds them.
    millis = table.column("time").cast(pa.int64()).to_pylist()
    cols = {name: table.column(name).to_pylist() for name in COLUMNS[1:]}
    rows = [[millis[i]] + [cols[c][i] for c in COLUMNS[1:]] for i in range(table.num_rows)]
    return schema, rows


def duckdb_rows(path):
    con = duckdb.connect()
    schema = {r[0]: r[1] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()}
    rows = con.execute(
        "SELECT epoch_ms(time), type, request_id, level, message, record FROM read_parquet(?)", [path]
    ).fetchall()
    return schema, [list(r) for r in rows]


def main(paths):
    schemas = None
    out = []
    for path in paths:
        a_schema, a_rows = arrow_rows(path)
        d_schema, d_rows = duckdb_rows(path)
        if schemas is None:
            schemas = {"pyarrow": a_schema, "duckdb": d_schema}
            out.append(json.dumps({"schemas": schemas}))
        elif schemas != {"pyarrow": a_schema, "duckdb": d_schema}:
            sys.exit(f"{path}: schema {a_schema} / {d_schema} differs from the first file's")
        if a_rows != d_rows:
            sys.exit(f"{path}: pyarrow and DuckDB read different rows")
        for r in a_rows:
            out.append(json.dumps(dict(zip(COLUMNS, r)), ensure_ascii=False))
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
