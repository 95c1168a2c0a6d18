//! Test support shared by the integration test binaries: documents made on the fly, database
//! provisioning and the server under test.
#![allow(dead_code)]

pub mod fake_model;
pub mod pdf;
pub mod server;
