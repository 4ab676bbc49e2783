from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import jobs.planning.listing as listing_module
from common.errors import UsageError
from common.storage import location
from jobs.planning.listing import Listing, list_sources, partition_slug
from tests.support.s3 import FlakyProxy, s3_client, s3_storage_options


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
    assert len(uris) == 8
    assert uris == sorted(uris)
    assert all(u.startswith("file:///") for u in uris)
    assert f"file://{tree}/deep/ünï cödé/c.PnG" in uris  # characters as in the name, not percent-encoded
    assert listing.skipped == {"not media": 2}
    assert set(listing.table.column("size").to_pylist()) == {1}
    kinds = dict(zip(uris, listing.table.column("kind").to_pylist()))
    assert kinds.pop(f"file://{tree}/clip.MP4") == "video"
    assert set(kinds.values()) == {"image"}


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


def test_first_source_naming_a_file_gives_its_partition(tree: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(listing_module, "ROW_CHUNK", 3)  # duplicates land in different Arrow chunks
    listing = list_sources([str(tree / "deep"), str(tree)])
    sources = dict(zip(listing.table.column("uri").to_pylist(), listing.table.column("source").to_pylist()))
    assert sources[f"file://{tree}/deep/d.webp"] == partition_slug("deep")
    assert sources[f"file://{tree}/a.jpg"] == partition_slug("my photos")
    assert len(sources) == 8


def test_local_walk_follows_links_and_ends_on_a_loop(tree: Path, tmp_path: Path):
    outside = _touch(tmp_path / "elsewhere" / "linked.jpg")
    (tree / "deep" / "link.jpg").symlink_to(outside)
    (tree / "deep" / "loop").symlink_to(tree, target_is_directory=True)
    (tree / "deep" / "broken.jpg").symlink_to(tmp_path / "gone.jpg")
    listing = list_sources([str(tree)])
    sizes = dict(zip(listing.table.column("uri").to_pylist(), listing.table.column("size").to_pylist()))
    assert sizes[f"file://{tree}/deep/link.jpg"] == 1
    assert sizes[f"file://{tree}/deep/broken.jpg"] is None  # planned: it becomes an error row, not silence
    assert len(sizes) == 10


# --- S3 (moto's server; a FlakyProxy in front where the test wants faults) ---

AWKWARD_KEYS = [f"photos/camera one/день {i % 3}/img {i:02d} ü.jpg" for i in range(30)] + [
    "photos/top.png",
    "photos/clip.mov",
    "photos/notes.txt",
    "photos/empty/",  # a folder marker, not a file
    "photos2/not mine.jpg",  # shares the prefix "photos" but is another folder
    "photos.jpg",
]


def _put_keys(endpoint: str, bucket: str, keys: list[str]) -> None:
    client = s3_client(endpoint)
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"" if key.endswith("/") else key.encode())


def _uris(listing: Listing) -> list[str]:
    return listing.table.column("uri").to_pylist()


def test_s3_prefix_is_listed_recursively_page_by_page(
    flaky_proxy: FlakyProxy, s3_bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
):
    _put_keys(s3_endpoint, s3_bucket, AWKWARD_KEYS)
    monkeypatch.setattr(listing_module, "LIST_PAGE_SIZE", 7)
    options = s3_storage_options(flaky_proxy.url)
    flaky_proxy.fail_every = 3
    listing = list_sources([f"s3://{s3_bucket}/photos"], options)
    uris = _uris(listing)
    expected = sorted(f"s3://{s3_bucket}/{k}" for k in AWKWARD_KEYS[:32])  # characters as in the key
    assert uris == expected
    assert listing.table.column("kind").to_pylist() == ["video" if u.endswith(".mov") else "image" for u in uris]
    assert set(listing.table.column("source").to_pylist()) == {"photos"}
    assert listing.skipped == {"not media": 1}
    sizes = dict(zip(uris, listing.table.column("size").to_pylist()))
    assert sizes[f"s3://{s3_bucket}/photos/top.png"] == len(b"photos/top.png")
    pages = [path for _, path in flaky_proxy.log if "max-keys=7" in path]  # 34 keys: 5 pages, and retries
    assert len(pages) >= 5 and not any("delimiter" in page for page in pages)
    assert flaky_proxy.slowdowns > 0  # and the listing survived them
    assert not location(f"s3://{s3_bucket}", options).fs.dircache  # streamed, not cached


def test_s3_folder_with_trailing_slash_and_whole_bucket(s3_bucket: str, s3_endpoint: str):
    _put_keys(s3_endpoint, s3_bucket, AWKWARD_KEYS)
    options = s3_storage_options(s3_endpoint)
    assert len(list_sources([f"s3://{s3_bucket}/photos/"], options)) == 32
    whole = list_sources([f"s3://{s3_bucket}"], options)
    assert len(whole) == 34 and set(whole.table.column("source").to_pylist()) == {s3_bucket}


def test_s3_globs_through_the_standard_environment(s3_environment: dict[str, str], s3_bucket: str, s3_endpoint: str):
    _put_keys(s3_endpoint, s3_bucket, AWKWARD_KEYS)
    listing = list_sources([f"s3://{s3_bucket}/photos/*.png", f"s3://{s3_bucket}/photos/camera one/день 1/*"])
    assert _uris(listing) == sorted(
        [f"s3://{s3_bucket}/photos/top.png"] + [f"s3://{s3_bucket}/{k}" for k in AWKWARD_KEYS[1:30:3]]
    )
    with pytest.raises(UsageError, match="matches nothing"):
        list_sources([f"s3://{s3_bucket}/photos/*.gif"])


def test_s3_manifest_lists_s3_uris_and_relative_keys(s3_bucket: str, s3_endpoint: str, tree: Path):
    _put_keys(s3_endpoint, s3_bucket, AWKWARD_KEYS)
    first, missing = f"s3://{s3_bucket}/{AWKWARD_KEYS[0]}", f"s3://{s3_bucket}/missing.jpg"
    manifest = "\n".join([first, "../photos/top.png", missing, f"{tree}/a.jpg"])
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="lists/run 1.txt", Body=manifest.encode())
    listing = list_sources([f"s3://{s3_bucket}/lists/run 1.txt"], s3_storage_options(s3_endpoint))
    # a listed but missing object stays planned: it becomes an error row later
    assert _uris(listing) == sorted([first, f"s3://{s3_bucket}/photos/top.png", missing, f"file://{tree}/a.jpg"])
    assert set(listing.table.column("source").to_pylist()) == {partition_slug("run 1")}


def test_missing_s3_sources_are_usage_errors(s3_bucket: str, s3_endpoint: str):
    options = s3_storage_options(s3_endpoint)
    with pytest.raises(UsageError, match="source not found"):
        list_sources([f"s3://{s3_bucket}/nothing/here"], options)
