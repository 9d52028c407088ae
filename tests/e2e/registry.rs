//! The plugin registry in NATS: `weir plugin deploy|list|history|rollback` against a real
//! nats-server with the example plugins, and the library API a running host uses (pinned
//! versions, verified fetch, watch).

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use weir::registry::{OBJECTS, Registry, RegistryError, TAGS, Tag};
use weir::runtime::cache::content_hash;

use crate::support::*;

/// `weir plugin ARGS` against the server at `url`.
fn plugin_cmd(url: &str, args: &[&str]) -> Output {
    let mut cmd = weir();
    cmd.arg("plugin").args(args).env("WEIR_NATS_URL", url);
    output_within(cmd, Duration::from_secs(120))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `weir plugin ARGS`, which must succeed; its standard output.
fn ok(url: &str, args: &[&str]) -> String {
    let out = plugin_cmd(url, args);
    assert!(
        out.status.success(),
        "weir plugin {args:?} failed:\n{}",
        stderr(&out)
    );
    stdout(&out)
}

/// `weir plugin ARGS`, which must fail with exit code 1; its standard error.
fn refused(url: &str, args: &[&str]) -> String {
    let out = plugin_cmd(url, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "weir plugin {args:?} should fail:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn digest_of(p: &Path) -> String {
    content_hash(&std::fs::read(p).unwrap())
}

async fn registry(server: &NatsServer) -> (jetstream::Context, Registry) {
    let js = server.jetstream().await;
    let registry = Registry::open(&js, false)
        .await
        .expect("opening the registry");
    (js, registry)
}

/// How many components the object store holds.
async fn objects(js: &jetstream::Context) -> usize {
    let store = js.get_object_store(OBJECTS).await.unwrap();
    store.list().await.unwrap().count().await
}

/// A component importing `acme:evil/vault`, an interface weir does not provide.
fn component_importing_an_unprovided_interface(dir: &Path) -> std::path::PathBuf {
    let mut resolve = wit_parser::Resolve::default();
    let wit = "package acme:evil;\n\
               interface vault { open: func() -> u32; }\n\
               world sneaky { import vault; }\n";
    let pkg = resolve.push_str("evil.wit", wit).unwrap();
    let world = resolve.select_world(&[pkg], Some("sneaky")).unwrap();
    // A core module importing `open` of `acme:evil/vault` (type `() -> i32`), nothing else.
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.extend_from_slice(&[0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f]);
    module.extend_from_slice(&[0x02, 0x18, 0x01, 0x0f]);
    module.extend_from_slice(b"acme:evil/vault");
    module.push(0x04);
    module.extend_from_slice(b"open");
    module.extend_from_slice(&[0x00, 0x00]);
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();
    let p = dir.join("sneaky.wasm");
    std::fs::write(&p, component).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_deploys_lists_and_rolls_back_through_the_cli() {
    let server = NatsServer::start();
    let url = server.url();
    let (v1, v2) = (plugin("json_filter"), plugin("json_map"));

    let out = ok(&url, &["deploy", &path(&v1), "--name", "filter"]);
    assert!(
        out.starts_with("deployed filter version 1 (sha256 ") && out.contains(", transform, "),
        "{out}"
    );
    let out = ok(&url, &["deploy", &path(&v2), "--name", "filter"]);
    assert!(out.starts_with("deployed filter version 2 ") && out.contains("was version 1"));
    let out = ok(
        &url,
        &[
            "deploy",
            &path(&plugin("window_stats")),
            "--name",
            "stats",
            "--version",
            "1.0.0",
        ],
    );
    assert!(out.contains("deployed stats version 1.0.0") && out.contains("aggregate"));
    // The same bytes again: the tag does not move.
    let out = ok(&url, &["deploy", &path(&v2), "--name", "filter"]);
    assert!(out.contains("already at version 2"), "{out}");

    let list = ok(&url, &["list"]);
    let rows: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][..6],
        ["NAME", "VERSION", "WORLD", "DIGEST", "SIZE", "DEPLOYED"]
    );
    assert_eq!(
        rows[1][..4],
        ["filter", "2", "transform", &digest_of(&v2)[..12]]
    );
    assert_eq!(
        rows[2][..4],
        [
            "stats",
            "1.0.0",
            "aggregate",
            &digest_of(&plugin("window_stats"))[..12]
        ]
    );

    // Default rollback: the version deployed before the current one, with the reason.
    let out = ok(
        &url,
        &["rollback", "filter", "--reason", "drops valid events"],
    );
    assert!(
        out.starts_with("rolled back filter to version 1 ") && out.contains("from 2"),
        "{out}"
    );
    let err = refused(&url, &["rollback", "filter"]);
    assert!(
        err.contains("plugin filter is at version 1, the first one"),
        "{err}"
    );
    let out = ok(&url, &["rollback", "filter", "--to", "2"]);
    assert!(out.starts_with("rolled back filter to version 2 "), "{out}");
    let err = refused(&url, &["rollback", "filter", "--to", "7"]);
    assert!(err.contains("plugin filter has no version 7"), "{err}");

    let history = ok(&url, &["history", "filter"]);
    let moves: Vec<&str> = history.lines().collect();
    assert_eq!(moves.len(), 4, "{history}");
    assert!(moves[0].contains("version 1") && moves[0].ends_with("deploy"));
    assert!(moves[1].contains("version 2") && moves[1].ends_with("deploy"));
    assert!(moves[2].contains("version 1"));
    assert!(moves[2].ends_with("rollback to 1 from 2: drops valid events"));
    assert!(moves[3].starts_with('*') && moves[3].ends_with("rollback to 2 from 1"));
    assert!(moves[..3].iter().all(|m| m.starts_with(' ')));

    // The library sees the same: the tag, pinned versions, the history with its notes.
    let (_, registry) = registry_at(&url).await;
    let tag = registry.tag("filter").await.unwrap().unwrap();
    assert_eq!(
        (tag.version.as_str(), tag.digest.clone()),
        ("2", digest_of(&v2))
    );
    assert_eq!(tag.note.as_deref(), Some("rollback to 2 from 1"));
    let pinned = registry.version("filter", "1").await.unwrap().unwrap();
    assert_eq!(pinned.digest, digest_of(&v1));
    assert_eq!(pinned.size, std::fs::metadata(&v1).unwrap().len());
    assert_eq!(pinned.note, None);
    assert_eq!(registry.version("filter", "3").await.unwrap(), None);
    let notes: Vec<Option<String>> = registry
        .history("filter")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.note)
        .collect();
    assert_eq!(
        notes[2].as_deref(),
        Some("rollback to 1 from 2: drops valid events")
    );
    let listed: Vec<String> = registry
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(listed, ["filter", "stats"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_commands_never_print_nats_credentials() {
    let server = NatsServer::start_with(&["--user", "ops", "--pass", "right-pw"]);
    // A wrong password in the URL: the refusal names the server, not the password.
    let url = format!("nats://ops:s3cr3t-pw@127.0.0.1:{}", server.port);
    let json_filter = path(&plugin("json_filter"));
    for args in [
        &["list"][..],
        &["history", "f"],
        &["deploy", &json_filter, "--name", "f"],
    ] {
        let err = refused(&url, args);
        assert!(
            err.contains(&format!("nats://***@127.0.0.1:{}", server.port)),
            "{err}"
        );
        assert!(!err.contains("s3cr3t-pw"), "{err}");
    }
}

async fn registry_at(url: &str) -> (jetstream::Context, Registry) {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let registry = Registry::open(&js, false).await.unwrap();
    (js, registry)
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_deploy_refuses_a_bad_component_before_the_tag_moves() {
    let server = NatsServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    ok(
        &url,
        &["deploy", &path(&plugin("json_filter")), "--name", "filter"],
    );
    let (js, registry) = registry(&server).await;
    let before = registry.tag("filter").await.unwrap().unwrap();
    let history = registry.history("filter").await.unwrap();

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm not really").unwrap();
    let sneaky = component_importing_an_unprovided_interface(dir.path());
    let wrong_world = plugins_dir().join("weir-plugin-wrong-world.wasm");
    let cases: [(&Path, &[&str], &str); 5] = [
        (&garbage, &[], "is not a valid WebAssembly component"),
        (&sneaky, &[], "imports `acme:evil/vault"),
        (&wrong_world, &[], "implements no weir world"),
        (
            &plugin("window_stats"),
            &[],
            "plugin filter implements the `transform` world (since version 1); this component implements `aggregate`",
        ),
        (
            &plugin("json_map"),
            &["--version", "1"],
            "version 1 of plugin filter already exists with other bytes",
        ),
    ];
    for (component, extra, reason) in cases {
        let mut args = vec!["deploy", component.to_str().unwrap(), "--name", "filter"];
        args.extend_from_slice(extra);
        let err = refused(&url, &args);
        assert!(
            err.contains("filter was not deployed") && err.contains(reason),
            "{err}"
        );
        assert_eq!(
            registry.tag("filter").await.unwrap().as_ref(),
            Some(&before)
        );
        assert_eq!(registry.history("filter").await.unwrap(), history);
        assert_eq!(objects(&js).await, 1, "{}", component.display());
    }
    // A refused first deploy leaves no trace of the name.
    let err = refused(&url, &["deploy", &path(&sneaky), "--name", "sneaky"]);
    assert!(err.contains("which weir does not provide"), "{err}");
    assert_eq!(registry.tag("sneaky").await.unwrap(), None);
    assert!(registry.versions("sneaky").await.unwrap().is_empty());
    let err = refused(
        &url,
        &["deploy", &path(&plugin("json_map")), "--name", "a.b"],
    );
    assert!(err.contains("\"a.b\" cannot name a plugin"), "{err}");
    assert_eq!(objects(&js).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_fetch_verifies_the_digest_and_refuses_a_damaged_object() {
    let server = NatsServer::start();
    let url = server.url();
    let component = plugin("json_filter");
    let bytes = std::fs::read(&component).unwrap();
    ok(&url, &["deploy", &path(&component), "--name", "filter"]);
    let (js, registry) = registry(&server).await;
    let tag = registry.tag("filter").await.unwrap().unwrap();
    assert_eq!(registry.fetch(&tag.digest).await.unwrap(), bytes);
    let cache = tempfile::tempdir().unwrap();
    let file = registry.fetch_to(&tag, cache.path()).await.unwrap();
    assert_eq!(
        file,
        cache.path().join(format!("components/{}.wasm", tag.digest))
    );
    assert_eq!(std::fs::read(&file).unwrap(), bytes);

    // Other bytes under the component's name.
    let store = js.get_object_store(OBJECTS).await.unwrap();
    let object = format!("sha256-{}", tag.digest);
    let other = b"not the component".to_vec();
    store
        .put(object.as_str(), &mut other.as_slice())
        .await
        .unwrap();
    let err = registry.fetch(&tag.digest).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&tag.digest) && message.contains(&content_hash(&other)),
        "{message}"
    );
    assert!(
        message.contains(OBJECTS) && message.contains(&object),
        "{message}"
    );
    // The intact local copy is still used; without it, nothing damaged is written.
    assert_eq!(registry.fetch_to(&tag, cache.path()).await.unwrap(), file);
    std::fs::remove_file(&file).unwrap();
    assert!(registry.fetch_to(&tag, cache.path()).await.is_err());
    assert!(!file.exists());

    // Deploying the bytes again repairs the object.
    ok(&url, &["deploy", &path(&component), "--name", "filter"]);
    assert_eq!(registry.fetch(&tag.digest).await.unwrap(), bytes);

    let missing = "0".repeat(64);
    let err = registry.fetch(&missing).await.unwrap_err().to_string();
    assert!(
        err.contains(&missing) && err.contains("is not in object store"),
        "{err}"
    );
    let err = registry
        .fetch("../etc/passwd")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a SHA-256 digest"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_read_only_commands_create_no_bucket() {
    let server = NatsServer::start();
    let url = server.url();
    for args in [&["list"][..], &["history", "filter"]] {
        let out = ok(&url, args);
        assert_eq!(
            out.trim(),
            format!("no plugins deployed (key-value bucket \"{TAGS}\" does not exist)"),
            "{args:?}"
        );
    }
    let err = refused(&url, &["rollback", "filter"]);
    assert!(
        err.contains(&format!("key-value bucket \"{TAGS}\" does not exist")),
        "{err}"
    );
    let js = server.jetstream().await;
    let err = Registry::open(&js, false).await.err().unwrap();
    assert!(matches!(err, RegistryError::BucketMissing { .. }), "{err}");
    let mut names = js.stream_names();
    let mut streams = Vec::new();
    while let Some(name) = names.next().await {
        streams.push(name.unwrap());
    }
    assert!(streams.is_empty(), "{streams:?}");
}

/// The next tag a watch yields, within 10 s.
async fn next_move(
    moves: &mut (impl futures::Stream<Item = Result<Tag, RegistryError>> + Unpin),
) -> Tag {
    let item = tokio::time::timeout(Duration::from_secs(10), moves.next()).await;
    item.expect("a tag move within 10 s")
        .expect("the watch ended")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_watch_yields_the_tag_after_a_deploy_and_a_rollback() {
    let server = NatsServer::start();
    let url = server.url();
    let js = server.jetstream().await;
    let registry = Registry::open(&js, true).await.unwrap();
    let mut moves = Box::pin(registry.watch("filter").await.unwrap());

    let deploy = |p: std::path::PathBuf| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || ok(&url, &["deploy", &path(&p), "--name", "filter"]))
    };
    deploy(plugin("json_filter")).await.unwrap();
    let first = next_move(&mut moves).await;
    assert_eq!(
        (first.version.as_str(), first.digest.clone()),
        ("1", digest_of(&plugin("json_filter")))
    );
    deploy(plugin("json_map")).await.unwrap();
    assert_eq!(next_move(&mut moves).await.version, "2");
    registry
        .rollback("filter", None, "canary failed")
        .await
        .unwrap();
    let back = next_move(&mut moves).await;
    assert_eq!(back.version, "1");
    assert_eq!(
        back.note.as_deref(),
        Some("rollback to 1 from 2: canary failed")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_deploy_file_checks_the_component_then_publishes() {
    let server = NatsServer::start();
    let js = server.jetstream().await;
    let registry = Registry::open(&js, true).await.unwrap();
    let runtime = weir::runtime::Runtime::new(Some(cache_dir())).unwrap();
    let stats = plugin("window_stats");
    let tag = registry
        .deploy_file(&runtime, &stats, "stats", Some("1.0.0"))
        .await
        .unwrap();
    assert_eq!(
        (tag.version.as_str(), tag.world.as_str(), tag.digest.clone()),
        ("1.0.0", "aggregate", digest_of(&stats))
    );
    assert_eq!(tag.runtime_world(), Some(weir::runtime::World::Aggregate));
    let wrong = plugins_dir().join("weir-plugin-wrong-world.wasm");
    let err = registry
        .deploy_file(&runtime, &wrong, "stats", None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NoWorld { .. }), "{err}");
    assert_eq!(registry.tag("stats").await.unwrap(), Some(tag));
    assert_eq!(objects(&js).await, 1);
}
