//! Generated `backwaters.v1` gRPC types, clients and servers.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("backwaters.v1");
}

/// The encoded `FileDescriptorSet` of every .proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/backwaters_descriptor.bin"));
