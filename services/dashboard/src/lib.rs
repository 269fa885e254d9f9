//! The analysts' dashboard: a live view of the patrol rebuilt from the topics at start-up
//! (per-minute aggregates, narratives, takedown requests, the DLQ), a read-only JSON API, and
//! the review desk where signed-in reviewers confirm or reject narratives onto
//! `review.decisions.v1`. The web UI's files are embedded in the binary.

pub mod accounts;
mod api;
mod app;
mod assets;
mod auth;
pub mod config;
mod consume;
mod desk;
mod desk_page;
mod html;
mod metrics;
mod pages;
mod report;
mod requests;
mod rules;
mod service;
mod sessions;
mod shared;
mod signin;
pub mod state;
mod stream;
mod throttle;

pub use accounts::{hash_password, Accounts, Role};
pub use api::OPENAPI;
pub use config::{DashboardConfig, DashboardTopics};
pub use service::{run, Bound, DashboardError};
