-- Usage records, live-room counts, the webhook outbox and the workers that write them.
-- `webhook_url` (unused until now) becomes the app's webhook endpoint; its signing secret
-- sits beside it.
ALTER TABLE apps ADD COLUMN webhook_secret TEXT;

-- One row per login session (a resume keeps the row). logout_ms/end_reason are NULL while open.
CREATE TABLE usage_sessions (
    session_id TEXT    PRIMARY KEY,
    app_id     BIGINT  NOT NULL,
    room_id    TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    worker_id  TEXT    NOT NULL,
    login_ms   BIGINT  NOT NULL,
    logout_ms  BIGINT,
    end_reason TEXT
);
CREATE INDEX usage_sessions_by_app_time ON usage_sessions (app_id, login_ms);
CREATE INDEX usage_sessions_open ON usage_sessions (worker_id) WHERE logout_ms IS NULL;

-- One row per published stream (a relay publisher peer that went live).
CREATE TABLE usage_streams (
    record_id  TEXT    PRIMARY KEY,
    app_id     BIGINT  NOT NULL,
    room_id    TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    stream_id  TEXT    NOT NULL,
    relay_id   TEXT    NOT NULL,
    start_ms   BIGINT  NOT NULL,
    stop_ms    BIGINT,
    bytes_in   BIGINT  NOT NULL DEFAULT 0,
    bytes_out  BIGINT  NOT NULL DEFAULT 0,
    end_reason TEXT
);
CREATE INDEX usage_streams_by_app_time ON usage_streams (app_id, start_ms);
CREATE INDEX usage_streams_open ON usage_streams (relay_id) WHERE stop_ms IS NULL;

-- Open sessions per room, across workers: 0 -> 1 is room_started, 1 -> 0 room_finished.
CREATE TABLE live_rooms (
    app_id     BIGINT  NOT NULL,
    room_id    TEXT    NOT NULL,
    sessions   BIGINT  NOT NULL CHECK (sessions >= 0),
    started_ms BIGINT  NOT NULL,
    PRIMARY KEY (app_id, room_id)
);

-- Every running worker, renewed every few seconds; a row that stops moving is a dead worker
-- whose open sessions and streams are closed (worker_lost) at its lease expiry.
CREATE TABLE usage_workers (
    worker_id    TEXT    PRIMARY KEY,
    started_ms   BIGINT  NOT NULL,
    last_seen_ms BIGINT  NOT NULL,
    lease_ms     BIGINT  NOT NULL
);

-- Webhook events, written in the transaction of the record they describe.
CREATE TABLE webhook_outbox (
    seq             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    app_id          BIGINT  NOT NULL,
    room_id         TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_ms      BIGINT  NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT  NOT NULL,
    done_ms         BIGINT,
    outcome         TEXT,
    last_error      TEXT
);
CREATE INDEX webhook_outbox_pending ON webhook_outbox (app_id, room_id, seq) WHERE done_ms IS NULL;
CREATE INDEX webhook_outbox_due ON webhook_outbox (seq) WHERE done_ms IS NULL;
CREATE INDEX webhook_outbox_done ON webhook_outbox (done_ms) WHERE done_ms IS NOT NULL;

-- Used on SQLite only (PostgreSQL workers lock rows with FOR UPDATE SKIP LOCKED); kept in step.
CREATE TABLE webhook_dispatch_lease (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    holder   TEXT   NOT NULL,
    until_ms BIGINT NOT NULL
);
