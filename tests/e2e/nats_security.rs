//! Connecting to a secured NATS: every way weir authenticates (user and password, token, NKey,
//! `.creds` file with a user JWT), TLS with a private CA and mutual TLS — from flags,
//! environment variables and the pipeline file's `[nats]` section — against a real
//! nats-server configured for each, with `weir plugin list|deploy`, `weir validate`,
//! `weir checkpoint list` and `weir run`. Refusals are fast, name the server and the method or file, and show no secret.
//! TLS alone (a private CA, mutual TLS, TLS required) is in `nats_tls.rs`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use nkeys::KeyPair;

use crate::nats_tls::Pki;
use crate::support::*;

/// Variables that would change what a test means if the environment had them.
const NATS_VARS: [&str; 10] = [
    "WEIR_NATS_URL",
    "WEIR_NATS_CREDS",
    "WEIR_NATS_NKEY",
    "WEIR_NATS_USER",
    "WEIR_NATS_PASSWORD",
    "WEIR_NATS_TOKEN",
    "WEIR_NATS_TLS_CA",
    "WEIR_NATS_TLS_CERT",
    "WEIR_NATS_TLS_KEY",
    "WEIR_NATS_TLS_REQUIRED",
];

/// What a finished `weir` command did.
pub(crate) struct Outcome {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) took: Duration,
}

impl Outcome {
    /// The `error:` line.
    pub(crate) fn error(&self) -> &str {
        self.stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_default()
    }

    #[track_caller]
    pub(crate) fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "{}\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub(crate) fn assert_refused(&self) -> &Self {
        assert_eq!(self.code, Some(1), "{}\n{}", self.stdout, self.stderr);
        assert!(self.took < Duration::from_secs(8), "took {:?}", self.took);
        self
    }
}

/// Runs `weir ARGS` with only `env` of the NATS variables set.
pub(crate) fn weir_with(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = weir();
    for var in NATS_VARS {
        cmd.env_remove(var);
    }
    cmd.args(args).envs(env.iter().copied());
    let started = Instant::now();
    let out = output_within(cmd, Duration::from_secs(30));
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// `weir plugin list` against `url` with extra `args` and `env`.
pub(crate) fn plugin_list(url: &str, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut all = vec!["plugin", "list", "--nats-url", url];
    all.extend_from_slice(args);
    weir_with(&all, env)
}

pub(crate) fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Writes `text` to `dir/name`; its path.
pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A nats-server with JetStream and the configuration file `config` (written in `dir`).
pub(crate) fn server_with_config(dir: &Path, config: &str) -> NatsServer {
    let file = write(dir, "server.conf", config);
    NatsServer::start_with(&["-c", &s(&file)])
}

#[test]
fn user_and_password_from_flags_from_the_environment_and_in_the_url() {
    let server = NatsServer::start_with(&["--user", "weir", "--pass", "pa55-word"]);
    let url = server.url();
    plugin_list(
        &url,
        &["--nats-user", "weir", "--nats-password", "pa55-word"],
        &[],
    )
    .assert_ok();
    let env = [
        ("WEIR_NATS_USER", "weir"),
        ("WEIR_NATS_PASSWORD", "pa55-word"),
    ];
    let ok = plugin_list(&url, &[], &env);
    assert!(
        ok.assert_ok().stdout.contains("no plugins deployed"),
        "{}",
        ok.stdout
    );
    let in_url = format!("nats://weir:pa55-word@127.0.0.1:{}", server.port);
    plugin_list(&in_url, &[], &[]).assert_ok();
    // A flag wins over its variable.
    let env = [("WEIR_NATS_USER", "weir"), ("WEIR_NATS_PASSWORD", "stale")];
    plugin_list(&url, &["--nats-password", "pa55-word"], &env).assert_ok();
    // Without credentials the server refuses, and weir says what to give.
    let none = plugin_list(&url, &[], &[]);
    assert!(
        none.assert_refused()
            .error()
            .contains("it asks for credentials and none were given"),
        "{}",
        none.stderr
    );
}

#[test]
fn a_wrong_password_is_refused_naming_the_server_and_the_method_not_the_password() {
    let server = NatsServer::start_with(&["--user", "weir", "--pass", "right-one"]);
    let url = server.url();
    let env = [
        ("WEIR_NATS_USER", "weir"),
        ("WEIR_NATS_PASSWORD", "wr0ng-pa55"),
    ];
    let out = plugin_list(&url, &[], &env);
    out.assert_refused();
    assert!(
        out.error().starts_with(&format!(
            "error: NATS at {url} refused the credentials (authorization violation): user \
             \"weir\" with the password of WEIR_NATS_PASSWORD"
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("wr0ng-pa55"), "{}", out.stderr);
}

#[test]
fn a_token_from_the_environment_or_a_flag() {
    let server = NatsServer::start_with(&["--auth", "t0ken-s3cret"]);
    let url = server.url();
    plugin_list(&url, &[], &[("WEIR_NATS_TOKEN", "t0ken-s3cret")]).assert_ok();
    let out = plugin_list(&url, &["--nats-token", "not-the-t0ken"], &[]);
    out.assert_refused();
    assert!(
        out.error().ends_with(
            "refused the credentials (authorization violation): the token of --nats-token"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("not-the-t0ken"), "{}", out.stderr);
}

#[test]
fn an_nkey_seed_file_and_an_unknown_nkey() {
    let dir = tempfile::tempdir().unwrap();
    let user = KeyPair::new_user();
    let server = server_with_config(
        dir.path(),
        &format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            user.public_key()
        ),
    );
    let url = server.url();
    let seed = user.seed().unwrap();
    let seed_file = write(dir.path(), "user.nk", &format!("{seed}\n"));
    plugin_list(&url, &["--nats-nkey", &s(&seed_file)], &[]).assert_ok();
    // The seed itself, from the environment.
    plugin_list(&url, &[], &[("WEIR_NATS_NKEY", &seed)]).assert_ok();
    let stranger = KeyPair::new_user();
    let stranger_seed = stranger.seed().unwrap();
    let out = plugin_list(&url, &[], &[("WEIR_NATS_NKEY", &stranger_seed)]);
    out.assert_refused();
    assert!(
        out.error().contains(&format!(
            "refused the credentials (authorization violation): NKey {} (the seed of \
             WEIR_NATS_NKEY)",
            stranger.public_key()
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(&stranger_seed), "{}", out.stderr);
    // A file that holds no seed is named before connecting.
    let junk = write(dir.path(), "junk.nk", "not a seed\n");
    let out = plugin_list(&url, &["--nats-nkey", &s(&junk)], &[]);
    out.assert_refused();
    assert!(
        out.error().contains(&format!(
            "cannot use the NKey seed file {} (--nats-nkey): it holds no user NKey seed",
            s(&junk)
        )),
        "{}",
        out.stderr
    );
}

// ---- Decentralised auth: an operator, an account with JetStream, a user JWT in a .creds file.

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A NATS JWT (`ed25519-nkey`) with `claims` under `nats`, for `subject`, signed by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "jti": format!("{subject}-{now}"),
        "iat": now,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let header = b64(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let signed = format!("{header}.{}", b64(claims.to_string()));
    let signature = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", b64(signature))
}

/// An operator-mode server (memory resolver; one account with JetStream) and a `.creds` file
/// of a user of that account, in `dir`; also the `.creds` file of a user the account never
/// signed.
fn operator_mode(dir: &Path) -> (NatsServer, PathBuf, PathBuf) {
    let operator = KeyPair::new_operator();
    let account = KeyPair::new_account();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "weir-test",
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "pipelines",
        serde_json::json!({
            "type": "account",
            "version": 2,
            "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1,
                "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1
            },
        }),
    );
    // JetStream needs a system account.
    let system = KeyPair::new_account();
    let system_jwt = jwt(
        &operator,
        &system.public_key(),
        "SYS",
        serde_json::json!({"type": "account", "version": 2}),
    );
    let config = format!(
        "operator: \"{operator_jwt}\"\nsystem_account: {sys}\nresolver: MEMORY\n\
         resolver_preload: {{\n  {sys}: \"{system_jwt}\"\n  {}: \"{account_jwt}\"\n}}\n",
        account.public_key(),
        sys = system.public_key(),
    );
    let server = server_with_config(dir, &config);
    let creds = |name: &str, signer: &KeyPair| {
        let user = KeyPair::new_user();
        let user_jwt = jwt(
            signer,
            &user.public_key(),
            name,
            serde_json::json!({"type": "user", "version": 2, "pub": {}, "sub": {},
                               "subs": -1, "data": -1, "payload": -1}),
        );
        let text = format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        );
        write(dir, &format!("{name}.creds"), &text)
    };
    let good = creds("weir", &account);
    let stranger = creds("stranger", &KeyPair::new_account());
    (server, good, stranger)
}

#[test]
fn a_creds_file_with_a_user_jwt() {
    let dir = tempfile::tempdir().unwrap();
    let (server, creds, stranger) = operator_mode(dir.path());
    let url = server.url();
    let ok = plugin_list(&url, &[], &[("WEIR_NATS_CREDS", &s(&creds))]);
    assert!(
        ok.assert_ok().stdout.contains("no plugins deployed"),
        "{}",
        ok.stdout
    );
    let out = plugin_list(&url, &["--nats-creds", &s(&stranger)], &[]);
    out.assert_refused();
    assert!(
        out.error()
            .contains("refused the credentials (authorization violation): user U")
            && out.error().contains(&format!(
                "the credentials file {} (--nats-creds)",
                s(&stranger)
            )),
        "{}",
        out.stderr
    );
}

/// A pipeline file over streams IN → OUT in `dir` with the `[nats]` section `nats`.
fn pipeline_with_nats(dir: &Path, name: &str, nats: &str) -> PathBuf {
    let ops = operator("p", "passthrough", "{}");
    let text = format!("{}\n[nats]\n{nats}\n", pipeline_text(name, "", &ops));
    write(dir, "pipeline.toml", &text)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pipeline_files_nats_section_with_paths_relative_to_it() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let user = KeyPair::new_user();
    // Mutual TLS and an NKey: every file the section can name.
    let server = server_with_config(
        dir.path(),
        &format!(
            "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true }}\n\
             authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            pki.path("server.pem"),
            pki.path("server-key.pem"),
            pki.path("ca.pem"),
            user.public_key()
        ),
    );
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    for f in ["ca.pem", "client.pem", "client-key.pem"] {
        std::fs::copy(pki.path(f), dir.path().join("certs").join(f)).unwrap();
    }
    write(dir.path(), "user.nk", &user.seed().unwrap());
    let pipeline = pipeline_with_nats(
        dir.path(),
        "secured",
        &format!(
            "url = \"{}\"\nnkey = \"user.nk\"\n\
             tls = {{ ca = \"certs/ca.pem\", cert = \"certs/client.pem\", key = \"certs/client-key.pem\" }}",
            server.url()
        ),
    );
    // The library reads the section as `weir` does (what `weir serve` will use).
    let p = weir::config::load(&pipeline).unwrap();
    let nats = weir::connect::NatsSettings::from_config(&p.config.nats, &p.file)
        .resolve()
        .unwrap();
    let client = weir::connect::connect("test", &nats, None).await.unwrap();
    let js = async_nats::jetstream::new(client);
    create_stream(&js, "IN", &["in.>"]).await;
    create_stream(&js, "OUT", &["out", "dlq"]).await;
    let events: Vec<_> = (0..10)
        .map(|i| (None, format!("{{\"n\":{i}}}").into_bytes()))
        .collect();
    publish_all(&js, "in.x", &events).await;

    // From another folder: the paths are relative to the pipeline file, not to where weir runs.
    let log = dir.path().join("weir.log");
    let child = weir()
        .current_dir("/")
        .arg("run")
        .arg(&pipeline)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut run = WeirProcess {
        child,
        stderr_path: log,
    };
    run.wait_running(Duration::from_secs(20));
    let out = collect(&js, "OUT", "out", 10, Duration::from_secs(10)).await;
    assert_eq!(out.len(), 10, "{}", run.log());
    assert_eq!(run.terminate(), Some(0));

    let mut list = weir();
    list.current_dir("/")
        .args(["checkpoint", "list"])
        .arg(&pipeline);
    for var in NATS_VARS {
        list.env_remove(var);
    }
    let listed = output_within(list, Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(stdout.lines().any(|l| l.starts_with('*')), "{stdout}");
}

#[test]
fn the_environment_overrides_the_pipeline_file_and_a_refusal_names_the_key() {
    let server = NatsServer::start_with(&["--user", "weir", "--pass", "fresh-pw"]);
    let dir = tempfile::tempdir().unwrap();
    let nats = format!(
        "url = \"{}\"\nuser = \"weir\"\npassword = \"stale-pw\"",
        server.url()
    );
    let pipeline = pipeline_with_nats(dir.path(), "layered", &nats);
    let list = |env: &[(&str, &str)]| weir_with(&["checkpoint", "list", &s(&pipeline)], env);
    let ok = list(&[("WEIR_NATS_PASSWORD", "fresh-pw")]);
    assert!(
        ok.assert_ok()
            .stdout
            .contains("pipeline layered: no checkpoints"),
        "{}",
        ok.stdout
    );
    let stale = list(&[]);
    stale.assert_refused();
    assert!(
        stale.error().ends_with(&format!(
            "user \"weir\" with the password of `nats.password` in {}",
            s(&pipeline)
        )),
        "{}",
        stale.stderr
    );
    assert!(!stale.stderr.contains("stale-pw"), "{}", stale.stderr);
}

#[test]
fn a_missing_file_is_named_with_its_setting_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: an error about the file proves no connection was tried first.
    let url = format!("nats://{}", free_addr());
    let pipeline = pipeline_with_nats(
        dir.path(),
        "files",
        &format!("url = \"{url}\"\ncreds = \"missing.creds\""),
    );
    let out = weir_with(&["checkpoint", "list", &s(&pipeline)], &[]);
    out.assert_refused();
    assert_eq!(
        out.error(),
        format!(
            "error: cannot use the credentials file {} (`nats.creds` in {}): No such file or \
             directory (os error 2)",
            s(&dir.path().join("missing.creds")),
            s(&pipeline)
        ),
        "{}",
        out.stderr
    );
    // `weir run` checks the files before it loads the plugins.
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_with_nats(dir.path(), "files", &format!("url = \"{url}\""));
    let out = weir_with(
        &["run", &s(&pipeline), "--nats-tls-ca", "/nonexistent/ca.pem"],
        &[],
    );
    out.assert_refused();
    assert_eq!(
        out.error(),
        "error: cannot use the CA certificate file /nonexistent/ca.pem (--nats-tls-ca): No such \
         file or directory (os error 2)",
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("plugin ready"), "{}", out.stderr);
    let out = weir_with(&["run", &s(&pipeline)], &[("WEIR_NATS_CREDS", "/dev/null")]);
    out.assert_refused();
    assert!(
        out.error().starts_with(
            "error: cannot use the credentials file /dev/null (WEIR_NATS_CREDS): cannot parse"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn secrets_in_the_environment_are_not_shown_by_help() {
    let env = [
        ("WEIR_NATS_PASSWORD", "help-pa55"),
        ("WEIR_NATS_TOKEN", "help-t0ken"),
        ("WEIR_NATS_NKEY", "SUHELPSEED"),
        ("WEIR_NATS_URL", "nats://u:help-url-pw@h:4222"),
    ];
    for cmd in [
        &["run", "--help"][..],
        &["validate", "--help"],
        &["plugin", "list", "--help"],
        &["plugin", "deploy", "--help"],
        &["checkpoint", "show", "--help"],
    ] {
        let out = weir_with(cmd, &env);
        let text = out.assert_ok().stdout.clone();
        assert!(
            text.contains("WEIR_NATS_PASSWORD") && text.contains("--nats-tls-ca"),
            "{text}"
        );
        for (_, secret) in env {
            assert!(!text.contains(secret), "{cmd:?} shows {secret}:\n{text}");
        }
    }
}

#[test]
fn nats_flags_do_nothing_with_local_and_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_with_nats(dir.path(), "local", "");
    let input = write(dir.path(), "in.jsonl", "");
    let out = weir_with(
        &[
            "run",
            "--local",
            "--input",
            &s(&input),
            &s(&pipeline),
            "--nats-creds",
            "x.creds",
        ],
        &[],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--nats-creds does nothing with --local"),
        "{}",
        out.stderr
    );
}

#[test]
fn deploy_and_validate_registry_plugins_on_a_secured_server() {
    let server = NatsServer::start_with(&["--auth", "reg-t0ken"]);
    let url = server.url();
    let token = [("WEIR_NATS_TOKEN", "reg-t0ken")];
    let stamp = s(&plugin("stamp"));
    let deployed = weir_with(
        &[
            "plugin",
            "deploy",
            &stamp,
            "--name",
            "stamp",
            "--nats-url",
            &url,
        ],
        &token,
    );
    assert!(
        deployed
            .assert_ok()
            .stdout
            .contains("deployed stamp version 1"),
        "{}",
        deployed.stdout
    );
    let dir = tempfile::tempdir().unwrap();
    let ops = "[[operators]]\nname = \"stamp\"\nplugin = \"nats:stamp\"\nconfig = {}\n";
    let text = format!(
        "{}\n[nats]\nurl = \"{url}\"\n",
        pipeline_text("reg", "", ops)
    );
    let pipeline = write(dir.path(), "pipeline.toml", &text);
    weir_with(&["validate", &s(&pipeline)], &token).assert_ok();
    let refused = weir_with(&["validate", &s(&pipeline)], &[]);
    assert!(
        refused
            .assert_refused()
            .error()
            .contains("it asks for credentials and none were given"),
        "{}",
        refused.stderr
    );
}
