//! Integration tests, one binary to save link time. Reference-scheme tests read
//! `../shared/reference/` and skip with a message when it is absent.

mod audit;
mod audit_run;
mod benefits_cli;
mod catalog_run;
mod demo_grouping;
mod dip_cities;
mod dip_grouping;
mod dip_regions;
mod faults;
mod golden;
mod group_run;
mod policy_and_points;
mod properties;
mod reference;
mod report_browser;
mod report_xlsx;
mod server;
mod service_runs;
mod settle_cli;
mod settle_engine;
mod settlement;
mod store;
mod table_errors;
