//! The one integration test target: runs the real `barkctl` binary on fixture
//! projects in temp dirs and pins its stdout, stderr and exit code.

mod architecture;
mod aws_behaviour;
mod aws_errors;
mod build;
mod cross;
mod deploy;
mod dev;
mod diff;
mod gates;
mod gateway;
mod harness;
mod hotswap;
mod local;
mod lock;
mod project_errors;
mod properties;
mod secret_grants;
mod synth_lint;
mod uploads;
mod watch;
