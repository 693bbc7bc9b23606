use redis::AsyncCommands;
use testkit::TestRedis;

#[tokio::test]
async fn redis_round_trip_through_the_bucket_and_list_layout() {
    let mut r = TestRedis::new().await;
    let keys = r.keys(1000);
    let slot = keys.counter(2, 123_456);
    let _: () = r.conn.hset(&slot.key, slot.field, 42).await.unwrap();
    let got: i64 = r.conn.hget(&slot.key, slot.field).await.unwrap();
    assert_eq!(got, 42);

    let list = keys.followers(7);
    let _: () = r.conn.zadd(&list, 1, 100).await.unwrap();
    let _: () = r.conn.zadd(&list, 2, 200).await.unwrap();
    let newest: Vec<u64> = r.conn.zrevrange(&list, 0, 0).await.unwrap();
    assert_eq!(newest, [2]);

    r.cleanup().await;
    let left: Vec<String> = r.conn.keys(keys.all_pattern()).await.unwrap();
    assert!(left.is_empty(), "cleanup left {left:?}");
}
