//! The gRPC contracts of sluice's services, versioned by package:
//! `user.v1`, `relation.v1`, `count.v1` (sources in `proto/`).
//!
//! Generated tonic clients and servers are re-exported per package;
//! [`FILE_DESCRIPTOR_SET`] feeds server reflection so grpcurl and ghz work
//! without the .proto files. A change to a message is a contract change:
//! add fields, never renumber.

#![allow(clippy::all)]

pub mod user {
    pub mod v1 {
        tonic::include_proto!("user.v1");
    }
}

pub mod relation {
    pub mod v1 {
        tonic::include_proto!("relation.v1");
    }
}

pub mod count {
    pub mod v1 {
        tonic::include_proto!("count.v1");
    }
}

/// Encoded descriptors of every sluice proto, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("sluice_descriptor");
