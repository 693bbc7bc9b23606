//! Spawning the service and seeding users.

use proto::relation::v1::relation_service_client::RelationServiceClient;
use relation_service::config::Settings;
use relation_service::startup::Application;
use testkit::{TestDb, TestRedis};

pub struct TestApp {
    pub db: TestDb,
    pub redis: TestRedis,
    pub client: RelationServiceClient<service_kit::mesh_auth::MeshChannel>,
    pub admin_port: u16,
    /// `http://127.0.0.1:<grpc port>`.
    pub grpc_url: String,
}

pub fn settings(db: &TestDb, redis: &TestRedis) -> Settings {
    Settings {
        service: testkit::service_common(db, redis),
        // Generous: the shared test machine can be slow, and these tests assert Redis answers.
        cache: relation_service::config::CacheSettings {
            redis_timeout: std::time::Duration::from_secs(2),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub async fn spawn_with(settings: Settings, db: TestDb, redis: TestRedis) -> TestApp {
    let app = Application::build(settings)
        .await
        .expect("build relation-service");
    let port = app.port();
    let admin_port = app.admin_port();
    tokio::spawn(app.run_until(std::future::pending()));
    let grpc_url = format!("http://127.0.0.1:{port}");
    let client = RelationServiceClient::new(testkit::mesh_channel(grpc_url.clone()).await);
    TestApp {
        db,
        redis,
        client,
        admin_port,
        grpc_url,
    }
}

pub async fn spawn_app() -> TestApp {
    let db = TestDb::new().await;
    let redis = TestRedis::new().await;
    let s = settings(&db, &redis);
    spawn_with(s, db, redis).await
}

impl TestApp {
    /// Inserts `n` users directly; returns their ids.
    pub async fn users(&self, n: usize) -> Vec<u64> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let name = format!("u_{}", testkit::unique_suffix());
            let r = sqlx::query("INSERT INTO user (username, password_hash) VALUES (?, 'x')")
                .bind(name)
                .execute(&self.db.pool)
                .await
                .expect("insert user");
            ids.push(r.last_insert_id());
        }
        ids
    }

    /// `counter.value` of (owner, kind), None without a row.
    pub async fn counter(&self, owner: u64, kind: u8) -> Option<i64> {
        sqlx::query_scalar("SELECT value FROM counter WHERE owner_id = ? AND kind = ?")
            .bind(owner)
            .bind(kind)
            .fetch_optional(&self.db.pool)
            .await
            .expect("read counter")
    }

    /// Active follow rows from → to.
    pub async fn active(&self, from: u64, to: u64) -> bool {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM follow WHERE from_id = ? AND to_id = ? AND deleted_at IS NULL",
        )
        .bind(from)
        .bind(to)
        .fetch_one(&self.db.pool)
        .await
        .expect("read follow");
        n == 1
    }

    pub async fn follow_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM follow")
            .fetch_one(&self.db.pool)
            .await
            .expect("count follows")
    }

    pub async fn counter_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM counter")
            .fetch_one(&self.db.pool)
            .await
            .expect("count counters")
    }

    pub async fn cleanup(mut self) {
        self.redis.cleanup().await;
        self.db.drop_db().await;
    }
}
