//! classifyd: a self-hostable document classification server that speaks the LlamaCloud
//! Classify and LandingAI ADE classify APIs.

pub mod api;
pub mod blob;
pub mod classifier;
pub mod cli;
pub mod document;
pub mod monitoring;
pub mod outbound;
pub mod pipeline;
pub mod settings;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhook;
pub mod worker;
