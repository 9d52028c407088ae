//! End-to-end tests of weir: the `weir` binary and its library against a real nats-server
//! (started per test on a free loopback port) with plugins built from `plugins/`.

mod admin;
mod after;
mod chain;
mod config;
mod container;
mod crash;
mod guarantees;
mod hardening;
mod hotload;
mod inputs;
mod join_vectors;
mod joins;
mod kit;
mod local_input;
mod log_safety;
mod nats_security;
mod nats_tls;
mod nexmark;
mod nexmark_windows;
mod one_engine;
mod plugin_cli;
mod recovery;
mod registry;
mod sandbox;
mod serve;
mod source_acks;
mod startup;
mod store_damage;
mod support;
mod top;
mod usecases;
mod window_kinds;
mod windows;
