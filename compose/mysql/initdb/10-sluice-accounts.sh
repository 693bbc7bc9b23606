# Sourced by the mysql image's entrypoint on the first start (empty datadir),
# after it created the `sluice` database. One account per role, each with
# only what it needs (root stays for the image's own healthcheck and for
# operators, over the local socket):
#   sluice_migrate  owns the schema: DDL and DML on sluice.* (the migrate job)
#   sluice_relay    reads the binlog (REPLICATION SLAVE, REPLICATION CLIENT)
#                   and snapshots tables (SELECT on sluice.*); writes nothing
#   sluice_app      the services and the cache-syncer: DML on sluice.* only
# Passwords come from the environment (compose/.env), never from a command
# line. sqlx is built without TLS and RSA, so over plain TCP it cannot
# complete caching_sha2_password (MySQL 8.4's default): the accounts use
# mysql_native_password (--mysql-native-password=ON in docker-compose.yml).
quote() { local v=${1//\\/\\\\}; printf "'%s'" "${v//\'/\\\'}"; }
for v in MYSQL_MIGRATE_PASSWORD MYSQL_RELAY_PASSWORD MYSQL_APP_PASSWORD; do
    [ -n "${!v:-}" ] || { echo "10-sluice-accounts.sh: $v is not set" >&2; exit 1; }
done
mysql --protocol=socket --socket="${SOCKET:-/var/run/mysqld/mysqld.sock}" -uroot -p"$MYSQL_ROOT_PASSWORD" <<SQL
CREATE USER 'sluice_migrate'@'%' IDENTIFIED WITH mysql_native_password BY $(quote "$MYSQL_MIGRATE_PASSWORD");
GRANT ALL PRIVILEGES ON sluice.* TO 'sluice_migrate'@'%';
CREATE USER 'sluice_relay'@'%' IDENTIFIED WITH mysql_native_password BY $(quote "$MYSQL_RELAY_PASSWORD");
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'sluice_relay'@'%';
GRANT SELECT ON sluice.* TO 'sluice_relay'@'%';
CREATE USER 'sluice_app'@'%' IDENTIFIED WITH mysql_native_password BY $(quote "$MYSQL_APP_PASSWORD");
GRANT SELECT, INSERT, UPDATE, DELETE ON sluice.* TO 'sluice_app'@'%';
SQL
