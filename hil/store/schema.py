"""The store's tables, as SQLAlchemy Core sees them: one schema for sqlite and PostgreSQL.

Times are ISO 8601 text in UTC (as hil has always written them, so text order is time order), JSON is
text, a run's JUnit file is zlib-compressed bytes. The migrations that build these tables are in
migrations/versions/; a test checks that a migrated store and this module agree.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)

metadata = MetaData()

# A release: the images it ships (device type -> sha256 and path, JSON), draft until a gate finalizes it.
# finalized_by is who did (the gate's `who`), set by the same conditional update that makes it final.
releases = Table(
    "releases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Text, nullable=False),
    Column("device_types", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created", Text, nullable=False),
    Column("finalized_at", Text),
    Column("images", Text, nullable=False, server_default="{}"),
    Column("finalized_by", Text),
    CheckConstraint("status IN ('draft', 'final', 'invalidated')", name="releases_status"),
)

# Every gate decision, with its whole evidence (JSON).
decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("release_id", Integer, ForeignKey("releases.id"), nullable=False),
    Column("decided_at", Text, nullable=False),
    Column("who", Text, nullable=False),
    Column("verdict", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("policy_sha256", Text, nullable=False),
    Column("evidence", Text, nullable=False),
)

# A run is one pytest session; its JUnit file is kept whole (zlib) with its sha256, so a gate reading the
# run later reads exactly what a gate reading the file would have. tests and test_stats are for looking.
runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Text, nullable=False, unique=True),
    Column("started", Text, nullable=False),
    Column("finished", Text, nullable=False),
    Column("rig", Text, nullable=False),
    Column("device_type", Text, nullable=False),
    Column("image", Text, nullable=False),
    Column("image_sha256", Text, nullable=False),
    Column("os_version", Text, nullable=False),
    Column("os_profile", Text, nullable=False),
    Column("exitstatus", Integer, nullable=False),
    Column("passed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("boot_seconds", Float),
    Column("facts", Text, nullable=False),
    Column("junit_path", Text, nullable=False),
    Column("junit", LargeBinary, nullable=False),
    Column("junit_sha256", Text, nullable=False),
    Column("build_tag", Text, nullable=False, server_default=""),  # the CI build that made it ($BUILD_TAG)
    Index("runs_by_device_type", "device_type", "id"),
    Index("runs_by_rig", "rig", "id"),
    Index("runs_by_build_tag", "build_tag", "id"),
)

tests = Table(
    "tests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run", Integer, ForeignKey("runs.id"), nullable=False),
    Column("suite", Text, nullable=False),
    Column("test", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("message", Text, nullable=False),
    Column("details", Text, nullable=False),
    Index("tests_by_run", "run"),
    Index("tests_by_name", "suite", "test", "run"),
)

# Per image of a device type, how each test ended: flaky tests are one indexed query.
test_stats = Table(
    "test_stats",
    metadata,
    Column("device_type", Text, primary_key=True),
    Column("image_sha256", Text, primary_key=True),
    Column("suite", Text, primary_key=True),
    Column("test", Text, primary_key=True),
    Column("passed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("last_run", Integer, nullable=False),
    Index("test_stats_flaky", "failed", "passed"),
)

# Sessions that said they started and have not recorded their run yet.
running = Table(
    "running",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("started", Text, nullable=False),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("rig", Text, nullable=False),
    Column("artifacts", Text, nullable=False),
)

# Every `hil rig check`, from whichever agent ran it: its verdict, why, and the console it saw (zlib).
rig_checks = Table(
    "rig_checks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("rig", Text, nullable=False),
    Column("host", Text, nullable=False),
    Column("checked_at", Text, nullable=False),
    Column("healthy", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("console", LargeBinary),
    Index("rig_checks_by_rig", "rig", "id"),
)

# A mirror of who holds each rig's lease. The lease itself is an flock on the rig's host; its holder
# refreshes heartbeat, and a row whose heartbeat is old is shown as stale, never as held.
leases = Table(
    "leases",
    metadata,
    Column("rig", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("holder", Text, nullable=False),
    Column("since", Text, nullable=False),
    Column("heartbeat", Text, nullable=False),
)

# A `hil faults run`: which suite caught which fault injected into an image; cells is JSON, one entry per
# fault (its suite, outcome, the test that caught it and its first line of failure).
fault_matrices = Table(
    "fault_matrices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started", Text, nullable=False),
    Column("finished", Text, nullable=False),
    Column("rig", Text, nullable=False),
    Column("device_type", Text, nullable=False),
    Column("image", Text, nullable=False),
    Column("image_sha256", Text, nullable=False),
    Column("os_profile", Text, nullable=False),
    Column("control", Text, nullable=False),
    Column("caught", Integer, nullable=False),
    Column("applicable", Integer, nullable=False),
    Column("cells", Text, nullable=False),
    Index("fault_matrices_by_image", "image_sha256", "os_profile", "id"),
)
