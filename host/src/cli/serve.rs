//! `weir serve`: the long-running host ([`weir::serve`]); every flag can be set by an
//! environment variable, for containers.

use std::net::SocketAddr;
use std::path::PathBuf;

use weir::admin::auth::Token;
use weir::runtime::Runtime;
use weir::serve::{ServeOptions, default_host_id};

/// The flags of `weir serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    nats: super::nats_args::NatsArgs,
    /// Serve /health, /ready, /metrics and /pipelines on this address, e.g. 127.0.0.1:9464.
    #[arg(long, env = "WEIR_ADMIN")]
    admin: Option<SocketAddr>,
    /// A file holding the admin endpoint's bearer token (else $WEIR_ADMIN_TOKEN); required
    /// when --admin is beyond loopback, for every route but /health and /ready.
    #[arg(long, env = "WEIR_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// This host's name in pipeline statuses and leases (default: $HOSTNAME or the machine's
    /// host name).
    #[arg(long, env = "WEIR_HOST_ID")]
    host_id: Option<String>,
}

/// Runs the host until SIGINT/SIGTERM (`shutdown`).
pub fn run(
    args: ServeArgs,
    runtime: Runtime,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let options = ServeOptions {
        nats: args.nats.options(None)?,
        host_id: args.host_id.unwrap_or_else(default_host_id),
        admin: args.admin,
        admin_token: match args.admin {
            Some(_) => Token::load(args.admin_token_file.as_deref())?,
            None => None,
        },
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(weir::serve::serve(runtime, options, shutdown))
}
