use super::*;
use proptest::prelude::*;

/// The client side of SCRAM, as RFC 5802 describes it, to drive the server in tests.
fn client_final(mech: Mechanism, password: &str, client_first_bare: &str, server_first: &str) -> (String, Vec<u8>) {
    let fields: Vec<&str> = server_first.split(',').collect();
    let nonce = fields[0].strip_prefix("r=").unwrap();
    let salt = B64.decode(fields[1].strip_prefix("s=").unwrap()).unwrap();
    let iterations: u32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
    let (mac, hash, _) = mech.algorithms();
    let salted = salted_password(mech, password, &salt, iterations);
    let key = hmac::Key::new(mac, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(hash, client_key.as_ref());
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{client_first_bare},{server_first},{without_proof}");
    let sig = hmac::sign(&hmac::Key::new(mac, stored_key.as_ref()), auth.as_bytes());
    let proof: Vec<u8> = client_key.as_ref().iter().zip(sig.as_ref()).map(|(a, b)| a ^ b).collect();
    let server_key = hmac::sign(&key, b"Server Key");
    let expect = hmac::sign(&hmac::Key::new(mac, server_key.as_ref()), auth.as_bytes());
    (format!("{without_proof},p={}", B64.encode(proof)), format!("v={}", B64.encode(expect.as_ref())).into_bytes())
}

fn exchange(mech: Mechanism, stored: Option<(&str, &str)>, user: &str, password: &str) -> Result<String, SaslError> {
    let cred = stored.map(|(u, p)| (u.to_string(), ScramCredential::from_password(mech, p, b"0123456789abcdef", MIN_ITERATIONS)));
    let lookup = |u: &str| cred.as_ref().filter(|(n, _)| n == u).map(|(_, c)| c.clone());
    let mut server = Server::new(mech, "SERVERnonce0123456789".into());
    let bare = format!("n={},r=clientNONCE42", encode_saslname(user));
    let Step::Continue(first) = server.step(format!("n,,{bare}").as_bytes(), lookup)? else { panic!("SCRAM ends in two steps") };
    let first = String::from_utf8(first).unwrap();
    assert!(first.starts_with("r=clientNONCE42SERVERnonce"), "{first}");
    let (fin, expect) = client_final(mech, password, &bare, &first);
    match server.step(fin.as_bytes(), lookup)? {
        Step::Done { user, reply } => {
            assert_eq!(reply, expect, "server signature");
            assert_eq!(server.step(b"again", lookup), Err(SaslError::Finished(mech)));
            Ok(user)
        }
        Step::Continue(_) => panic!("SCRAM ends in two steps"),
    }
}

#[test]
fn rfc7677_scram_sha_256_test_vector() {
    let cred = ScramCredential::from_password(Mechanism::ScramSha256, "pencil", &B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(), 4096);
    let mut server = Server::new(Mechanism::ScramSha256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into());
    let first = server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", |u| (u == "user").then(|| cred.clone())).unwrap();
    assert_eq!(first, Step::Continue(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()));
    let last = server
        .step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", |_| unreachable!())
        .unwrap();
    assert_eq!(last, Step::Done { user: "user".into(), reply: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec() });
}

#[test]
fn both_scram_mechanisms_accept_the_password_and_refuse_others() {
    for mech in Mechanism::SCRAM {
        assert_eq!(exchange(mech, Some(("alice", "s3cret")), "alice", "s3cret"), Ok("alice".into()));
        assert_eq!(exchange(mech, Some(("alice", "s3cret")), "alice", "wrong"), Err(SaslError::Failed(mech)));
        // An unknown user fails only at the proof, like a wrong password.
        assert_eq!(exchange(mech, Some(("alice", "s3cret")), "bob", "s3cret"), Err(SaslError::Failed(mech)));
        assert_eq!(exchange(mech, Some(("a,b=c", "pw")), "a,b=c", "pw"), Ok("a,b=c".into()));
    }
}

#[test]
fn plain_checks_against_the_scram_sha_256_credential() {
    let cred = ScramCredential::from_password(Mechanism::ScramSha256, "pw", b"salt-salt-salt-s", 4096);
    let lookup = |u: &str| (u == "alice").then(|| cred.clone());
    let ok = Server::new(Mechanism::Plain, "n".repeat(16)).step(b"\0alice\0pw", lookup);
    assert_eq!(ok, Ok(Step::Done { user: "alice".into(), reply: vec![] }));
    assert_eq!(Server::new(Mechanism::Plain, "n".repeat(16)).step(b"alice\0alice\0pw", lookup).map(|_| ()), Ok(()));
    assert_eq!(Server::new(Mechanism::Plain, "n".repeat(16)).step(b"\0alice\0nope", lookup), Err(SaslError::Failed(Mechanism::Plain)));
    assert_eq!(Server::new(Mechanism::Plain, "n".repeat(16)).step(b"\0bob\0pw", lookup), Err(SaslError::Failed(Mechanism::Plain)));
    assert!(matches!(Server::new(Mechanism::Plain, "n".repeat(16)).step(b"alice-pw", lookup), Err(SaslError::Malformed { .. })));
    assert!(matches!(Server::new(Mechanism::Plain, "n".repeat(16)).step(b"root\0alice\0pw", lookup), Err(SaslError::Unsupported(_))));
}

#[test]
fn malformed_scram_messages_are_errors() {
    let m = Mechanism::ScramSha256;
    for bad in [&b""[..], b"n", b"n,,", b"n,,r=x", b"n,,n=,r=x", b"n,,n=a=2Xb,r=x", b"x,,n=a,r=x", b"n,,n=a,r=", b"n,,n=a,r=a b", b"\xff\xfe", b"n,,n=a,r=x,junk"] {
        assert!(matches!(parse_client_first(m, bad), Err(SaslError::Malformed { .. })), "{:?}", String::from_utf8_lossy(bad));
    }
    assert!(matches!(parse_client_first(m, b"p=tls-unique,,n=a,r=x"), Err(SaslError::Unsupported(_))));
    assert!(matches!(parse_client_first(m, b"n,,n=a,r=x,tokenauth=true"), Err(SaslError::Unsupported(_))));
    assert!(matches!(parse_client_first(m, b"n,a=b,n=a,r=x"), Err(SaslError::Unsupported(_))));
    assert_eq!(parse_client_first(m, b"n,a=a,n=a,r=x,ext=1").unwrap().gs2_header, "n,a=a,");
    for bad in [&b""[..], b"c=biws,r=x", b"c=biws,p=AAAA", b"c=!!,r=x,p=AAAA", b"c=biws,r=x,p=!!"] {
        assert!(matches!(parse_client_final(m, bad), Err(SaslError::Malformed { .. })), "{:?}", String::from_utf8_lossy(bad));
    }
    assert!(matches!(parse_client_first(m, &vec![b'a'; MAX_TOKEN + 1]), Err(SaslError::Malformed { why: "token too long", .. })));
    // A final message whose channel binding or nonce differs from the first is refused.
    let cred = ScramCredential::from_password(m, "pw", b"0123456789abcdef", 4096);
    let mut s = Server::new(m, "S".repeat(16));
    s.step(b"n,,n=u,r=abc", |_| Some(cred.clone())).unwrap();
    assert!(matches!(s.step(b"c=biws,r=abcWRONG,p=AAAA", |_| None), Err(SaslError::Malformed { why: "nonce does not match", .. })));
    let mut s = Server::new(m, "S".repeat(16));
    s.step(b"n,,n=u,r=abc", |_| Some(cred.clone())).unwrap();
    assert!(matches!(s.step(format!("c=biws,r=abc{},p=AAAA", "S".repeat(15)).as_bytes(), |_| None), Err(SaslError::Malformed { why: "nonce does not match", .. })));
    let mut s = Server::new(m, "S".repeat(16));
    s.step(b"n,,n=u,r=abc", |_| Some(cred.clone())).unwrap();
    assert!(matches!(s.step(format!("c=eSws,r=abc{},p=AAAA", "S".repeat(16)).as_bytes(), |_| None), Err(SaslError::Malformed { .. })));
}

#[test]
fn mechanism_names_and_codes() {
    for m in Mechanism::ALL {
        assert_eq!(Mechanism::parse(m.name()), Some(m));
    }
    for m in Mechanism::SCRAM {
        assert_eq!(Mechanism::from_scram_code(m.scram_code()), Some(m));
    }
    assert_eq!(Mechanism::parse("scram-sha-256"), None);
    assert_eq!(Mechanism::from_scram_code(0), None);
}

proptest! {
    #[test]
    fn basic_credentials_round_trip(user in "[^:]{1,20}", password in ".{0,20}") {
        prop_assert_eq!(parse_basic(basic_header(&user, &password).as_bytes()), Ok((user, password)));
    }

    #[test]
    fn any_authorization_header_is_parsed_or_refused(raw in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = parse_basic(&raw);
    }

    #[test]
    fn saslname_round_trips(user in "[a-zA-Z0-9=,@._-]{1,24}") {
        prop_assert_eq!(decode_saslname(&encode_saslname(&user)), Some(user.clone()));
        let first = parse_client_first(Mechanism::ScramSha512, format!("n,,n={},r=N0nce", encode_saslname(&user)).as_bytes()).unwrap();
        prop_assert_eq!(first.user, user);
    }

    #[test]
    fn any_bytes_are_answered_with_a_value_or_an_error(token in proptest::collection::vec(any::<u8>(), 0..200), second in proptest::collection::vec(any::<u8>(), 0..200)) {
        for mech in Mechanism::ALL {
            let cred = ScramCredential::from_password(mech, "pw", b"0123456789abcdef", 4096);
            let mut s = Server::new(mech, "S".repeat(16));
            if s.step(&token, |_| Some(cred.clone())).is_ok() {
                let _ = s.step(&second, |_| Some(cred.clone()));
            }
        }
    }

    #[test]
    fn scram_exchanges_succeed_exactly_with_the_right_password(user in "[a-z,=]{1,12}", password in "[ -~]{0,20}", other in "[ -~]{0,20}") {
        for mech in Mechanism::SCRAM {
            prop_assert_eq!(exchange(mech, Some((&user, &password)), &user, &password), Ok(user.clone()));
            let wrong = exchange(mech, Some((&user, &password)), &user, &other);
            prop_assert_eq!(wrong.is_ok(), other == password);
        }
    }
}
