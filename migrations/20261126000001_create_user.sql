-- Users and their redundant counters. follow_count / follower_count are written
-- only by the cache-syncer from the `counter` table's binlog (never by a service).
CREATE TABLE `user` (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    username         VARCHAR(32)     NOT NULL,
    password_hash    VARCHAR(255)    NOT NULL,
    avatar           VARCHAR(1024)   NOT NULL DEFAULT '',
    background_image VARCHAR(1024)   NOT NULL DEFAULT '',
    signature        VARCHAR(512)    NOT NULL DEFAULT '',
    follow_count     BIGINT UNSIGNED NOT NULL DEFAULT 0,
    follower_count   BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at       DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at       DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uk_user_username (username)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
