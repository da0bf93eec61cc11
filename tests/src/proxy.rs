//! A TCP proxy in front of the database server that a test can cut and restore, to make the
//! database unreachable for a while without touching the real server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A proxy on `127.0.0.1` forwarding to one server.
#[derive(Debug, Clone)]
pub struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    /// Starts a proxy to `target` (`host:port`).
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let proxy = Proxy {
            addr: listener.local_addr().expect("proxy address"),
            up: Arc::new(AtomicBool::new(true)),
            connections: Arc::default(),
        };
        let (up, connections) = (proxy.up.clone(), proxy.connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                connections
                    .lock()
                    .expect("connections")
                    .push(task.abort_handle());
            }
        });
        proxy
    }

    /// `url` with its `host:port` replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let (userinfo, rest) = match rest.split_once('@') {
            Some((user, rest)) => (format!("{user}@"), rest),
            None => (String::new(), rest),
        };
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        format!("{scheme}://{userinfo}{}{path}", self.addr)
    }

    /// The `host:port` of a URL.
    pub fn target_of(url: &str) -> String {
        let rest = url.split_once("://").expect("a URL with a scheme").1;
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        rest.split(['/', '?']).next().expect("a host").to_owned()
    }

    /// Drops every open connection and refuses new ones: the database is "down".
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().expect("connections").drain(..) {
            connection.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
