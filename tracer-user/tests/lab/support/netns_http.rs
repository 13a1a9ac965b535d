//! HTTP GET against a listener inside a network namespace, without external tools: a thread
//! joins the namespace (`setns` affects only the calling thread) and makes the request.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::Path,
    time::Duration,
};

/// `GET path` from `addr` inside the namespace at `netns` (e.g. `/run/netns/x-gw`); returns
/// the status code and body.
pub(crate) fn get(netns: &Path, addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let netns = netns.to_owned();
    let addr = addr.to_owned();
    let path = path.to_owned();
    std::thread::spawn(move || -> anyhow::Result<(u16, String)> {
        tracer_lab::enter_netns(&netns)?;
        let mut stream = TcpStream::connect(&addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Ok((status, body))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("HTTP thread panicked"))?
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
