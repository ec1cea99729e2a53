//! Integration tests of the extension: its actors against real neighbours (the emulator's S3
//! endpoint, a real HTTP listener, recording probe actors), and the release binary launched by the
//! emulated Lambda platform, asserting the exact records that land in S3.

mod support;

mod actors;
mod faults;
mod fleet;
mod in_process;
mod objects;
mod parquet;
mod process;
mod rules;
mod scenarios;
mod ship_path;
mod simulation;
mod telemetry;
