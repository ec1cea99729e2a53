//! The emulator's integration tests: real extension processes (the `tiny-extension` binary) launched
//! by the emulator, real sockets, the real S3 protocol.

mod support;

mod delivery;
mod edges;
mod extensions_api;
mod lifecycle;
mod managed_instances;
mod other_languages;
mod s3_endpoint;
mod s3_rules;
mod snap_start;
