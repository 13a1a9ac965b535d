//! A TCP port forward from the host into a namespace: lets a browser or Prometheus on the host
//! reach the agent listening on 127.0.0.1 inside the lab's gateway namespace.

use std::{
    io,
    net::{TcpListener, TcpStream},
    path::Path,
    thread,
};

use anyhow::Context as _;

/// Listens on `listen` (host namespace) and forwards each connection to `target` inside the
/// namespace at `netns`. Runs until the process exits.
pub fn forward(listen: &str, netns: &Path, target: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    let netns = netns.to_owned();
    let target = target.to_owned();
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let (netns, target) = (netns.clone(), target.clone());
            thread::spawn(move || {
                if let Ok(upstream) = connect_in(&netns, &target) {
                    pipe(client, upstream);
                }
            });
        }
    });
    Ok(())
}

fn connect_in(netns: &Path, target: &str) -> io::Result<TcpStream> {
    // This thread only serves this one connection.
    crate::enter_netns(netns)?;
    TcpStream::connect(target)
}

fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(mut a2), Ok(mut b2)) = (a.try_clone(), b.try_clone()) else { return };
    let (mut a, mut b) = (a, b);
    let t = thread::spawn(move || {
        let _ = io::copy(&mut a2, &mut b2);
        let _ = b2.shutdown(std::net::Shutdown::Write);
    });
    let _ = io::copy(&mut b, &mut a);
    let _ = a.shutdown(std::net::Shutdown::Write);
    let _ = t.join();
}
