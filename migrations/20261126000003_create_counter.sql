-- Counters, one row per (owner, kind). kind: 1 = following, 2 = followers.
-- updated_at is set to NOW(6) by the writing transaction: it is how
-- commit-to-Redis freshness is measured (binlog headers carry whole seconds).
CREATE TABLE counter (
    owner_id   BIGINT UNSIGNED  NOT NULL,
    kind       TINYINT UNSIGNED NOT NULL,
    value      BIGINT           NOT NULL DEFAULT 0,
    updated_at DATETIME(6)      NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (owner_id, kind)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
