//! relation-service: gRPC relation service: transactional follow/unfollow, cursor-paginated lists.
//!
//! Not built yet: this crate only reserves its place in the workspace
//! (tracked by issue #4). Its binary says so and exits non-zero.
