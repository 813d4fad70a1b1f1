"""Streaming registry readers (CONTRACTS §2, §3)."""

from __future__ import annotations

import codecs
import json
import types
from pathlib import Path

import pytest
from openpyxl import Workbook
from openpyxl.styles import PatternFill

from precache.models import RegistrySource
from precache.registry import RegistryError, allowed_path, iter_records


def read(path: Path, roots: list[Path] | None = None, **opts) -> list[dict]:
    return list(iter_records(RegistrySource(path=str(path), **opts), roots=roots))


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


ROWS = [{"ФИО": "Иванов Иван", "Сумма": "100"}, {"ФИО": "Петрова Анна", "Сумма": "2 500,50"}]


# --- CSV ----------------------------------------------------------------------------

def test_csv_utf8_comma(tmp_path):
    p = write(tmp_path, "r.csv", 'ФИО,Сумма\nИванов Иван,100\nПетрова Анна,"2 500,50"\n')
    assert read(p) == ROWS


def test_csv_cp1251_semicolon(tmp_path):
    p = write(tmp_path, "r.csv", "ФИО;Сумма\r\nИванов Иван;100\r\nПетрова Анна;2 500,50\r\n", "cp1251")
    assert read(p) == ROWS


def test_csv_utf8_bom(tmp_path):
    p = tmp_path / "r.csv"
    p.write_bytes(codecs.BOM_UTF8 + "ФИО;Сумма\nИванов Иван;100\n".encode())
    (rec,) = read(p)
    assert list(rec) == ["ФИО", "Сумма"]
    assert rec["ФИО"] == "Иванов Иван"


def test_csv_bom_with_explicit_utf8(tmp_path):
    p = tmp_path / "r.csv"
    p.write_bytes(codecs.BOM_UTF8 + "ФИО;Сумма\nИванов Иван;100\n".encode())
    assert list(read(p, encoding="utf-8")[0]) == ["ФИО", "Сумма"]


def test_csv_tab(tmp_path):
    p = write(tmp_path, "r.csv", "ФИО\tСумма\nИванов Иван\t100\nПетрова Анна\t2 500,50\n")
    assert read(p) == ROWS


def test_csv_explicit_encoding_and_delimiter(tmp_path):
    # auto-detection would pick ',' (two of them in the header) and utf-8 would fail
    p = write(tmp_path, "r.txt", "a,b|c,d\n1,2|3,4\n", "cp1251")
    assert read(p, format="csv", delimiter="|", encoding="cp1251") == [{"a,b": "1,2", "c,d": "3,4"}]
    assert read(p, format="csv") == [{"a": "1", "b|c": "2|3", "d": "4"}]


def test_csv_blank_lines_skipped_and_values_stay_strings(tmp_path):
    p = write(tmp_path, "r.csv", "id;sum\n\n007;1.50\n;\n2;\n")
    assert read(p) == [{"id": "007", "sum": "1.50"}, {"id": "2", "sum": ""}]


@pytest.mark.parametrize("content", ["", "  \n\n"])
def test_csv_empty_file(tmp_path, content):
    p = write(tmp_path, "r.csv", content)
    with pytest.raises(RegistryError, match="r.csv: the file is empty"):
        read(p)


def test_csv_header_only_yields_nothing(tmp_path):
    p = write(tmp_path, "r.csv", "ФИО;Сумма\n")
    assert read(p) == []


def test_csv_ragged_row_names_row(tmp_path):
    p = write(tmp_path, "r.csv", "a;b\n1;2\n\n3;4;5\n")
    with pytest.raises(RegistryError, match=r"r\.csv: row 2 \(line 4\) has 3 fields, the header has 2"):
        read(p)


def test_csv_duplicate_header(tmp_path):
    p = write(tmp_path, "r.csv", "ФИО;Сумма;ФИО\n1;2;3\n")
    with pytest.raises(RegistryError, match=r"duplicate header name 'ФИО' \(column 3\)"):
        read(p)


def test_csv_wrong_explicit_encoding(tmp_path):
    p = write(tmp_path, "r.csv", "ФИО;Сумма\nИванов;100\n", "cp1251")
    with pytest.raises(RegistryError, match="cannot decode as utf-8.*set registry.encoding"):
        read(p, encoding="utf-8")


def test_csv_big_file_is_streamed(tmp_path):
    n = 50_000
    p = tmp_path / "big.csv"
    with p.open("w", encoding="utf-8") as f:
        f.write("id;ФИО\n")
        f.writelines(f"{i};Абонент {i}\n" for i in range(1, n))
        f.write(f"{n};ragged;row\n")  # only found by a reader that gets that far
    gen = iter_records(RegistrySource(path=str(p)))
    assert isinstance(gen, types.GeneratorType)
    assert next(gen) == {"id": "1", "ФИО": "Абонент 1"}
    count = 1
    with pytest.raises(RegistryError, match=f"row {n} "):
        for rec in gen:
            count += 1
            assert rec["id"] == str(count)
    assert count == n - 1


# --- XLSX ----------------------------------------------------------------------------

def make_xlsx(path: Path, rows: list[list]) -> Path:
    wb = Workbook()
    for r in rows:
        wb.active.append(r)
    wb.save(path)
    return path


def test_xlsx(tmp_path):
    p = make_xlsx(tmp_path / "r.xlsx", [["ФИО", "Сумма", "Пени"], ["Иванов Иван", 100.0, 1.5],
                                        [None, None, None], ["Петрова Анна", 2500, None]])
    assert read(p) == [{"ФИО": "Иванов Иван", "Сумма": "100", "Пени": "1.5"},
                       {"ФИО": "Петрова Анна", "Сумма": "2500", "Пени": ""}]


def test_xlsx_trailing_formatted_empty_column(tmp_path):
    wb = Workbook()
    wb.active.append(["ФИО", "Сумма"])
    wb.active.append(["Иванов Иван", 100])
    wb.active["C1"].fill = PatternFill("solid", fgColor="FFFF00")
    wb.save(tmp_path / "r.xlsx")
    assert read(tmp_path / "r.xlsx") == [{"ФИО": "Иванов Иван", "Сумма": "100"}]


def test_xlsx_zero_bytes(tmp_path):
    p = write(tmp_path, "r.xlsx", "")
    with pytest.raises(RegistryError, match="r.xlsx: the file is empty"):
        read(p)


def test_xlsx_not_a_workbook(tmp_path):
    p = write(tmp_path, "r.xlsx", "ФИО;Сумма\n")
    with pytest.raises(RegistryError, match="not a readable XLSX workbook"):
        read(p)


# --- JSON / JSONL / inline --------------------------------------------------------------------

def test_json_types_kept(tmp_path):
    recs = [{"fio": "Иванов", "sum": 100, "rate": 1.5, "vip": True, "debt": {"date": "01.12"}}]
    p = write(tmp_path, "r.json", json.dumps(recs, ensure_ascii=False))
    out = read(p)
    assert out == recs
    assert type(out[0]["sum"]) is int and type(out[0]["rate"]) is float


def test_json_with_bom(tmp_path):
    p = tmp_path / "r.json"
    p.write_bytes(codecs.BOM_UTF8 + b'[{"a": 1}]')
    assert read(p) == [{"a": 1}]


@pytest.mark.parametrize(
    ("content", "match"),
    [('[{"a": 1}, {"a": ', "invalid JSON after record 1"),
     ("[1, 2]", "record 1 is not a JSON object"),
     ("[]", "no records")],
)
def test_json_invalid(tmp_path, content, match):
    with pytest.raises(RegistryError, match=match):
        read(write(tmp_path, "r.json", content))


def test_jsonl(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_bytes(codecs.BOM_UTF8 + '{"a": 1}\n\n{"a": "б"}\n'.encode())
    assert read(p) == [{"a": 1}, {"a": "б"}]


def test_jsonl_bad_line_3(tmp_path):
    p = write(tmp_path, "r.jsonl", '{"a": 1}\n{"a": 2}\n{"a": \n{"a": 4}\n')
    with pytest.raises(RegistryError, match="r.jsonl: invalid JSON at line 3"):
        read(p)


def test_inline_records():
    src = RegistrySource(records=[{"fio": "Иванов", "sum": 1}, {"fio": "Петров"}])
    assert list(iter_records(src)) == [{"fio": "Иванов", "sum": 1}, {"fio": "Петров"}]


def test_unknown_extension(tmp_path):
    with pytest.raises(RegistryError, match="cannot be inferred"):
        read(write(tmp_path, "r.txt", "a\n1\n"))


# --- allowed_path -------------------------------------------------------------------

@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "inbox"
    r.mkdir()
    (r / "ok.csv").write_text("a\n1\n", encoding="utf-8")
    (tmp_path / "secret.csv").write_text("a\nsecret\n", encoding="utf-8")
    return r


def test_path_inside_root(root):
    assert allowed_path(str(root / "ok.csv"), [root]) == (root / "ok.csv").resolve()
    assert read(root / "ok.csv", roots=[root]) == [{"a": "1"}]


def test_path_outside_root(root):
    with pytest.raises(RegistryError, match="outside the allowed roots.*PRECACHE_REGISTRY_ROOTS"):
        read(root.parent / "secret.csv", roots=[root])


def test_symlink_out_of_root(root):
    (root / "link.csv").symlink_to(root.parent / "secret.csv")
    with pytest.raises(RegistryError, match="PRECACHE_REGISTRY_ROOTS"):
        read(root / "link.csv", roots=[root])


def test_dotdot_out_of_root(root):
    with pytest.raises(RegistryError, match="PRECACHE_REGISTRY_ROOTS"):
        allowed_path(f"{root}/../../../../../../etc/passwd", [root])
    with pytest.raises(RegistryError, match="PRECACHE_REGISTRY_ROOTS"):
        allowed_path(f"{root}/../secret.csv", [root])


def test_sibling_with_common_prefix_refused(root):
    (root.parent / "inbox2").mkdir()
    (root.parent / "inbox2" / "x.csv").write_text("a\n1\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="PRECACHE_REGISTRY_ROOTS"):
        allowed_path(str(root.parent / "inbox2" / "x.csv"), [root])


def test_missing_file_in_root(root):
    with pytest.raises(RegistryError, match="no such file"):
        allowed_path(str(root / "nope.csv"), [root])


def test_url_registry_is_downloaded_once_however_often_it_is_read():
    import http.server
    import threading

    from precache.registry import opened_registry

    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            body = "fio;sum\nИванов;1\nПетров;2\n".encode("cp1251")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = RegistrySource(url=f"http://127.0.0.1:{server.server_port}/debtors.csv")
        with opened_registry(src) as records:
            assert sum(1 for _ in records()) == 2  # the check pass
            assert list(records()) == [{"fio": "Иванов", "sum": "1"}, {"fio": "Петров", "sum": "2"}]
        assert hits == ["/debtors.csv"]
    finally:
        server.shutdown()
