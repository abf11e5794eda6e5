//! Generated `backwaters.v1` gRPC types, clients and servers.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("backwaters.v1");
}

/// The encoded `FileDescriptorSet` of every .proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/backwaters_descriptor.bin"));

/// Authentication of node-to-node calls (`backwaters.v1.Internal`).
///
/// Every internal call carries [`AUTH_HEADER`]: a SHA-256 digest of the cluster name and the
/// cluster secret (the same secret that authenticates actor-cluster sessions). A node refuses
/// internal calls without it, so a client on the network that is not a node of this cluster
/// cannot inject Raft messages, pass writes on, or call the controller. The digest, not the
/// secret, travels (internal gRPC is plaintext; the digest is as replayable as a password on
/// a plaintext link, but does not reveal the secret used for actor sessions).
pub mod auth {
    use sha2::{Digest, Sha256};

    /// The gRPC metadata key of the token.
    pub const AUTH_HEADER: &str = "x-backwaters-node-auth";

    /// The token of a cluster: hex SHA-256 over a fixed label, the name and the secret.
    pub fn token(cluster_name: &str, secret: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"backwaters-internal-v1\0");
        h.update(cluster_name.as_bytes());
        h.update(b"\0");
        h.update(secret.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Compares without an early exit, so timing says nothing about how much matched.
    pub fn matches(expected: &str, got: &[u8]) -> bool {
        let e = expected.as_bytes();
        e.len() == got.len() && e.iter().zip(got).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// Client side: adds the token to every call.
    #[derive(Clone)]
    pub struct Attach(tonic::metadata::AsciiMetadataValue);

    impl Attach {
        pub fn new(cluster_name: &str, secret: &str) -> Attach {
            Attach(token(cluster_name, secret).parse().expect("hex is valid metadata"))
        }
    }

    impl tonic::service::Interceptor for Attach {
        fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
            req.metadata_mut().insert(AUTH_HEADER, self.0.clone());
            Ok(req)
        }
    }

    /// Server side: refuses a call without this cluster's token.
    #[derive(Clone)]
    pub struct Require(std::sync::Arc<str>);

    impl Require {
        pub fn new(cluster_name: &str, secret: &str) -> Require {
            Require(token(cluster_name, secret).into())
        }
    }

    impl tonic::service::Interceptor for Require {
        fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
            match req.metadata().get(AUTH_HEADER) {
                Some(v) if matches(&self.0, v.as_bytes()) => Ok(req),
                got => Err(tonic::Status::unauthenticated(format!(
                    "node-to-node call refused: {} node credentials (every node of a cluster needs the same cluster_name and cluster_secret)",
                    if got.is_some() { "wrong" } else { "no" }
                ))),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use tonic::service::Interceptor;

        #[test]
        fn the_server_takes_only_the_clusters_token() {
            let mut attach = Attach::new("prod", "s");
            let mut require = Require::new("prod", "s");
            assert!(require.call(attach.call(tonic::Request::new(())).unwrap()).is_ok());
            let e = require.call(tonic::Request::new(())).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated);
            assert!(e.message().contains("no node credentials"), "{e}");
            let e = require.call(Attach::new("prod", "other").call(tonic::Request::new(())).unwrap()).unwrap_err();
            assert!(e.message().contains("wrong node credentials"), "{e}");
        }

        #[test]
        fn tokens_differ_by_name_and_secret_and_compare_exactly() {
            let t = token("prod", "s1");
            assert_eq!(t.len(), 64);
            assert_ne!(t, token("prod", "s2"));
            assert_ne!(t, token("prod2", "s1"));
            // The separator keeps ("ab", "c") and ("a", "bc") apart.
            assert_ne!(token("ab", "c"), token("a", "bc"));
            assert!(matches(&t, t.as_bytes()));
            assert!(!matches(&t, &t.as_bytes()[..63]));
            assert!(!matches(&t, token("prod", "s2").as_bytes()));
        }
    }
}
