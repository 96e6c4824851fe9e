-- The state database (`.rehost/state.db`, SQLite in WAL mode, `PRAGMA user_version = 4`).
-- Applied on every open (every statement is IF NOT EXISTS); a change of tables or columns needs
-- a new user_version and a migration. Times are unix milliseconds.
--
-- Versions: 1 runs, snapshots, written_blocks, amis; 2 adds account_bindings (a version 1
-- database is migrated by creating it, empty: its applications bind on their next use); 3 adds
-- inspections and accepted_risks (created empty: servers are inspected again on next use); 4 adds
-- launches (created empty: the history starts empty). Two branches each numbered their tables 3,
-- so a version 3 database holds either: every table is created when missing, and a version 1, 2
-- or 3 database gains whichever it lacks when opened.

CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    app          TEXT NOT NULL,
    server       TEXT NOT NULL,
    grp          TEXT NOT NULL,
    status       TEXT NOT NULL,          -- running | completed | failed
    phase        TEXT NOT NULL,          -- scanning | uploading | completing | registering | completed | failed
    started_at   INTEGER NOT NULL,       -- unix ms, first attempt
    attempted_at INTEGER NOT NULL,       -- unix ms, latest attempt
    finished_at  INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 1,
    ami_name     TEXT,
    ami_id       TEXT,
    error        TEXT,
    timings      TEXT                    -- JSON object: phase -> seconds
);
CREATE INDEX IF NOT EXISTS runs_by_server ON runs (app, server, started_at);

CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id        TEXT PRIMARY KEY,
    run_id             TEXT NOT NULL REFERENCES runs (run_id),
    app                TEXT NOT NULL,
    server             TEXT NOT NULL,
    disk               TEXT NOT NULL,
    parent_snapshot_id TEXT,
    status             TEXT NOT NULL,    -- open | completing | completed | abandoned | deleted
    volume_size_gib    INTEGER NOT NULL,
    block_count        INTEGER NOT NULL,
    encrypted          INTEGER NOT NULL,
    kms_key_arn        TEXT,
    started_at         INTEGER NOT NULL,
    completed_at       INTEGER,
    blocks_total       INTEGER NOT NULL DEFAULT 0,
    blocks_scanned     INTEGER NOT NULL DEFAULT 0,
    blocks_uploaded    INTEGER NOT NULL DEFAULT 0,
    bytes_uploaded     INTEGER NOT NULL DEFAULT 0,
    blocks_changed     INTEGER NOT NULL DEFAULT 0,
    seconds            REAL NOT NULL DEFAULT 0,
    manifest           BLOB              -- set from `completing` on
);
CREATE INDEX IF NOT EXISTS snapshots_by_disk ON snapshots (app, server, disk, status);
CREATE INDEX IF NOT EXISTS snapshots_by_run ON snapshots (run_id, disk);

-- Blocks an open snapshot has accepted (PutSnapshotBlock answered), so a resumed run does not
-- send them again; dropped when the snapshot completes.
CREATE TABLE IF NOT EXISTS written_blocks (
    snapshot_id TEXT NOT NULL,
    block_index INTEGER NOT NULL,
    xxh3        BLOB NOT NULL,
    sha256      BLOB NOT NULL,
    PRIMARY KEY (snapshot_id, block_index)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS amis (
    ami_id       TEXT PRIMARY KEY,
    app          TEXT NOT NULL,
    server       TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    snapshot_ids TEXT NOT NULL,          -- JSON array, boot disk first
    encrypted    INTEGER NOT NULL,
    kms_key_id   TEXT,
    status       TEXT NOT NULL           -- available | deregistered
);
CREATE INDEX IF NOT EXISTS amis_by_server ON amis (app, server, created_at);

-- The AWS account and region each application's state is used with, recorded on first use;
-- another account or region is refused.
CREATE TABLE IF NOT EXISTS account_bindings (
    app        TEXT PRIMARY KEY,
    account    TEXT NOT NULL,
    region     TEXT NOT NULL,
    bound_at   INTEGER NOT NULL
);

-- Each server's latest guest inspection (`rehost inspect`, replicate), keyed by what was read:
-- reused while the fingerprint of its disks is unchanged.
CREATE TABLE IF NOT EXISTS inspections (
    app          TEXT NOT NULL,
    server       TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    inspected_at INTEGER NOT NULL,
    inspection   TEXT NOT NULL,          -- JSON: the ServerInspection as `rehost inspect` prints it
    PRIMARY KEY (app, server)
);

-- Every `--accept-risk SERVER` a launch used: the refusals let through, when, and by whom.
CREATE TABLE IF NOT EXISTS accepted_risks (
    app         TEXT NOT NULL,
    server      TEXT NOT NULL,
    mode        TEXT NOT NULL,           -- test | cutover
    findings    TEXT NOT NULL,           -- JSON array of the refusals accepted
    accepted_at INTEGER NOT NULL,
    caller_arn  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS accepted_risks_by_server ON accepted_risks (app, server, accepted_at);
-- Every launch of an application (launch, migrate, the cutover runbook, rollback): written when
-- it starts and again when it ends. Scalars in columns; the AMIs, the failure, an override of
-- the guardrails, the runbook's hooks and final sync in `detail`.
CREATE TABLE IF NOT EXISTS launches (
    launch_id   TEXT PRIMARY KEY,
    app         TEXT NOT NULL,
    kind        TEXT NOT NULL,           -- launch | migrate | cutover | rollback
    mode        TEXT NOT NULL,           -- test | cutover
    stack       TEXT NOT NULL,
    definition  TEXT NOT NULL,           -- hash of the launch-relevant definition
    health_gate INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT NOT NULL,           -- running | succeeded | unchanged | started | failed | refused | cancelled
    caller      TEXT,                    -- the caller's ARN
    detail      TEXT NOT NULL            -- JSON: amis, failure, forced, hooks, final_sync
);
CREATE INDEX IF NOT EXISTS launches_by_app ON launches (app, started_at);
