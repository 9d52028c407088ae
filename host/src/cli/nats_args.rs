//! The `--nats-*` flags, shared by every command that connects to NATS (`#[command(flatten)]
//! nats: NatsArgs`), each with its `WEIR_NATS_*` environment variable — whose value `--help`
//! never shows. [`NatsArgs::options`] stacks them over a pipeline file's `[nats]` section and
//! resolves them for [`weir::connect::connect`]; every value keeps where it came from (flag or
//! variable), for errors.
//!
//! The flags and variables are declared from one table rather than derived, as a derived
//! struct cannot tell a flag from its environment variable.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use weir::config::Pipeline;
use weir::connect::settings::{self, SettingNames};
use weir::connect::{NKey, NatsOptions, NatsSettings, Origin, SettingsError, Sourced};
use weir::telemetry::redact::Secret;

/// The NATS connection flags (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct NatsArgs {
    /// What the command line and the environment set.
    pub settings: NatsSettings,
}

impl NatsArgs {
    /// The clap ids of the flags (for refusing them where they would do nothing).
    pub const IDS: [&'static str; 10] = [
        "nats_url",
        "nats_creds",
        "nats_nkey",
        "nats_user",
        "nats_password",
        "nats_token",
        "nats_tls_ca",
        "nats_tls_cert",
        "nats_tls_key",
        "nats_tls_required",
    ];

    /// The flags and environment variables over the `[nats]` section of `pipeline` (if any),
    /// resolved.
    pub fn options(&self, pipeline: Option<&Pipeline>) -> Result<NatsOptions, SettingsError> {
        let file = pipeline.map_or_else(NatsSettings::default, |p| {
            NatsSettings::from_config(&p.config.nats, &p.file)
        });
        self.settings.clone().or(file).resolve()
    }
}

/// What a flag takes.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Path,
    /// Paths, repeated or comma-separated.
    Paths,
    Switch,
}

/// One flag: its clap id (`IDS`), names, value and help.
struct Flag {
    id: &'static str,
    names: SettingNames,
    kind: Kind,
    value_name: &'static str,
    help: &'static str,
}

static FLAGS: [Flag; 10] = [
    Flag {
        id: NatsArgs::IDS[0],
        names: settings::URL,
        kind: Kind::Text,
        value_name: "URL",
        help: "NATS server URL(s), comma-separated; may hold user:password@ or token@ \
               (default: `nats.url` of the pipeline, else nats://127.0.0.1:4222)",
    },
    Flag {
        id: NatsArgs::IDS[1],
        names: settings::CREDS,
        kind: Kind::Path,
        value_name: "FILE",
        help: "NATS credentials file (.creds: a user JWT and its NKey seed)",
    },
    Flag {
        id: NatsArgs::IDS[2],
        names: settings::NKEY,
        kind: Kind::Text,
        value_name: "FILE|SEED",
        help: "NKey seed file (or the seed itself, better given by the environment variable)",
    },
    Flag {
        id: NatsArgs::IDS[3],
        names: settings::USER,
        kind: Kind::Text,
        value_name: "USER",
        help: "NATS user (with --nats-password)",
    },
    Flag {
        id: NatsArgs::IDS[4],
        names: settings::PASSWORD,
        kind: Kind::Text,
        value_name: "PASSWORD",
        help: "NATS password (prefer the environment variable: flags show in `ps`)",
    },
    Flag {
        id: NatsArgs::IDS[5],
        names: settings::TOKEN,
        kind: Kind::Text,
        value_name: "TOKEN",
        help: "NATS token (prefer the environment variable: flags show in `ps`)",
    },
    Flag {
        id: NatsArgs::IDS[6],
        names: settings::TLS_CA,
        kind: Kind::Paths,
        value_name: "FILE",
        help: "CA certificate(s) (PEM) to trust for the server's certificate, in place of the \
               system's; repeat or separate with commas; implies TLS",
    },
    Flag {
        id: NatsArgs::IDS[7],
        names: settings::TLS_CERT,
        kind: Kind::Path,
        value_name: "FILE",
        help: "Client certificate (PEM) for servers that verify clients (mutual TLS); implies TLS",
    },
    Flag {
        id: NatsArgs::IDS[8],
        names: settings::TLS_KEY,
        kind: Kind::Path,
        value_name: "FILE",
        help: "The client certificate's private key (PEM)",
    },
    Flag {
        id: NatsArgs::IDS[9],
        names: settings::TLS_REQUIRED,
        kind: Kind::Switch,
        value_name: "",
        help: "Refuse to connect to NATS without TLS",
    },
];

impl Args for NatsArgs {
    fn augment_args(mut cmd: Command) -> Command {
        for flag in &FLAGS {
            let long = flag.names.flag.trim_start_matches('-');
            let arg = Arg::new(flag.id)
                .long(long)
                .env(flag.names.env)
                .hide_env_values(true)
                .help(flag.help)
                .help_heading("NATS connection");
            cmd = cmd.arg(match flag.kind {
                Kind::Text => arg.value_name(flag.value_name),
                Kind::Path => arg
                    .value_name(flag.value_name)
                    .value_parser(clap::value_parser!(PathBuf)),
                Kind::Paths => arg
                    .value_name(flag.value_name)
                    .action(ArgAction::Append)
                    .value_delimiter(',')
                    .value_parser(clap::value_parser!(PathBuf)),
                Kind::Switch => arg
                    .action(ArgAction::SetTrue)
                    .value_parser(BoolishValueParser::new()),
            });
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for NatsArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        // Where the value of flag `i` came from; `None`: neither given nor set.
        let origin = |i: usize| match m.value_source(FLAGS[i].id) {
            Some(ValueSource::CommandLine) => Some(Origin::Flag(FLAGS[i].names.flag)),
            Some(ValueSource::EnvVariable) => Some(Origin::Env(FLAGS[i].names.env)),
            _ => None,
        };
        let text = |i: usize| {
            let value = m.get_one::<String>(FLAGS[i].id)?.clone();
            Some(Sourced::new(value, origin(i)?))
        };
        let path = |i: usize| {
            let value = m.get_one::<PathBuf>(FLAGS[i].id)?.clone();
            Some(Sourced::new(value, origin(i)?))
        };
        let secret = |i: usize| text(i).map(|s| Sourced::new(Secret::new(s.value), s.origin));
        let ca = m
            .get_many::<PathBuf>(FLAGS[6].id)
            .map(|paths| paths.cloned().collect::<Vec<_>>())
            .and_then(|paths| Some(Sourced::new(paths, origin(6)?)));
        let required = m
            .get_one::<bool>(FLAGS[9].id)
            .and_then(|&r| Some(Sourced::new(r, origin(9)?)));
        let settings = NatsSettings {
            url: text(0),
            creds: path(1),
            nkey: text(2).map(|n| Sourced::new(NKey::parse(&n.value, None), n.origin)),
            user: text(3),
            password: secret(4),
            token: secret(5),
            tls_ca: ca,
            tls_cert: path(7),
            tls_key: path(8),
            tls_required: required,
        };
        Ok(NatsArgs { settings })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        nats: NatsArgs,
    }

    #[test]
    fn flags_keep_their_origin_and_secrets_stay_hidden() {
        let cli = Cli::try_parse_from([
            "weir",
            "--nats-user",
            "weir",
            "--nats-password",
            "hunter22",
            "--nats-tls-ca",
            "a.pem,b.pem",
            "--nats-tls-ca",
            "c.pem",
        ])
        .unwrap();
        let s = &cli.nats.settings;
        assert_eq!(s.user.as_ref().unwrap().origin, Origin::Flag("--nats-user"));
        let ca = s.tls_ca.as_ref().unwrap();
        assert_eq!(ca.value.len(), 3);
        assert_eq!(ca.origin, Origin::Flag("--nats-tls-ca"));
        assert!(s.tls_required.is_none());
        assert!(!format!("{s:?}").contains("hunter22"));
    }
}
