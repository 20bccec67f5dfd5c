//! A small client for QMP, the QEMU Machine Protocol: newline-delimited JSON over a
//! unix socket.
//!
//! QEMU greets with `{"QMP": {...}}`; the client answers `qmp_capabilities` and may
//! then run commands. Every command carries an `id` that QEMU echoes in its
//! `{"return": ...}` or `{"error": {"class", "desc"}}`, so a late answer to a command
//! that timed out is never taken for the answer to the next one. Asynchronous
//! `{"event": ...}` messages (`STOP`, `RESUME`, `SHUTDOWN`, ...) may come at any time
//! and are skipped.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::Value;

/// How long one command may take, each way.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);

/// Longest message accepted; QMP answers to the commands used here are tiny.
const MAX_LINE: u64 = 1 << 20;

/// Why a QMP exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QmpError {
    #[error("QMP I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP connection closed by QEMU")]
    Closed,
    /// QEMU refused the command; `desc` is QEMU's own explanation.
    #[error("QMP {command}: {desc} ({class})")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    #[error("QMP: unexpected message {0}")]
    Protocol(String),
}

/// One QMP session, in command mode after [`Qmp::handshake`].
#[derive(Debug)]
pub(crate) struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Qmp {
    /// Reads QEMU's greeting on a connected stream (waiting up to `greeting_timeout`:
    /// QEMU sends it only once its main loop runs) and leaves negotiation mode.
    pub(crate) fn handshake(
        stream: UnixStream,
        greeting_timeout: Duration,
    ) -> Result<Qmp, QmpError> {
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
        };
        qmp.set_timeout(greeting_timeout.max(Duration::from_millis(1)))?;
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(greeting.to_string()));
        }
        qmp.set_timeout(TIMEOUT)?;
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    /// Sets the read and write timeout of each exchange.
    pub(crate) fn set_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        self.writer.set_read_timeout(Some(timeout))?;
        self.writer.set_write_timeout(Some(timeout))
    }

    /// Runs a command without arguments and returns its `return` value.
    pub(crate) fn execute(&mut self, command: &str) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::json!({ "execute": command, "id": id }).to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            let msg = self.read_message()?;
            if msg.get("event").is_some() {
                log::debug!("QMP event {msg}");
                continue;
            }
            if msg.get("id").and_then(Value::as_u64) != Some(id) {
                // The answer to an earlier command that timed out.
                continue;
            }
            if let Some(ret) = msg.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = msg.get("error") {
                let field = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
                return Err(QmpError::Command {
                    command: command.to_owned(),
                    class: field("class"),
                    desc: field("desc"),
                });
            }
            return Err(QmpError::Protocol(msg.to_string()));
        }
    }

    /// `query-status`: the run state (`prelaunch`, `running`, `paused`, `shutdown`, ...).
    pub(crate) fn query_status(&mut self) -> Result<String, QmpError> {
        let ret = self.execute("query-status")?;
        ret.get("status")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| QmpError::Protocol(ret.to_string()))
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = (&mut self.reader).take(MAX_LINE).read_line(&mut line)?;
        if n == 0 {
            return Err(QmpError::Closed);
        }
        if !line.ends_with('\n') && n as u64 == MAX_LINE {
            return Err(QmpError::Protocol(format!(
                "message longer than {MAX_LINE} bytes"
            )));
        }
        serde_json::from_str(line.trim_end())
            .map_err(|e| QmpError::Protocol(format!("{e}: {}", line.trim_end())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted QMP server on one end of a socket pair: for each request line it
    /// receives, it writes the next scripted reply (with `{id}` replaced).
    fn serve(script: Vec<&'static str>) -> (UnixStream, std::thread::JoinHandle<Vec<String>>) {
        let (client, server) = UnixStream::pair().unwrap();
        let handle = std::thread::spawn(move || {
            let mut w = server.try_clone().unwrap();
            let mut r = BufReader::new(server);
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
                .unwrap();
            let mut seen = Vec::new();
            for reply in script {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                let req: Value = serde_json::from_str(&line).unwrap();
                let id = req["id"].as_u64().unwrap();
                seen.push(req["execute"].as_str().unwrap().to_owned());
                w.write_all(reply.replace("{id}", &id.to_string()).as_bytes())
                    .unwrap();
            }
            seen
        });
        (client, handle)
    }

    #[test]
    fn handshake_skips_events_and_stale_answers() {
        let (client, server) = serve(vec![
            "{\"return\": {}, \"id\": {id}}\r\n",
            "{\"event\": \"STOP\", \"timestamp\": {}}\r\n{\"return\": {}, \"id\": 999}\r\n\
             {\"return\": {\"status\": \"paused\", \"running\": false}, \"id\": {id}}\r\n",
            "{\"error\": {\"class\": \"CommandNotFound\", \
             \"desc\": \"The command bogus has not been found\"}, \"id\": {id}}\r\n",
        ]);
        let mut qmp = Qmp::handshake(client, TIMEOUT).unwrap();
        assert_eq!(qmp.query_status().unwrap(), "paused");
        let err = qmp.execute("bogus").unwrap_err();
        assert_eq!(
            err.to_string(),
            "QMP bogus: The command bogus has not been found (CommandNotFound)"
        );
        assert!(matches!(err, QmpError::Command { .. }));
        drop(qmp);
        assert_eq!(
            server.join().unwrap(),
            ["qmp_capabilities", "query-status", "bogus"]
        );
    }

    #[test]
    fn closed_connection_and_bad_greeting() {
        let (client, server) = UnixStream::pair().unwrap();
        drop(server);
        let err = Qmp::handshake(client, TIMEOUT).unwrap_err();
        assert!(matches!(err, QmpError::Closed), "{err}");

        let (client, mut server) = UnixStream::pair().unwrap();
        server.write_all(b"{\"hello\": 1}\n").unwrap();
        let err = Qmp::handshake(client, TIMEOUT).unwrap_err();
        assert!(matches!(err, QmpError::Protocol(_)), "{err}");
    }

    #[test]
    fn silent_server_times_out() {
        let (client, _server) = UnixStream::pair().unwrap();
        let t = std::time::Instant::now();
        let err = Qmp::handshake(client, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, QmpError::Io(_)), "{err}");
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
