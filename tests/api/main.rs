//! HTTP tests: the real server on a random port, driven over HTTP, on SQLite and PostgreSQL.

#[path = "../common/mod.rs"]
mod common;

mod ade;
mod auth;
mod classify;
mod documents;
mod files;
mod health;
mod hostile;
mod logs;
mod metrics;
mod model;
mod model_endpoints;
mod openapi;
mod recording;
mod replicas;
mod restart;
mod result_cache;
mod s3;
mod shutdown;
mod webhook_outbox;
