"""Deterministic sample registries (Russian names, sums, dates) for the demo, tests and benchmarks."""

from __future__ import annotations

import argparse
import csv
import random
from collections.abc import Iterator
from pathlib import Path

SURNAMES = ["Иванов", "Петров", "Сидоров", "Смирнов", "Кузнецов", "Попов", "Васильев", "Соколов", "Михайлов", "Новиков"]
NAMES = ["Иван", "Пётр", "Алексей", "Сергей", "Андрей", "Дмитрий", "Михаил", "Николай", "Олег", "Юрий"]
PATRONYMICS = ["Иванович", "Петрович", "Сергеевич", "Андреевич", "Олегович", "Юрьевич"]
HEADER = ["fio", "sum", "date", "Дата платежа"]


def rows(n: int, seed: int = 4021) -> Iterator[dict[str, str]]:
    """``n`` records; names repeat (as in real registries), sums and dates vary."""
    rnd = random.Random(seed)
    for _ in range(n):
        yield {
            "fio": f"{rnd.choice(SURNAMES)} {rnd.choice(NAMES)} {rnd.choice(PATRONYMICS)}",
            "sum": str(rnd.randrange(100, 100_000)),
            "date": f"{rnd.randrange(1, 29):02d}.{rnd.randrange(1, 13):02d}.2026",
            "Дата платежа": f"{rnd.randrange(1, 29):02d}.12.2026",
        }


def write_csv(path: Path, n: int, encoding: str = "cp1251", delimiter: str = ";", seed: int = 4021) -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.DictWriter(f, fieldnames=HEADER, delimiter=delimiter)
        w.writeheader()
        w.writerows(rows(n, seed))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("path", type=Path)
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--encoding", default="cp1251")
    p.add_argument("--delimiter", default=";")
    a = p.parse_args()
    write_csv(a.path, a.rows, a.encoding, a.delimiter)


if __name__ == "__main__":
    main()
