-- Apps: one per tenant. A business server signs requests with its server secret.
CREATE TABLE apps (
    app_id             BIGINT  PRIMARY KEY CHECK (app_id BETWEEN 1 AND 4294967295),
    name               TEXT    NOT NULL,
    server_secret      TEXT    NOT NULL,
    created_at         BIGINT  NOT NULL,
    disabled           BIGINT  NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    max_users_per_room BIGINT  NOT NULL DEFAULT 1000 CHECK (max_users_per_room >= 1),
    webhook_url        TEXT
);
