"""Ingest: logs from where teams keep them into the warehouse's `logs` table.

- `sources`: where each night finds its logs (folders, object storage, the Langfuse API) and the
  `sources` ledger of what was already read;
- `readers`: files (JSONL, JSON, Parquet, CSV; compressed too) as records;
- `formats`: the log formats, a registry of parsers from a record to `logs` rows;
- `load`: one file into `logs`, idempotent on request_id, bad records into `rejects`.
"""

from replaybench.ingest.load import IngestResult, ingest_file, ingest_paths

__all__ = ["IngestResult", "ingest_file", "ingest_paths"]
