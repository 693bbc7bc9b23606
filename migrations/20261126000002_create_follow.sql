-- Follow edges, soft-deleted. The two covering indexes serve the following and
-- follower lists (newest first) without touching the clustered index.
CREATE TABLE follow (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    from_id    BIGINT UNSIGNED NOT NULL,
    to_id      BIGINT UNSIGNED NOT NULL,
    created_at DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    deleted_at DATETIME(6)     NULL DEFAULT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uk_follow_pair (from_id, to_id),
    KEY idx_follow_following (from_id, deleted_at, created_at, to_id),
    KEY idx_follow_followers (to_id, deleted_at, created_at, from_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
