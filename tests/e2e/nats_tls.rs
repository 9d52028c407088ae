//! Connecting to NATS over TLS: a private CA trusted by flag or environment, mutual TLS with
//! and without the client certificate, and TLS required against a server without it —
//! against a real nats-server configured for each (the other ways to authenticate are in
//! `nats_security.rs`).

use crate::nats_security::{plugin_list, s, write};
use crate::support::*;

// ---- TLS: a private CA, a server certificate it issued, a client certificate it issued.

/// Certificates made by `openssl` in a temporary folder: a CA, a server certificate for
/// 127.0.0.1 and a client certificate, both issued by the CA (EC P-256: quick to make).
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        pki.openssl(&format!(
            "req -x509 -days 1 -subj /CN=weir-test-ca {ec} \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
             -keyout ca-key.pem -out ca.pem"
        ));
        for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
            pki.openssl(&format!(
                "req -subj /CN=weir-test-{name} {ec} -keyout {name}-key.pem -out {name}.csr"
            ));
            write(
                pki.dir.path(),
                &format!("{name}.ext"),
                &format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
            );
            pki.openssl(&format!(
                "x509 -req -days 1 -in {name}.csr -CA ca.pem -CAkey ca-key.pem -set_serial 7 \
                 -extfile {name}.ext -out {name}.pem"
            ));
        }
        pki
    }

    /// Runs `openssl ARGS` (split at spaces) in the folder.
    fn openssl(&self, args: &str) {
        let out = std::process::Command::new("openssl")
            .current_dir(self.dir.path())
            .args(args.split_whitespace())
            .output()
            .expect("running openssl (needed to make test certificates)");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn path(&self, name: &str) -> String {
        s(&self.dir.path().join(name))
    }

    /// A server with TLS on the CA-issued certificate; with `verify`, it requires client
    /// certificates issued by the CA.
    fn server(&self, verify: bool) -> NatsServer {
        let (cert, key, ca) = (
            self.path("server.pem"),
            self.path("server-key.pem"),
            self.path("ca.pem"),
        );
        if verify {
            NatsServer::start_with(&[
                "--tlsverify",
                "--tlscert",
                &cert,
                "--tlskey",
                &key,
                "--tlscacert",
                &ca,
            ])
        } else {
            NatsServer::start_with(&["--tls", "--tlscert", &cert, "--tlskey", &key])
        }
    }
}

#[test]
fn a_private_ca_makes_the_servers_certificate_trusted() {
    let pki = Pki::new();
    let server = pki.server(false);
    let url = server.url();
    let untrusted = plugin_list(&url, &[], &[]);
    untrusted.assert_refused();
    assert!(
        untrusted.error().starts_with(&format!(
            "error: the TLS certificate of NATS at {url} is not trusted (its issuer is unknown): \
             give the issuing CA's certificate with --nats-tls-ca"
        )),
        "{}",
        untrusted.stderr
    );
    plugin_list(&url, &["--nats-tls-ca", &pki.path("ca.pem")], &[]).assert_ok();
    plugin_list(&url, &[], &[("WEIR_NATS_TLS_CA", &pki.path("ca.pem"))]).assert_ok();
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let pki = Pki::new();
    let server = pki.server(true);
    let url = server.url();
    let ca = pki.path("ca.pem");
    let env = [
        ("WEIR_NATS_TLS_CERT", pki.path("client.pem")),
        ("WEIR_NATS_TLS_KEY", pki.path("client-key.pem")),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    plugin_list(&url, &["--nats-tls-ca", &ca], &env).assert_ok();
    let without = plugin_list(&url, &["--nats-tls-ca", &ca], &[]);
    without.assert_refused();
    assert!(
        without.error().starts_with(&format!(
            "error: NATS at {url} requires a client certificate (mutual TLS) and none was given"
        )),
        "{}",
        without.stderr
    );
    // The server's own certificate is no client certificate (its usage is serverAuth).
    let wrong = plugin_list(
        &url,
        &[
            "--nats-tls-ca",
            &ca,
            "--nats-tls-cert",
            &pki.path("server.pem"),
        ],
        &[("WEIR_NATS_TLS_KEY", &pki.path("server-key.pem"))],
    );
    wrong.assert_refused();
    assert!(
        wrong.error().starts_with(&format!(
            "error: NATS at {url} refused the client certificate {} (--nats-tls-cert)",
            pki.path("server.pem")
        )),
        "{}",
        wrong.stderr
    );
}

#[test]
fn tls_required_refuses_a_server_without_tls() {
    let server = NatsServer::start();
    let out = plugin_list(&server.url(), &[], &[("WEIR_NATS_TLS_REQUIRED", "true")]);
    out.assert_refused();
    assert!(
        out.error().starts_with(&format!(
            "error: NATS at {} does not offer TLS, which WEIR_NATS_TLS_REQUIRED requires",
            server.url()
        )),
        "{}",
        out.stderr
    );
    plugin_list(&server.url(), &[], &[("WEIR_NATS_TLS_REQUIRED", "false")]).assert_ok();
}
