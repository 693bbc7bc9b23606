#!/usr/bin/env bash
# `make bench-follow-baseline`: the raw rate of sluice's follow transaction run
# inside MariaDB — the baseline the REST follow rate (BENCHMARKS.md,
# "Services") is reported next to. A stored procedure makes the same
# statements relation-service makes for one follow of a random pair (SELECT …
# FOR UPDATE, the follow row, both counter rows in key order, COMMIT; an
# already-active pair is unfollowed instead, so every call commits a change),
# driven by `mariadb-slap --concurrency=32` in a scratch database
# (`sluice_slap`, dropped afterwards) on the stack's MariaDB.
#
#   scripts/bench-follow-baseline.sh [calls] [users] [concurrency]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"
CALLS=${1:-64000}
USERS=${2:-1000}
CONC=${3:-32}
DB=sluice_slap
mdb() { mariadb --no-defaults --host=127.0.0.1 --port="$SLUICE_MYSQL_PORT" --user=root "$@"; }
mdb -e "SELECT 1" >/dev/null 2>&1 || { echo "MariaDB is not answering on $SLUICE_MYSQL_PORT: make up" >&2; exit 2; }
trap '[ -n "${KEEP:-}" ] || mdb -e "DROP DATABASE IF EXISTS $DB" || true' EXIT
mdb -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"
cat migrations/*.sql | mdb "$DB"
mdb "$DB" -e "INSERT INTO user (id, username, password_hash) SELECT seq, CONCAT('u', seq), 'x' FROM seq_1_to_$USERS"
mdb "$DB" -e "CREATE TABLE retries (n BIGINT NOT NULL) ENGINE=MEMORY; INSERT INTO retries VALUES (0)"
mdb "$DB" <<'SQL'
DELIMITER //
CREATE PROCEDURE follow_once(IN a BIGINT UNSIGNED, IN b BIGINT UNSIGNED)
BEGIN
    DECLARE active INT DEFAULT NULL;
    DECLARE delta INT DEFAULT 1;
    START TRANSACTION;
    SELECT deleted_at IS NULL INTO active FROM follow WHERE from_id = a AND to_id = b FOR UPDATE;
    IF active IS NULL THEN
        INSERT INTO follow (from_id, to_id, created_at)
            SELECT x.id, y.id, NOW(6) FROM user x JOIN user y ON y.id = b WHERE x.id = a;
    ELSEIF active = 0 THEN
        UPDATE follow SET deleted_at = NULL, created_at = NOW(6) WHERE from_id = a AND to_id = b;
    ELSE
        UPDATE follow SET deleted_at = NOW(6) WHERE from_id = a AND to_id = b;
        SET delta = -1;
    END IF;
    -- Both counter rows in one statement, in (owner_id, kind) order.
    IF a < b THEN
        INSERT INTO counter (owner_id, kind, value, updated_at)
            VALUES (a, 1, GREATEST(delta, 0), NOW(6)), (b, 2, GREATEST(delta, 0), NOW(6))
            ON DUPLICATE KEY UPDATE value = GREATEST(value + delta, 0), updated_at = NOW(6);
    ELSE
        INSERT INTO counter (owner_id, kind, value, updated_at)
            VALUES (b, 2, GREATEST(delta, 0), NOW(6)), (a, 1, GREATEST(delta, 0), NOW(6))
            ON DUPLICATE KEY UPDATE value = GREATEST(value + delta, 0), updated_at = NOW(6);
    END IF;
    COMMIT;
END//
-- Retries lock conflicts the way relation-service does (deadlock, lock wait
-- timeout, a racing first insert, and 1467, which MariaDB answers to a
-- conflict met while taking the auto-increment lock).
CREATE PROCEDURE follow_random(IN n_users BIGINT UNSIGNED)
BEGIN
    DECLARE a BIGINT UNSIGNED DEFAULT FLOOR(1 + RAND() * n_users);
    DECLARE b BIGINT UNSIGNED DEFAULT FLOOR(1 + RAND() * n_users);
    DECLARE done INT DEFAULT 0;
    DECLARE tries INT DEFAULT 0;
    IF a = b THEN SET b = a % n_users + 1; END IF;
    -- relation-service's sessions run at READ COMMITTED (no gap locks).
    SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED;
    WHILE done = 0 DO
        BEGIN
            DECLARE EXIT HANDLER FOR 1213, 1205, 1062, 1467
            BEGIN
                ROLLBACK;
                SET tries = tries + 1;
                UPDATE retries SET n = n + 1;
                IF tries >= 20 THEN RESIGNAL; END IF;
                -- Random pause before the retry, as relation-service does.
                DO SLEEP(RAND() * 0.002 * POW(2, LEAST(tries, 6)));
            END;
            CALL follow_once(a, b);
            SET done = 1;
        END;
    END WHILE;
END//
DELIMITER ;
SQL
echo "mariadb-slap: $CALLS calls of follow_random($USERS), concurrency $CONC"
OUT=$(mariadb-slap --no-defaults --host=127.0.0.1 --port="$SLUICE_MYSQL_PORT" --user=root \
    --create-schema="$DB" --concurrency="$CONC" --iterations=1 \
    --number-of-queries="$CALLS" --query="CALL follow_random($USERS)" 2>&1) || { echo "$OUT" >&2; exit 1; }
echo "$OUT"
SECS=$(awk '/Average number of seconds to run all queries/ {print $(NF-1)}' <<<"$OUT")
ROWS=$(mdb -N "$DB" -e "SELECT COUNT(*) FROM follow")
RETRIES=$(mdb -N "$DB" -e "SELECT n FROM retries")
BAD=$(mdb -N "$DB" -e "SELECT COUNT(*) FROM (SELECT u.id, (SELECT COUNT(*) FROM follow f WHERE f.from_id = u.id AND f.deleted_at IS NULL) AS n, COALESCE((SELECT value FROM counter c WHERE c.owner_id = u.id AND c.kind = 1), 0) AS v FROM user u) t WHERE n <> v")
awk -v c="$CALLS" -v s="$SECS" -v r="$ROWS" -v bad="$BAD" -v retries="$RETRIES" 'BEGIN {
    printf "follow transactions committed inside MariaDB: %.0f tx/s (%d calls in %.2f s; %d retried conflicts; %d follow rows; users whose following counter differs from their follow rows: %d)\n", c / s, c, s, retries, r, bad }'
