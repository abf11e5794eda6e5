//! SASL tokens come from clients that have not authenticated yet: every mechanism's server
//! must answer any bytes with a token or an error, never panic, over a whole exchange. The
//! same holds for the Basic authorization header of the gRPC API and the HTTP ingest.
#![no_main]
use backwaters_proto::sasl::{Mechanism, ScramCredential, Server};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((user, password)) = backwaters_proto::sasl::parse_basic(data) {
        assert!(!user.is_empty() && !user.contains(':'), "{user:?} {password:?}");
    }
    let (first, second) = data.split_at(data.len() / 2);
    for mech in Mechanism::ALL {
        let cred = ScramCredential::from_password(mech, "pw", b"0123456789abcdef", 1);
        let mut server = Server::new(mech, "S".repeat(16));
        if server.step(first, |_| Some(cred.clone())).is_ok() {
            let _ = server.step(second, |_| Some(cred.clone()));
        }
    }
});
