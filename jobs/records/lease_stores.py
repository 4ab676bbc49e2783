"""Where the run lease (``jobs.records.lease``) lives: a file on local disk, an object on S3.

Each store settles racing writes itself: S3 by conditional PUTs (``If-None-Match: *``, ``If-Match: <etag>``); local
disk by a hard link (fails where the name exists) and a compare and replace under a short ``flock``, besides the
``flock`` that the holder's process keeps on ``_runs/_lease.lock`` for the lease's whole life. On S3 a record's
age is the store's own, from its ``Last-Modified`` to the ``Date`` of the answer, so no host's clock matters.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import uuid
import weakref
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import IO, Any, Iterator

import botocore.config
import botocore.exceptions
import botocore.session
from botocore import UNSIGNED
from s3fs.errors import translate_boto_error

from common.retries import Deadline, retrying_until
from common.storage import Location, is_s3
from jobs.records.clock import SYSTEM_CLOCK, Clock
from jobs.records.lease_record import DEFAULT_WRITE_DEADLINE_S, Conflict, LeaseRecord, LeaseStore, Seen
from schemas import layout
from workers.files import write_atomic

_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
_CREDENTIALS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")

_clients: weakref.WeakKeyDictionary[Any, dict[float, Any]] = weakref.WeakKeyDictionary()
_clients_lock = threading.Lock()


def store_for(out: Location, clock: Clock = SYSTEM_CLOCK, deadline_s: float = DEFAULT_WRITE_DEADLINE_S) -> LeaseStore:
    """The store of ``out``'s lease; ``clock`` judges a local record's expiry and times an S3 request's tries,
    which end within ``deadline_s`` (``write_deadline_s`` of the lease's ttl)."""
    lease = out.child(layout.lease())
    if lease.is_local:
        return LocalLeaseStore(
            lease.path, out.child(layout.lease_lock()).path, out.child(layout.lease_write_lock()).path, clock
        )
    if is_s3(lease.fs):
        return S3LeaseStore(lease, Deadline(deadline_s, clock))
    raise ValueError(f"no run lease on {out.uri}: only local paths and s3:// hold one")


class LocalLeaseStore:
    """The lease file on local disk; its etag is the hash of its bytes, so replacing it is conditional as on S3.

    A replace reads, compares and writes under a second, short ``flock`` (``write_lock_path``), so that
    to any other writer the three are one step: the holder's renewals against a run taking over a killed
    holder's lease on this host, or writers on hosts sharing the folder where its file system honours ``flock``."""

    def __init__(self, path: str, lock_path: str, write_lock_path: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path
        self.lock_path = lock_path
        self.write_lock_path = write_lock_path
        self._clock = clock
        self._lock: IO[bytes] | None = None

    def read(self) -> Seen | None:
        """The record, its time left judged by its ``expires_at`` against this host's clock."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        record = LeaseRecord.model_validate_json(data)
        return Seen(record, _etag(data), record.expires_s() - self._clock.now())

    def create(self, data: bytes) -> str:
        """Publish ``data`` whole where no lease is: written aside, then hard-linked to the name, which fails if
        the name exists (a plain exclusive open would let readers see it half written)."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        partial = f"{self.path}.{uuid.uuid4().hex[:8]}{layout.PARTIAL_SUFFIX}"
        try:
            with open(partial, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(partial, self.path)
        except FileExistsError:
            raise Conflict(self.path) from None
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        return _etag(data)

    def replace(self, data: bytes, etag: str) -> str:
        with self._writing():
            seen = self.read()
            if seen is None:
                raise FileNotFoundError(self.path)
            if seen.etag != etag:
                raise Conflict(self.path)
            write_atomic(self.path, data)
        return _etag(data)

    def lock(self) -> bool:
        """Take the ``flock``, held until ``unlock`` (or the process's end). The lock file is never removed: a run
        could otherwise lock a file already unlinked while another locks its successor."""
        if self._lock is not None:
            return True
        os.makedirs(os.path.dirname(self.lock_path), exist_ok=True)
        handle = open(self.lock_path, "ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._lock = handle
        return True

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the only descriptor of the lock releases it
            self._lock = None

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the write lock, waiting for it: others hold it only while they compare and write. Each holding
        opens the file anew, so that the lock keeps out this process's other threads too (an ``flock`` belongs to
        an open file); like the lease's lock file, it is never removed."""
        os.makedirs(os.path.dirname(self.write_lock_path), exist_ok=True)
        with open(self.write_lock_path, "ab") as handle:  # closing it lets go
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


class S3LeaseStore:
    """The lease object on S3, read and written by single requests whose conditions the store checks.

    Each request is retried after a transient error by ``retrying_until`` alone, within ``deadline``: botocore
    tries it once, each try bounded by the deadline's timeouts, so a renewal or a fence's check ends, answered or
    failed, well before the lease could pass to another run. A retried conditional PUT whose first try did
    succeed fails its condition: callers read the lease back and recognise their own record by its nonce."""

    def __init__(self, lease: Location, deadline: Deadline) -> None:
        self.fs: Any = lease.fs
        self.bucket, self.key, _ = lease.fs.split_path(lease.path)
        self.deadline = deadline

    def read(self) -> Seen | None:
        try:
            response = self._request("get_object")
        except FileNotFoundError:
            return None
        record = LeaseRecord.model_validate_json(response["Body"])
        store_now = parsedate_to_datetime(response["ResponseMetadata"]["HTTPHeaders"]["date"]).timestamp()
        age_s = store_now - response["LastModified"].timestamp()
        return Seen(record, response["ETag"], record.ttl_s - age_s)

    def create(self, data: bytes) -> str:
        return self._request("put_object", Body=data, IfNoneMatch="*")["ETag"]

    def replace(self, data: bytes, etag: str) -> str:
        return self._request("put_object", Body=data, IfMatch=etag)["ETag"]

    def lock(self) -> bool:
        """Nothing to lock: the conditional writes alone keep runs apart."""
        return True

    def unlock(self) -> None:
        pass

    def _request(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """One request, its body read whole; errors as s3fs names them (a missing key is ``FileNotFoundError``, a
        refusal ``PermissionError``, a connection's failure ``ConnectionError``, the rest ``OSError``, which
        ``retrying_until`` retries) but a failed condition, which is a ``Conflict``."""
        client = s3_client(self.fs, self.deadline)
        call = getattr(client, method)
        defaults = _request_defaults(client, method, self.fs)

        def once() -> dict[str, Any]:
            try:
                response = call(Bucket=self.bucket, Key=self.key, **defaults, **kwargs)
            except botocore.exceptions.ClientError as error:
                if _is_conflict(error):
                    raise Conflict(str(error)) from error
                raise translate_boto_error(error) from error
            except (botocore.exceptions.HTTPClientError, botocore.exceptions.ConnectionError) as error:
                raise ConnectionError(str(error)) from error  # an OSError, as the heartbeat expects of a fault
            if "Body" in response:
                with response["Body"] as body:
                    response["Body"] = body.read()
            return response

        return retrying_until(once, self.deadline)


def s3_client(fs: Any, deadline: Deadline) -> Any:
    """A botocore client for the store of ``fs`` (an s3fs filesystem), one per filesystem and try's length:
    s3fs's own client is async and its conditional requests private, so this one is built from the same options
    s3fs builds its own from (endpoint, credentials, ``client_kwargs``, ``config_kwargs``, session options such
    as a profile), except that it tries each request once, within ``deadline``'s timeouts
    (``Deadline.client_config``)."""
    with _clients_lock:
        clients = _clients.setdefault(fs, {})
        client = clients.get(deadline.try_s)
        if client is None:
            client = clients[deadline.try_s] = _new_client(fs, deadline)
        return client


def _new_client(fs: Any, deadline: Deadline) -> Any:
    config = {**fs.config_kwargs, **deadline.client_config()}
    named = dict(zip(_CREDENTIALS, (fs.key, fs.secret, fs.token)), endpoint_url=fs.endpoint_url)
    options = {"use_ssl": fs.use_ssl, **fs.client_kwargs, **{k: v for k, v in named.items() if v is not None}}
    if fs.anon:
        config["signature_version"] = UNSIGNED
        options = {k: v for k, v in options.items() if k not in _CREDENTIALS}
    session = botocore.session.Session(**fs.kwargs)
    return session.create_client("s3", config=botocore.config.Config(**config), **options)


def _request_defaults(client: Any, method: str, fs: Any) -> dict[str, Any]:
    """The filesystem's request-wide parameters (``s3_additional_kwargs`` such as server-side encryption,
    requester pays) that ``method`` takes: s3fs adds them to each of its own requests."""
    operation = client.meta.service_model.operation_model(client.meta.method_to_api_mapping[method])
    defaults = {**fs.s3_additional_kwargs, **fs.req_kw}
    return {name: value for name, value in defaults.items() if name in operation.input_shape.members}


def _is_conflict(error: botocore.exceptions.ClientError) -> bool:
    """Whether a request failed for its condition (412) or a concurrent conditional write (409): the lease
    changed since read."""
    code = error.response.get("Error", {}).get("Code")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _CONFLICT_CODES or status in (409, 412)


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
