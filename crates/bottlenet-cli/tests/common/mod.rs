//! Helpers shared by the CLI's integration tests.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses some of them; tests may unwrap

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A `serve` child process on 127.0.0.1 (port chosen by the OS), killed on drop.
pub struct Served {
    child: Child,
    pub url: String,
}

impl Served {
    /// Starts `command`, a `serve … --addr 127.0.0.1:0` invocation of some `bottlenet` build,
    /// and reads the URL from its first line ("serving MODEL splits RB1,... on http://127.0.0.1:PORT").
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().expect("serve printed nothing").unwrap();
        let url = line.rsplit(' ').next().unwrap().to_string();
        assert!(line.starts_with("serving ") && url.starts_with("http://127.0.0.1:"), "unexpected first line from serve: {line}");
        Self { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
