# Sourced by the mysql image's entrypoint on the first start (empty datadir),
# after it created root@'%'. sqlx is built without TLS and RSA, so over plain
# TCP it cannot complete caching_sha2_password (MySQL 8.4's default): the
# account the sluice binaries use authenticates with mysql_native_password
# (enabled by --mysql-native-password=ON in docker-compose.yml).
pw=${MYSQL_ROOT_PASSWORD//\\/\\\\}
pw=${pw//\'/\\\'}
mysql --protocol=socket --socket="${SOCKET:-/var/run/mysqld/mysqld.sock}" -uroot -p"$MYSQL_ROOT_PASSWORD" <<SQL
ALTER USER 'root'@'%' IDENTIFIED WITH mysql_native_password BY '$pw';
SQL
unset pw
