//! `barkctl watch` on the emulator, on the `hotswap` fixture: the first round
//! deploys, an edited handler is rebuilt and hotswapped (the new bundle is what
//! Lambda runs), an edited template is deployed in full, and Ctrl-C ends it
//! with 130.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::deploy::Emulator;
use super::hotswap::{get_function, Fixture, FUNCTION};

/// A running `barkctl watch` whose stderr lines are collected; killed if dropped.
struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn start(p: &Fixture) -> Watch {
        let mut child = p
            .command(&["watch", "--stage", "local"], None)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("barkctl watch starts");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        Watch { child, lines }
    }

    fn text(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// The first line starting with `prefix`, waiting up to `limit` for it.
    fn wait_for(&self, prefix: &str, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return l.clone();
            }
            assert!(
                started.elapsed() < limit,
                "no line starting with {prefix:?} within {limit:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGINT, as Ctrl-C: the exit code and everything printed.
    fn interrupt(mut self) -> (i32, String) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let started = Instant::now();
        let code = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status.code().unwrap_or(-1);
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                break -1;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(200));
        (code, self.text())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_hotswaps_an_edited_handler_and_deploys_an_edited_template() {
    let emu = Emulator::start();
    let p = Fixture::new(emu.url());
    let watch = Watch::start(&p);
    let limit = Duration::from_secs(180);
    let first = watch.wait_for("watch: round 1:", limit);
    assert!(first.contains("created clock"), "{}", watch.text());
    let before = get_function(&p.endpoint, FUNCTION);
    assert_eq!(before.sha, p.built_sha());

    p.edit("lambdas/greet/src/main.rs", "\"v1\"", "\"v2\"");
    let second = watch.wait_for("watch: round 2:", limit);
    assert!(
        second.contains(&format!("hotswapped clock: {FUNCTION} (1 function)")),
        "{}",
        watch.text()
    );
    let after = get_function(&p.endpoint, FUNCTION);
    assert_ne!(after.sha, before.sha);
    assert_eq!(after.sha, p.built_sha());

    p.edit(
        "templates/clock.yaml.hbs",
        "Greets on a schedule",
        "Greets every hour",
    );
    let third = watch.wait_for("watch: round 3:", limit);
    assert!(
        third.contains("deployed clock (resource `Schedule` changed"),
        "{}",
        watch.text()
    );

    let (code, text) = watch.interrupt();
    assert_eq!(code, 130, "{text}");
    assert!(text.contains("watch: stopped"), "{text}");
}
