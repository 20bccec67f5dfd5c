//! A small client for QMP, the QEMU Machine Protocol: newline-delimited JSON over a
//! unix socket.
//!
//! QEMU greets with `{"QMP": {...}}`; the client answers `qmp_capabilities` and may
//! then run commands. Every command carries an `id` that QEMU echoes in its
//! `{"return": ...}` or `{"error": {"class", "desc"}}`, so a late answer to a command
//! that timed out is never taken for the answer to the next one. Asynchronous
//! `{"event": ...}` messages (`STOP`, `RESUME`, `SHUTDOWN`, ...) may come at any time
//! and are skipped.
//!
//! A read or write that runs out of time is a [`QmpError::Timeout`] naming what was
//! waited for, on which socket and for how long (never the bare `EAGAIN` a socket
//! timeout gives).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// Nothing came in time: `what` was waited for on `socket` for `waited`.
    #[error("timed out: no {what} from QEMU on {} within {waited:?}", .socket.display())]
    Timeout {
        what: String,
        socket: PathBuf,
        waited: Duration,
    },
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
    /// The socket, for messages.
    socket: PathBuf,
    /// How long one command may take ([`Qmp::set_timeout`]).
    timeout: Duration,
}

impl Qmp {
    /// Reads QEMU's greeting on a stream connected to `socket` and leaves negotiation
    /// mode, all by `deadline`: QEMU sends the greeting only once its main loop runs,
    /// and may answer the first command late (while it loads a large image). `since`
    /// is when the wait began (QEMU's start), for the timeout message.
    pub(crate) fn handshake(
        stream: UnixStream,
        socket: &Path,
        since: Instant,
        deadline: Instant,
    ) -> Result<Qmp, QmpError> {
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            socket: socket.to_owned(),
            timeout: TIMEOUT,
        };
        let start = since;
        qmp.arm(deadline)?;
        let greeting = qmp
            .read_message()
            .map_err(|e| qmp.timed_out(e, "QMP greeting", start))?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(greeting.to_string()));
        }
        qmp.execute_by("qmp_capabilities", deadline, start)?;
        Ok(qmp)
    }

    /// Sets how long each later command may take, each way.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.timeout = timeout;
        self.writer.set_read_timeout(Some(timeout))?;
        self.writer.set_write_timeout(Some(timeout))
    }

    /// Sets the socket's timeouts to what is left until `deadline` (at least 1 ms:
    /// zero means "no timeout" to the socket).
    fn arm(&self, deadline: Instant) -> std::io::Result<()> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        self.writer.set_read_timeout(Some(left))?;
        self.writer.set_write_timeout(Some(left))
    }

    /// A socket timeout as [`QmpError::Timeout`]; other errors unchanged.
    fn timed_out(&self, e: QmpError, what: &str, since: Instant) -> QmpError {
        match e {
            QmpError::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                QmpError::Timeout {
                    what: what.to_owned(),
                    socket: self.socket.clone(),
                    // Whole milliseconds read better ("1.001s", not "1.000912345s").
                    waited: Duration::from_millis(since.elapsed().as_millis() as u64),
                }
            }
            other => other,
        }
    }

    /// Runs a command without arguments and returns its `return` value, waiting up
    /// to the timeout of [`Qmp::set_timeout`] (2 s unless set).
    pub(crate) fn execute(&mut self, command: &str) -> Result<Value, QmpError> {
        let start = Instant::now();
        self.execute_by(command, start + self.timeout, start)
    }

    /// [`Qmp::execute`] with an answer due by `deadline`; `start` is when the wait
    /// began, for the timeout message.
    fn execute_by(
        &mut self,
        command: &str,
        deadline: Instant,
        start: Instant,
    ) -> Result<Value, QmpError> {
        let what = format!("QMP answer to {command}");
        self.arm(deadline)?;
        let result = self.exchange(command, deadline);
        // Later commands get the usual timeout again.
        let _ = self.writer.set_read_timeout(Some(self.timeout));
        let _ = self.writer.set_write_timeout(Some(self.timeout));
        result.map_err(|e| self.timed_out(e, &what, start))
    }

    fn exchange(&mut self, command: &str, deadline: Instant) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::json!({ "execute": command, "id": id }).to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            self.arm(deadline)?;
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
        let mut qmp = Qmp::handshake(client, Path::new("/q.sock"), Instant::now(), soon()).unwrap();
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
        let err = Qmp::handshake(client, Path::new("/q.sock"), Instant::now(), soon()).unwrap_err();
        assert!(matches!(err, QmpError::Closed), "{err}");

        let (client, mut server) = UnixStream::pair().unwrap();
        server.write_all(b"{\"hello\": 1}\n").unwrap();
        let err = Qmp::handshake(client, Path::new("/q.sock"), Instant::now(), soon()).unwrap_err();
        assert!(matches!(err, QmpError::Protocol(_)), "{err}");
    }

    fn soon() -> Instant {
        Instant::now() + TIMEOUT
    }

    #[test]
    fn silent_server_times_out_naming_what_was_awaited() {
        let (client, _server) = UnixStream::pair().unwrap();
        let t = Instant::now();
        let err = Qmp::handshake(
            client,
            Path::new("/run/x/qmp.sock"),
            t,
            t + Duration::from_millis(50),
        )
        .unwrap_err();
        assert!(matches!(err, QmpError::Timeout { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with("timed out: no QMP greeting from QEMU on /run/x/qmp.sock within ")
                && text.ends_with("ms"),
            "{text}"
        );
        assert!(!text.contains("os error"), "{text}");
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    /// A server that greets at once and answers the first command after `delay`.
    fn late_server(delay: Duration) -> (UnixStream, std::thread::JoinHandle<()>) {
        let (client, server) = UnixStream::pair().unwrap();
        let handle = std::thread::spawn(move || {
            let mut w = server.try_clone().unwrap();
            let mut r = BufReader::new(server);
            w.write_all(b"{\"QMP\": {}}\n").unwrap();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            std::thread::sleep(delay);
            let req: Value = serde_json::from_str(&line).unwrap();
            let _ = writeln!(w, "{{\"return\": {{}}, \"id\": {}}}", req["id"]);
            // Read until the client closes, so its writes never fail.
            while r.read_line(&mut line).is_ok_and(|n| n > 0) {}
        });
        (client, handle)
    }

    /// A QEMU that greets at once but answers its first command late (U-Boot
    /// 2025.01 takes 2.4 s): the handshake waits until its deadline, not 2 s; past
    /// the deadline the error names the command.
    #[test]
    fn late_first_answer_within_and_past_the_deadline() {
        let delay = Duration::from_millis(300);
        let (client, server) = late_server(delay);
        let t = Instant::now();
        let mut qmp =
            Qmp::handshake(client, Path::new("/q.sock"), t, t + Duration::from_secs(5)).unwrap();
        assert!(t.elapsed() >= delay);
        // Later commands use the command timeout again.
        qmp.set_timeout(Duration::from_millis(50)).unwrap();
        let err = qmp.execute("query-status").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "timed out: no QMP answer to query-status from QEMU on /q.sock within "
            ),
            "{err}"
        );
        drop(qmp);
        server.join().unwrap();

        let (client, server) = late_server(delay);
        let t = Instant::now();
        let err = Qmp::handshake(
            client,
            Path::new("/q.sock"),
            t,
            t + Duration::from_millis(100),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "timed out: no QMP answer to qmp_capabilities from QEMU on /q.sock within 1"
            ) && err.ends_with("ms"),
            "{err}"
        );
        assert!(t.elapsed() < delay, "{:?}", t.elapsed());
        server.join().unwrap();
    }
}
