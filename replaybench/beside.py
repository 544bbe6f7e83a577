"""What is kept beside the warehouse file, named `<warehouse><suffix>`, each with one owner:

- `.lock`: a process's turn at the file (`replaybench.locks.WarehouseLock`);
- `.runs/`: a day's lease to one process (`replaybench.locks.lease_day`);
- `.journal/`, `.shards/`, `.plans/`: a replay's answers as they arrive, its Parquet shards, and
  what it has left to send (`replaybench.replay.files`);
- `.tmp/`: DuckDB's own, where it spills what does not fit in the process's memory limit
  (`replaybench.warehouse.memory`); DuckDB removes it when the warehouse is closed.
"""

from __future__ import annotations

from pathlib import Path


def beside(warehouse: Path, suffix: str) -> Path:
    """`<warehouse><suffix>`, in the warehouse file's folder."""
    return warehouse.with_name(warehouse.name + suffix)
