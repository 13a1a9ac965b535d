//! A headless Chromium (Debian's package) driven over the DevTools protocol: load a page at a
//! given screen size, evaluate JavaScript in it (real DOM events: clicks, selections), collect
//! console errors and uncaught exceptions, take screenshots.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket, stream::MaybeTlsStream};

/// The flags every headless Chromium of the tests runs with: no sandbox (root), no GPU, and
/// nothing that talks to the network by itself.
pub(crate) const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// A running browser with one page.
pub(crate) struct Browser {
    child: Child,
    profile: PathBuf,
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Console errors and uncaught exceptions seen so far.
    pub errors: Vec<String>,
}

impl Browser {
    /// Starts Chromium with a fresh profile and attaches to its page.
    pub(crate) fn start() -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "et-cdp-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let child = Command::new("chromium")
            .args(CHROMIUM_FLAGS)
            .args(["--hide-scrollbars", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium (cargo xtask setup installs Debian's package)");
        // Killed on drop, also when connecting fails below.
        let mut child = KillOnDrop(Some(child));
        let port = wait_for_port(&profile.join("DevToolsActivePort"));
        let page = page_socket_url(port);
        let (socket, _) = tungstenite::connect(page.as_str()).expect("DevTools websocket");
        let child = child.0.take().expect("the browser");
        if let MaybeTlsStream::Plain(s) = socket.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        }
        let mut browser = Browser { child, profile, socket, next_id: 0, errors: Vec::new() };
        for method in ["Runtime.enable", "Log.enable", "Page.enable"] {
            browser.call(method, json!({}));
        }
        browser
    }

    /// Sends one command and returns its result, recording the events that arrive meanwhile.
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket.send(Message::text(msg)).expect("send to DevTools");
        loop {
            let msg = self.socket.read().expect("read from DevTools");
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).expect("DevTools JSON");
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            self.record_event(&v);
        }
    }

    fn record_event(&mut self, v: &Value) {
        match v["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                self.errors.push(format!("exception: {}", v["params"]["exceptionDetails"]));
            }
            Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => {
                self.errors.push(format!("console.error: {}", v["params"]["args"]));
            }
            Some("Log.entryAdded") if v["params"]["entry"]["level"] == "error" => {
                self.errors.push(format!("log: {}", v["params"]["entry"]));
            }
            _ => {}
        }
    }

    /// Sets the viewport (CSS pixels); `mobile` also turns on touch and the mobile layout rules.
    pub(crate) fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        );
    }

    /// Loads `url`.
    pub(crate) fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
    }

    /// The value of a JavaScript expression (promises awaited).
    pub(crate) fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until `expression` is true; panics with `what` and the page's text after `timeout`.
    pub(crate) fn wait_for(&mut self, expression: &str, timeout: Duration, what: &str) -> Duration {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.eval(expression) == Value::Bool(true) {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let text = self.eval("document.body.innerText");
        panic!("{what}: not within {timeout:?}; the page shows:\n{text}");
    }

    /// Writes a PNG screenshot of the viewport to `path`.
    pub(crate) fn screenshot(&mut self, path: &Path) {
        use base64::Engine as _;
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The port Chromium writes to `DevToolsActivePort` once it listens.
fn wait_for_port(file: &Path) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok())
        {
            return port;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("chromium did not open its DevTools port within 30 s");
}

/// The websocket of the browser's first page (`GET /json/list`).
fn page_socket_url(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("DevTools HTTP");
        // The answer's URLs are built from the Host header: it carries the port.
        let request = format!("GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        s.write_all(request.as_bytes()).unwrap();
        let answer = read_response(&mut s);
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let list: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        if let Some(url) = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        {
            return url.to_owned();
        }
        assert!(Instant::now() < deadline, "no page target: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One HTTP/1.1 response: the DevTools server keeps the connection open, so the body is read
/// by its Content-Length.
fn read_response(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&data).into_owned()
}
