//! A TCP proxy on 127.0.0.1 that a test can cut: while cut, every
//! connection through it is dropped and new ones are closed at once, as
//! when a database server goes away; `restore` lets connections through
//! again. Included with `#[path]` by the tests that use it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct CutProxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    cut: bool,
    links: Vec<JoinHandle<()>>,
}

impl CutProxy {
    /// Listens on an ephemeral port of 127.0.0.1, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut st = st.lock().unwrap();
                if st.cut {
                    drop(client);
                    continue;
                }
                st.links.push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        CutProxy {
            addr,
            state,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        let mut st = self.state.lock().unwrap();
        st.cut = true;
        for link in st.links.drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.state.lock().unwrap().cut = false;
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

fn host_port(url: &str) -> (&str, &str) {
    let rest = url.split_once("://").expect("a URL with a scheme").1;
    let authority = rest.split(['/', '?']).next().unwrap();
    (authority, authority.rsplit('@').next().unwrap())
}

/// The server a `postgres://` URL names.
pub fn upstream_of(url: &str) -> SocketAddr {
    let (_, hostport) = host_port(url);
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5432")
    };
    hostport
        .replace("localhost", "127.0.0.1")
        .parse()
        .expect("the test database URL names an IP address and port")
}

/// `url` going through the proxy at `addr` instead.
pub fn through(url: &str, addr: SocketAddr) -> String {
    let (authority, hostport) = host_port(url);
    let new_authority = authority.replacen(hostport, &addr.to_string(), 1);
    url.replacen(authority, &new_authority, 1)
}
