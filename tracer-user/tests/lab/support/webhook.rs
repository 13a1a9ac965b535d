//! A webhook receiver inside a network namespace: records what it is sent, or accepts and
//! never answers (a hung receiver).

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

/// A running receiver; its thread lives until the test process ends.
pub(crate) struct Receiver {
    /// `http://127.0.0.1:PORT/hook`, valid inside the namespace.
    pub url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

impl Receiver {
    /// Bodies received so far.
    pub(crate) fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().ok())
                })
                .flatten()
                .unwrap_or(0);
            if body.len() >= length {
                return Some(body[..length].to_owned());
            }
        }
    }
}

/// Starts a receiver in the namespace at `netns`; with `hang`, it accepts connections and
/// never answers.
pub(crate) fn start(netns: &Path, hang: bool) -> Receiver {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let netns = netns.to_owned();
    let (b, c) = (Arc::clone(&bodies), Arc::clone(&connections));
    std::thread::spawn(move || {
        tracer_lab::enter_netns(&netns).expect("setns");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        tx.send(listener.local_addr().unwrap().port()).unwrap();
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            if hang {
                held.push(stream);
                continue;
            }
            if let Some(body) = read_request(&mut stream) {
                b.lock().unwrap().push(body);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        }
    });
    let port = rx.recv().expect("receiver port");
    Receiver { url: format!("http://127.0.0.1:{port}/hook"), bodies, connections }
}
