"""The touches pipeline: pull from the activity source into the ledger and deliver to the CRM.

The two run side by side (``_Puller``): the pull in a thread of its own, the delivery in the
run's thread taking what each committed page stored, round after round, until the pull ended
and its last page is delivered. A pull waits on its source (Marketo's 100 calls per 20 s bound a
backfill's lead lookups), a delivery on its CRM and its own work, so a run takes about the
longer of the two rather than their sum. Only committed touches are delivered, so the order of
commits (the pull's pages, the delivery's batches) is what keeps exactly-once, as before.

Pull: ``source.pull_touches(cursor, until=run start)``; each page's touches, the records the
source refused (``Page.rejects``: dead letters of stage ``pull``, with the raw record and the
reason) and the advanced cursor are committed in ONE fenced transaction (duplicates dropped on
the touch key, a refusal already open not written twice), so a crash re-reads at most one page
and one poison record never stops the pipeline. Sources that store their own touches (file
imports, the webhook receiver) have no pull: the pipeline delivers what the ledger holds for
them. A pull that fails (quota spent, the source down) still lets the run deliver what the
ledger holds, then the run fails with the pull's error; a delivery that fails or stops ends the
pull after its page in progress.

One pull per source, fanned out to every sink. The pull belongs to the source, not to the
pipeline: its cursor is stored under ``source:<name>`` (a pipeline's own cursor of before is
read once as the start) and it runs under the lease ``source:<name>``, so two pipelines reading
one Marketo source to two CRMs never pull it side by side. The pull records its ``until`` (stream
``PULLED_STREAM``); a pipeline that gets the source lease after a pull reaching its tick (when
scheduled; else its own start) skips its pull and delivers what the ledger holds, since the
ledger keeps touches by source and every sink's delivery reads them from there.

Deliver (``deliveries.Deliverer``), streaming through the ledger by touch id in batches of
``batch_size``: first the touches left ``intended`` by a crash or ``failed`` (held people,
unanswered records), then the touches after the ``deliver`` cursor, the highest touch id whose
fate is recorded (read by keyset, see ``_new_batches``). Before the first batch, the people of
all the new touches that neither the ledger nor the run knows are looked up in a few full CRM
lookups (``Deliverer.resolve_ahead``), not one per batch; with the pull alongside, once per
round of pages. Batches are pipelined: while one
batch is being pushed, the next is resolved and rendered; pushes in flight per CRM org are
bounded by ``Connections.push_slots``. With the mapping's ``campaign_members`` on, each push
also settles the Salesforce Campaign memberships of the touches it delivered (see
``deliveries`` for why a crash loses none).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, Select, func, select

from connectors.base import Cursor
from connectors.errors import ClosedloopError, ConfigError
from sync import leases
from sync.backlog import DELIVER_STREAM
from sync.ingest import insert_rejects, insert_touches
from sync.ledger.dialect import AnyOf
from sync.ledger.engine import reading
from sync.ledger.models import DeadLetterStage, DeliveryRow, DeliveryState, TouchRow
from sync.pipelines.context import (
    Fence,
    FenceLost,
    Stopped,
    cursor_value,
    load_cursor,
    save_cursor,
)
from sync.pipelines.deliveries import Deliverer, Pending
from sync.pipelines.rows import touch_from_row

if TYPE_CHECKING:
    from sync.mapping import CompiledMapping
    from sync.pipelines.context import RunContext

__all__ = [
    "DELIVER_STREAM",
    "PULLED_STREAM",
    "PULL_STREAM",
    "delivered_query",
    "load_pipeline_mapping",
    "new_touches_query",
    "run_touches",
    "source_key",
]

PULL_STREAM = "touches"
PULLED_STREAM = "pulled"  # of a source: the ``until`` of its last complete pull
SOURCE_LEASE_SECONDS = 60.0
SOURCE_LEASE_RETRY_SECONDS = 0.1
# Touch ids per read of a round's emails for the look-ahead (``_round_emails``): at most this
# many addresses in memory at once (~2 MB).
EMAIL_WINDOW = 20_000

log = structlog.get_logger(__name__)

_TOUCH = TouchRow.__table__  # type: ignore[attr-defined]
_DELIVERY = DeliveryRow.__table__  # type: ignore[attr-defined]
# Touch ids per delivered check (bound parameters: SQLite allows 32,766, PostgreSQL 65,535).
_PROBE_CHUNK = 5_000


def load_pipeline_mapping(ctx: RunContext) -> CompiledMapping:
    """The touches pipeline's mapping, checked and compiled against the own schema of the CRM
    org it writes to (cached in the ledger, ``sync.crm_schema``)."""
    from sync.crm_schema import pipeline_crm, pipeline_schema
    from sync.mapping import load_mapping

    path = ctx.pipeline.mapping
    if path is None:
        raise ConfigError(f"pipeline {ctx.name!r} needs a mapping file")
    crm = pipeline_crm(ctx.pipeline, writes_only=True)
    if crm is None:
        raise ConfigError(f"pipeline {ctx.name!r} needs its CRM connection")
    return load_mapping(path, pipeline_schema(ctx, crm))


def run_touches(ctx: RunContext) -> None:
    """Run a touches pipeline once (see the module docstring)."""
    pipeline = ctx.pipeline
    if pipeline.source is None or pipeline.sink is None:
        raise ConfigError(f"pipeline {ctx.name!r} needs a source and a sink")
    mapping = load_pipeline_mapping(ctx)
    crm = ctx.connections.crm(pipeline.sink)
    deliverer = _CursorDeliverer(ctx, crm, pipeline.sink, mapping)
    puller = _Puller(ctx, pipeline.source)
    puller.start()
    try:
        _deliver_while_pulling(ctx, deliverer, pipeline.source, puller)
    finally:
        puller.stop()
        puller.join()
    if isinstance(puller.error, FenceLost) or (
        puller.error is not None and not isinstance(puller.error, ClosedloopError)
    ):
        raise puller.error
    waiting = ctx.counts.get("held_until_mql", 0)
    if waiting:
        ctx.note(
            f"{waiting} touch(es) wait until their person is MQL (lifecycle.mql_gate); "
            "`closedloop mappings preview` shows why per person"
        )
    minimum = deliverer.minimum_calls()
    if minimum is not None:
        ctx.minimum_calls[pipeline.sink] = minimum
    if puller.error is not None:
        # What earlier pages stored was delivered; the run reports the pull's failure.
        ctx.note(f"pulling from {pipeline.source} failed; delivered the touches already stored")
        raise puller.error


class _Puller(threading.Thread):
    """Pulls the source in the background while the run delivers what its pages stored: the
    pull waits on the source's limits (Marketo answers 100 calls per 20 s) and the delivery on
    the CRM's, so a run takes about the longer of the two, not their sum.

    ``error`` is what ended the pull early (None when it finished); ``stored`` counts the
    touches its pages stored so far, and ``wait`` sleeps until enough more are."""

    def __init__(self, ctx: RunContext, source_name: str) -> None:
        super().__init__(name=f"pull-{source_name}", daemon=True)
        self.ctx = ctx
        self.source_name = source_name
        self.error: BaseException | None = None
        self.done = False
        self.stored = 0
        self._changed = threading.Condition()
        self._stopping = False

    def run(self) -> None:
        try:
            _pull(self.ctx, self.source_name, self._page_stored)
        except BaseException as exc:  # noqa: BLE001 - handed to the run's thread
            self.error = exc
        finally:
            with self._changed:
                self.done = True
                self._changed.notify_all()

    def _page_stored(self, touches: int) -> None:
        """After each page's commit: wake the delivery; end here when the run stopped."""
        with self._changed:
            self.stored += touches
            self._changed.notify_all()
            if self._stopping:
                raise Stopped

    def stop(self) -> None:
        """End the pull after its page in progress (the delivery failed or stopped)."""
        with self._changed:
            self._stopping = True

    def wait(self, stored: int) -> bool:
        """Wait up to a second for ``stored`` touches stored in all or the pull's end; whether
        either came (the caller checks for a stop in between)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.stored >= stored or self.done, 1.0)


# A round of delivery alongside the pull waits for this many batches' worth of new touches (or
# the pull's end): each round looks up its new people in full CRM calls (``resolve_ahead``), and
# small rounds would spend more calls on the same people.
ROUND_BATCHES = 10


def _deliver_while_pulling(
    ctx: RunContext, deliverer: _CursorDeliverer, source: str, puller: _Puller
) -> None:
    """Deliver what the ledger holds, then each round of touches the pull stores, until the
    pull ended and its last pages are delivered (retries of earlier runs go in the first
    round)."""
    first = True
    while True:
        ended = puller.done  # read first: pages stored after this go in the next round
        stored = puller.stored
        _deliver(ctx, deliverer, source, retries=first)
        first = False
        if ended or isinstance(puller.error, FenceLost):
            return
        wanted = stored + ROUND_BATCHES * ctx.pipeline.batch_size
        while not puller.wait(wanted):
            ctx.check_stop()  # a stop or a spent budget ends the run here, as between batches


def source_key(source_name: str) -> str:
    """The name of a pulled source's lease and cursors, shared by every pipeline reading it."""
    return f"source:{source_name}"


def _pull(ctx: RunContext, source_name: str, on_page: Callable[[int], None]) -> None:
    """Pull ``source_name`` into the ledger; ``on_page(touches)`` follows each page's commit."""
    source = ctx.connections.source(source_name)
    if source is None:
        ctx.note(
            f"{source_name} stores its own touches (file import or webhook): "
            "delivering what the ledger holds"
        )
        return
    with _source_lease(ctx, source_name) as fence:
        if fence is None:  # stopped while another pipeline was pulling the source
            return
        if ctx.since is None and _pulled_enough(ctx, source_name):
            ctx.note(
                f"{source_name} was already pulled for this run by a pipeline sharing it: "
                "delivering what the ledger holds"
            )
            return
        _pull_pages(ctx, source, source_name, fence, on_page)


@contextmanager
def _source_lease(ctx: RunContext, source_name: str) -> Iterator[Fence | None]:
    """Hold the source's lease while pulling it (another pipeline of the same source waits
    for it); None when a stop was requested while waiting."""
    name = source_key(source_name)
    owner = leases.process_owner("pull")
    while (fence := leases.acquire(ctx.engine, name, owner, SOURCE_LEASE_SECONDS)) is None:
        if ctx.should_stop():
            yield None
            return
        time.sleep(SOURCE_LEASE_RETRY_SECONDS)
    try:
        with leases.Heartbeat(ctx.engine, fence, SOURCE_LEASE_SECONDS):
            yield fence
    finally:
        try:
            leases.release(ctx.engine, fence)
        except Exception:  # noqa: BLE001 - the lease then simply expires
            log.warning("source lease release failed", lease=name)


def _pulled_enough(ctx: RunContext, source_name: str) -> bool:
    """Whether the source's last complete pull reached at least the moment this run needs
    (its tick when scheduled, else its own start): then another pipeline pulled it for us."""
    with reading(ctx.engine) as conn:
        pulled = load_cursor(conn, source_key(source_name), PULLED_STREAM).value
    needed = ctx.pulled_since or ctx.started_at
    return pulled is not None and datetime.fromisoformat(pulled) >= needed


def _pull_pages(
    ctx: RunContext, source: Any, source_name: str, fence: Fence, on_page: Callable[[int], None]
) -> None:
    key = source_key(source_name)
    with reading(ctx.engine) as conn:
        stored = load_cursor(conn, key, PULL_STREAM)
    if stored.value is None:  # pulled before pulls were shared: this pipeline's own cursor
        stored = ctx.load_cursor(PULL_STREAM)
    cursor = Cursor(cursor_value(ctx.since)) if ctx.since is not None else stored
    refused = 0
    for page in source.pull_touches(cursor, until=ctx.started_at):
        with ctx.transaction() as conn:
            leases.check_fence(conn, fence)
            result = insert_touches(conn, page.records)
            letters = insert_rejects(conn, ctx.name, DeadLetterStage.PULL.value, page.rejects)
            if _moves_forward(stored, page.cursor):
                save_cursor(conn, key, PULL_STREAM, page.cursor, fencing_token=fence.token)
        refused += len(page.rejects)
        ctx.add("pulled", len(page.records))
        ctx.add("new", result.inserted)
        ctx.add("duplicates", result.duplicates)
        ctx.add("refused", len(page.rejects))
        ctx.add("dead_lettered", letters)
        ctx.progress("pull", len(page.records) + len(page.rejects))
        on_page(len(page.records))
        ctx.check_stop()
    with ctx.transaction() as conn:
        leases.check_fence(conn, fence)
        until = Cursor(ctx.started_at.isoformat())
        save_cursor(conn, key, PULLED_STREAM, until, fencing_token=fence.token)
    if refused:
        ctx.note(
            f"{refused} record(s) from {source_name} could not be read and became dead letters "
            "of stage pull: see `closedloop dead-letters list`"
        )
    from sync.names import refresh_programs

    refresh_programs(ctx, source, source_name)  # names of the programs touches cite by id


def _moves_forward(stored: Cursor, candidate: Cursor) -> bool:
    """A backfill never moves the regular cursor back (values are ISO times of one format)."""
    if stored.value is None or candidate.value is None:
        return candidate.value is not None or stored.value is None
    return candidate.value >= stored.value


class _CursorDeliverer(Deliverer):
    """A deliverer that also advances the ``deliver`` cursor with each batch's intents."""

    def after_prepare(self, conn: Connection, batch: Sequence[Pending]) -> None:
        highest = max((p.touch_id for p in batch), default=None)
        if highest is None:
            return
        current = self.ctx_cursor
        if current is None or highest > current:
            self.ctx.save_cursor(conn, DELIVER_STREAM, Cursor(str(highest)))
            self.ctx_cursor = highest

    ctx_cursor: int | None = None


def _retry_batches(ctx: RunContext, source: str, sink: str, size: int) -> Iterator[list[Pending]]:
    """Touches whose delivery is intended (crash leftovers) or failed (held), by touch id."""
    after = 0
    while True:
        with reading(ctx.engine) as conn:
            rows = conn.execute(
                select(_TOUCH)
                .join(_DELIVERY, _DELIVERY.c.touch_id == _TOUCH.c.id)
                .where(
                    _DELIVERY.c.sink == sink,
                    _DELIVERY.c.state.in_(
                        [DeliveryState.INTENDED.value, DeliveryState.FAILED.value]
                    ),
                    _TOUCH.c.source == source,
                    _TOUCH.c.id > after,
                )
                .order_by(_TOUCH.c.id)
                .limit(size)
            ).all()
        if not rows:
            return
        after = rows[-1].id
        yield [Pending(r.id, touch_from_row(r)) for r in rows]


def _new_batches(
    ctx: RunContext, source: str, sink: str, size: int, after: int, *, upto: int
) -> Iterator[list[Pending]]:
    """Touches after the deliver cursor, up to touch id ``upto``, with no delivery to ``sink``
    yet, by touch id (touches stored since ``upto`` was read wait for the next round, whose
    people are looked up ahead with them).

    Two keyset reads per batch, each an index range whatever the ledger holds (so a batch costs
    the same at a million touches as at a thousand, on SQLite and PostgreSQL alike): the next
    ``size`` touches of ``source`` after ``after`` (index ``touch (source, id)``), then which of
    them already have a delivery to ``sink`` (the unique ``delivery (touch_id, sink)``, probed
    with the batch's ids). No join: a planner cannot pick a plan that reads every delivery.
    """
    while True:
        with reading(ctx.engine) as conn:
            rows = conn.execute(new_touches_query(source, after, size, upto)).all()
            if not rows:
                return
            after = rows[-1].id
            ids = [r.id for r in rows]
            delivered = {
                touch_id
                for start in range(0, len(ids), _PROBE_CHUNK)
                for touch_id in conn.execute(
                    delivered_query(sink, ids[start : start + _PROBE_CHUNK])
                ).scalars()
            }
        batch = [Pending(r.id, touch_from_row(r)) for r in rows if r.id not in delivered]
        if batch:
            yield batch


def new_touches_query(source: str, after: int, size: int, upto: int | None = None) -> Select[Any]:
    """The next ``size`` touches of ``source`` after touch id ``after`` (keyset by id), up to
    touch id ``upto`` when given."""
    query = select(_TOUCH).where(_TOUCH.c.source == source, _TOUCH.c.id > after)
    if upto is not None:
        query = query.where(_TOUCH.c.id <= upto)
    return query.order_by(_TOUCH.c.id).limit(size)


def delivered_query(sink: str, touch_ids: Sequence[int]) -> Select[Any]:
    """Which of ``touch_ids`` have a delivery to ``sink``: one probe of the unique
    ``delivery (touch_id, sink)`` each (an id range could span other sources' deliveries, and
    ``sink =`` alone matches every delivery to the sink)."""
    return select(_DELIVERY.c.touch_id).where(
        AnyOf(_DELIVERY.c.touch_id, touch_ids), _DELIVERY.c.sink == sink
    )


def _round_emails(ctx: RunContext, source: str, after: int, upto: int) -> Iterator[str]:
    """The emails of ``source``'s touches with ids in ``(after, upto]``, read ``EMAIL_WINDOW``
    touch ids at a time (an email recurs across windows; ``resolve_ahead`` skips the known).

    Not in one query: a round after a long pull spans most of a backfill, and its ~200,000
    distinct emails held at once (on PostgreSQL twice, in libpq's result and as strings) were
    the worker's peak at 1,000,000 touches."""
    low = after
    while low < upto:
        high = min(low + EMAIL_WINDOW, upto)
        with reading(ctx.engine) as conn:
            emails = (
                conn.execute(
                    select(_TOUCH.c.email)
                    .where(
                        _TOUCH.c.source == source,
                        _TOUCH.c.id > low,
                        _TOUCH.c.id <= high,
                        _TOUCH.c.email.is_not(None),
                    )
                    .distinct()
                )
                .scalars()
                .all()
            )
        yield from emails
        low = high


def _deliver(
    ctx: RunContext, deliverer: _CursorDeliverer, source: str, *, retries: bool = True
) -> None:
    sink = deliverer.sink
    size = ctx.pipeline.batch_size
    stored = ctx.load_cursor(DELIVER_STREAM)
    after = int(stored.value) if stored.value and stored.value.isdigit() else 0
    deliverer.ctx_cursor = after
    ctx.refresh_statistics()  # the pull may have grown the ledger many times over
    # Every unseen person of the new touches in a few CRM lookups, not one per batch: the
    # touches stored by now (the pull alongside stores more for the next round).
    with reading(ctx.engine) as conn:
        upto = (
            conn.execute(
                select(func.max(_TOUCH.c.id)).where(_TOUCH.c.source == source)
            ).scalar_one_or_none()
            or after
        )
    deliverer.resolve_ahead(_round_emails(ctx, source, after, upto))
    in_flight_max = ctx.connections.push_limit(sink)
    inflight: deque[Future[None]] = deque()
    with ThreadPoolExecutor(max_workers=in_flight_max, thread_name_prefix="push") as pool:
        try:
            rounds = [_new_batches(ctx, source, sink, size, after, upto=upto)]
            if retries:
                rounds.insert(0, _retry_batches(ctx, source, sink, size))
            for batches in rounds:
                for batch in batches:
                    if ctx.should_stop():
                        break
                    ctx.refresh_statistics()
                    prepared = deliverer.prepare(batch)
                    while len(inflight) >= in_flight_max:
                        inflight.popleft().result()
                    inflight.append(pool.submit(deliverer.push, prepared))
                    if ctx.should_stop():
                        break
                if ctx.should_stop():
                    break
        finally:
            errors: list[BaseException] = []
            while inflight:
                try:
                    inflight.popleft().result()
                except BaseException as exc:  # noqa: BLE001 - re-raised below, first one wins
                    errors.append(exc)
        if errors:
            raise errors[0]
    ctx.check_stop()
