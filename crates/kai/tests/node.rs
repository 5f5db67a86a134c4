//! Integration tests: each starts real `kai` processes on port 0 in temp directories and talks
//! HTTP to them. One test binary (faster linking); modules by theme.
//! `KAI_TEST_DATABASE=postgres` runs every test on PostgreSQL (`KAI_TEST_POSTGRES_URL`).

mod node {
    pub mod artifacts;
    pub mod audit_cli;
    pub mod chat;
    pub mod config;
    pub mod durability;
    pub mod harness;
    pub mod local;
    pub mod memory;
    pub mod openai;
    pub mod prompts;
    pub mod security;
    pub mod server;
    pub mod tasks;
    pub mod ui;
    pub mod ws;
}
