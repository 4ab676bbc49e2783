from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.errors import UsageError
from jobs.listing import list_sources, partition_slug


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "my photos"
    for name in ["a.jpg", "B.JPEG", "deep/ünï cödé/c.PnG", "deep/d.webp", "e.tif", "f.TIFF", "g.bmp"]:
        _touch(root / name)
    for name in ["notes.txt", "deep/readme.md", "clip.MP4"]:
        _touch(root / name)
    return root


def test_folder_is_recursive_sorted_and_case_insensitive(tree: Path):
    listing = list_sources([str(tree)])
    uris = listing.table.column("uri").to_pylist()
    assert len(uris) == 7
    assert uris == sorted(uris)
    assert all(u.startswith("file:///") for u in uris)
    assert f"file://{tree}/deep/ünï cödé/c.PnG" in uris  # characters as in the name, not percent-encoded
    assert listing.skipped == {"not media": 2, "video not supported": 1}
    assert set(listing.table.column("size").to_pylist()) == {1}


def test_globs_files_and_duplicates(tree: Path):
    listing = list_sources([str(tree / "*.jpg"), str(tree / "a.jpg"), str(tree / "deep")])
    uris = listing.table.column("uri").to_pylist()
    assert uris == sorted({f"file://{tree}/a.jpg", f"file://{tree}/deep/d.webp", f"file://{tree}/deep/ünï cödé/c.PnG"})


def test_manifests_txt_csv_parquet(tree: Path, tmp_path: Path):
    txt = _touch(tmp_path / "list.txt", f"# comment\n{tree}/a.jpg\n\nmy photos/g.bmp\n{tree}/missing.png\n".encode())
    csv = _touch(tmp_path / "list.csv", f"uri,label\n{tree}/e.tif,1\n".encode())
    parquet = tmp_path / "list.parquet"
    pq.write_table(pa.table({"uri": [f"file://{tree}/f.TIFF"]}), parquet)
    uris = list_sources([str(txt), str(csv), str(parquet)]).table.column("uri").to_pylist()
    # relative entries resolve against the manifest's folder; listed-but-missing files stay planned (error rows later)
    assert uris == sorted(f"file://{tree}/{n}" for n in ["a.jpg", "g.bmp", "missing.png", "e.tif", "f.TIFF"])


def test_missing_source_and_empty_glob_are_usage_errors(tmp_path: Path):
    with pytest.raises(UsageError, match="source not found"):
        list_sources([str(tmp_path / "nope")])
    with pytest.raises(UsageError, match="matches nothing"):
        list_sources([str(tmp_path / "*.jpg")])


def test_manifest_without_uri_column_is_a_usage_error(tmp_path: Path):
    bad = _touch(tmp_path / "bad.csv", b"path\n/a.jpg\n")
    with pytest.raises(UsageError, match="no 'uri' column"):
        list_sources([str(bad)])


def test_partition_values_come_from_the_source_folder_and_are_safe(tree: Path, tmp_path: Path):
    listing = list_sources([str(tree)])
    assert set(listing.table.column("source").to_pylist()) == {partition_slug("my photos")}
    for hostile in ["../../etc", "a/b", "=x", "..", "", "ünï", "x" * 300, "run_date=1"]:
        slug = partition_slug(hostile)
        assert slug and "/" not in slug and "=" not in slug and not slug.startswith(".")
        assert len(slug) <= 64 + 7
    assert partition_slug("plain-name_1.0") == "plain-name_1.0"
    assert partition_slug("a b") != partition_slug("a_b")
